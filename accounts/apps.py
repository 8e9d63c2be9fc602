from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and API keys"

    def ready(self) -> None:
        # Registers the OpenAPI description of API-key authentication.
        import config.api.schema  # noqa: F401
