from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "calls"
    verbose_name = "Sessions and calls"

    def ready(self) -> None:
        from calls import checks  # noqa: F401  (registers the system checks)
        from calls.transports.websocket import bridge

        # A media socket that lands in another process than its call bridges to it.
        bridge.register()
