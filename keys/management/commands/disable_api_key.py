"""Like `gateway --disable-api-key`, but keeps the first disable time."""

from typing import Any

from django.core.management.base import CommandError, CommandParser

from keys import service
from keys.management.commands._actor import cli_actor
from keys.management.commands._database import DATABASE_FAILED, DatabaseCommand


class Command(DatabaseCommand):
    if_database_fails = "The key was not disabled: run this again."

    help = (
        "Disable an API key by its public ID. Exit 0 when disabled now or already, 1 when "
        "unknown, 3 when the database failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("public_id")

    def handle(self, *args: Any, **options: Any) -> None:
        public_id = options["public_id"]
        try:
            api_key, changed = service.disable_key(actor=cli_actor(), public_id=public_id)
        except service.KeyNotFound as error:
            raise CommandError(str(error)) from None
        except service.OutcomeUnknown as error:
            raise CommandError(
                f"Not known whether the key was disabled: the database connection broke "
                f"while {error.action} was being committed. Run this again: disabling twice "
                "is harmless.",
                returncode=DATABASE_FAILED,
            ) from None
        if changed:
            self.stdout.write(f"Disabled API key {public_id}.")
        else:
            self.stdout.write(
                f"API key {public_id} was already disabled at "
                f"{api_key.disabled_at:%Y-%m-%dT%H:%M:%SZ}; nothing changed."
            )
