from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "recordings"
    verbose_name = "Recordings"

    def ready(self) -> None:
        from recordings import recorder

        # Every process that may host a call's runtime records it; the reaper (in
        # whichever process runs it) finalises what a dead process left behind.
        recorder.register()
