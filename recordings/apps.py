from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "recordings"
    verbose_name = "Recordings"

    def ready(self) -> None:
        from calls import retention
        from recordings import recorder, spool

        # Every process that may host a call's runtime records it; the reaper (in
        # whichever process runs it) finalises what a dead process left behind.
        recorder.register()
        # WAVs still in the spool (their finalisation failed so far) keep their call
        # past its retention; stored recordings keep it as rows that point at it.
        retention.register(keeps_call=lambda call_id: spool.call_dir(call_id).exists())
