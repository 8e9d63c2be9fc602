from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "recordings"
    verbose_name = "Recordings"

    def ready(self) -> None:
        from config import home
        from recordings import embedded, recorder

        # Every process that may host a call's runtime records it; the reaper (in
        # whichever process runs it) finalises what a dead process left behind.
        recorder.register()
        # Embedded (no beat), the serving process purges expired recordings itself.
        home.on_start(embedded.start)
