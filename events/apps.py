from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Events and webhooks"

    def ready(self) -> None:
        from config import home, schedule

        # Embedded (no beat), the serving process runs the periodic jobs itself: the
        # webhook sweep, the recording purge and the reaper (config.schedule).
        home.on_start(lambda _loop: schedule.start())
