import json
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from keys import text
from keys.management.commands._database import DatabaseCommand
from keys.models import ApiKey


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class Command(DatabaseCommand):
    if_database_fails = "The list is missing keys, or all of them."

    help = "List API keys, newest first (never their secrets, which are not stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON array")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        keys = ApiKey.objects.order_by("-id").iterator(chunk_size=2000)
        rows = (
            {
                "public_id": key.public_id,
                "description": text.secrets_hidden(key.description),
                "status": key.status(now).lower(),
                "organization": key.organization,
                "workspace": key.workspace,
                "created_at": _iso(key.created_at),
                "expires_at": _iso(key.expires_at),
                "disabled_at": _iso(key.disabled_at),
            }
            for key in keys
        )
        if options["json"]:
            self.stdout.write(json.dumps(list(rows), indent=2))
            return
        self.stdout.write(f"{'PUBLIC ID':<12}  {'STATUS':<8}  {'EXPIRES':<20}  DESCRIPTION")
        for row in rows:
            expires = (row["expires_at"] or "never")[:19]
            self.stdout.write(
                f"{row['public_id']:<12}  {row['status']:<8}  {expires:<20}  "
                f"{text.printable(row['description'] or '—')}"
            )
