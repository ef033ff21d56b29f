"""Like `gateway --create-api-key`: prints only the key, for scripts."""

from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser

from keys import service
from keys.management.commands._actor import cli_actor
from keys.management.commands._database import DATABASE_FAILED, DatabaseCommand


def rfc3339(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CommandError(
            f"--expiration {text!r} is not an RFC 3339 time, e.g. 2027-01-31T17:00:00Z."
        ) from None
    if value.tzinfo is None:
        raise CommandError(f"--expiration {text!r} needs a time zone offset, e.g. Z or +01:00.")
    return value


class Command(DatabaseCommand):
    if_database_fails = "No key was created."

    help = "Create an API key and print it (only the key, on stdout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--description", default=None)
        parser.add_argument("--expiration", default=None, help="RFC 3339, in the future")

    def handle(self, *args: Any, **options: Any) -> None:
        expires_at = rfc3339(options["expiration"]) if options["expiration"] else None
        try:
            created = service.create_key(
                actor=cli_actor(), description=options["description"], expires_at=expires_at
            )
        except service.ServiceError as error:
            raise CommandError(str(error)) from None
        except service.OutcomeUnknown as error:
            raise CommandError(
                f"Not known whether the key was saved: the database connection broke while "
                f"{error.action} was being committed. Check with list_api_keys; if the key "
                "is there, its secret cannot be shown: disable it and create another.",
                returncode=DATABASE_FAILED,
            ) from None
        self.stdout.write(created.secret)
