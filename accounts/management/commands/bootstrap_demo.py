"""Create the demo account (idempotent) and issue fresh test and live API keys.

Keys are stored hashed, so a run cannot show the previous run's keys again: it issues
new ones and revokes those the previous run issued, so the demo account never gathers
live keys nobody knows.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from accounts import selectors, services
from accounts.models import Account, ApiKey, Environment, Membership, Role

DEMO_ACCOUNT = "Demo account"
ADMIN_USER = "admin"
OWNER_USER = "owner"
KEY_NAME = "demo (bootstrap)"


def _reissue(environment: Environment) -> services.IssuedKey:
    """A new demo key for the environment; the previous runs' demo keys revoked."""
    previous = ApiKey.objects.filter(
        environment=environment, name=KEY_NAME, revoked_at__isnull=True
    )
    for api_key in previous:
        services.api_key_revoke(api_key=api_key)
    return services.api_key_issue(environment=environment, name=KEY_NAME)


class Command(BaseCommand):
    help = "Create the demo account, a staff superuser and an owner, and print fresh API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print only a JSON object."
        )
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the server is reached, for the URLs printed "
            "(make run passes its HOST and PORT).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        admin_password = secrets.token_urlsafe(12)
        owner_password = secrets.token_urlsafe(12)
        with transaction.atomic():
            admin, _ = User.objects.get_or_create(
                username=ADMIN_USER, defaults={"is_staff": True, "is_superuser": True}
            )
            admin.is_staff = admin.is_superuser = True
            admin.set_password(admin_password)
            admin.save()
            owner, _ = User.objects.get_or_create(
                username=OWNER_USER, defaults={"email": "owner@example.com"}
            )
            owner.set_password(owner_password)
            owner.save()
            account = Account.objects.filter(name=DEMO_ACCOUNT).first()
            created = account is None
            if account is None:
                account = services.account_create(name=DEMO_ACCOUNT, owner=owner)
            Membership.objects.get_or_create(
                user=owner, account=account, defaults={"role": Role.OWNER}
            )
            test_key = _reissue(selectors.environment_of(account, "test"))
            live_key = _reissue(selectors.environment_of(account, "live"))
        result = {
            "accountId": str(account.public_id),
            "testKey": test_key.secret,
            "liveKey": live_key.secret,
            "adminUser": ADMIN_USER,
            "adminPassword": admin_password,
            "ownerUser": OWNER_USER,
            "ownerPassword": owner_password,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"{'Created' if created else 'Found'} {DEMO_ACCOUNT} ({result['accountId']})."
            )
        )
        base = str(options["base_url"]).rstrip("/")
        self.stdout.write(
            "\n"
            f"  Test API key:  {test_key.secret}\n"
            f"  Live API key:  {live_key.secret}\n"
            "  (shown once: each run of bootstrap_demo issues new keys and revokes\n"
            "   the previous run's)\n\n"
            f"  Admin:      {base}/admin/      user {ADMIN_USER}  "
            f"password {admin_password}\n"
            f"  Dashboard:  {base}/dashboard/  user {OWNER_USER}  "
            f"password {owner_password}\n\n"
            '  Try:  curl -H "Authorization: Bearer $TEST_KEY" '
            f"{base}/api/v1/environment\n"
        )
