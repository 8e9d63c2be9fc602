from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"
    verbose_name = "Dial-out media streams"

    def ready(self) -> None:
        from calls import retention
        from calls.runtime import hooks
        from streams import live, services
        from streams.models import Stream

        # Every process that may host a call's runtime can run its streams.
        live.register()
        hooks.register_streams(services.StreamsForCalls())
        # A call's streams go with it when its retention is over.
        retention.register(goes_with_call=Stream)
