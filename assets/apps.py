from django.apps import AppConfig


class AssetsConfig(AppConfig):
    name = "assets"
    verbose_name = "Audio assets"

    def ready(self) -> None:
        from assets import commands

        # Every process that may host a call's runtime learns to play assets into it.
        commands.register()
