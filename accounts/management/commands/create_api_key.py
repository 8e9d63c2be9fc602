"""Issue an API key for one environment of an account and print it once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.models import Account, Environment
from config.tenancy import parse_public_id


class Command(BaseCommand):
    help = "Issue an API key: --account <id or exact name> --environment live|test --name NAME."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--account", required=True, help="Account id or exact name."
        )
        parser.add_argument("--environment", required=True, choices=["live", "test"])
        parser.add_argument("--name", required=True, help="A label for the key.")

    def handle(self, *args: Any, **options: Any) -> None:
        ref = options["account"]
        public_id = parse_public_id(ref)
        accounts = (
            Account.objects.filter(public_id=public_id)
            if public_id
            else Account.objects.filter(name=ref)
        )
        matches = list(accounts[:2])
        if not matches:
            raise CommandError(f"No account matches {ref!r}.")
        if len(matches) > 1:
            raise CommandError(
                f"Several accounts are named {ref!r}; pass the account id."
            )
        environment = Environment.objects.get(
            account=matches[0], kind=options["environment"]
        )
        issued = services.api_key_issue(environment=environment, name=options["name"])
        self.stderr.write(
            f"Issued key {issued.api_key.public_id} for {matches[0].name} ({environment.kind}). "
            "It is shown once:"
        )
        self.stdout.write(issued.secret)
