from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"
    verbose_name = "Dial-out media streams"

    def ready(self) -> None:
        from calls.runtime import hooks
        from streams import live, services

        # Every process that may host a call's runtime can run its streams.
        live.register()
        hooks.register_streams(services.StreamsForCalls())
