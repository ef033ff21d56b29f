"""Key commands when the database fails under them: a sentence on stderr and exit status 3,
never a traceback, saying whether anything changed."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

DATABASE_FAILED = 3


def database_failed(error: Exception, what_happened: str) -> CommandError:
    words = str(error).strip()
    reason = words.splitlines()[0] if words else type(error).__name__
    return CommandError(
        f"The database failed: {reason}. {what_happened}", returncode=DATABASE_FAILED
    )


class DatabaseCommand(BaseCommand):
    # What a database error anywhere in the command means, in words.
    if_database_fails = "Nothing was changed."

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except DatabaseError as error:
            raise database_failed(error, self.if_database_fails) from None
