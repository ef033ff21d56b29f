"""`migrate`, preceded by what Django's migrations cannot do for themselves.

Django's own tables must land in the `t0admin` schema, so it has to exist before Django
creates even its `django_migrations` table there; and the gateway's table must exist (or
be verified) before anything reads it. Overriding the command covers every caller:
`make run`, `manage.py migrate` and pytest-django's test database alike.
"""

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

from keys import gateway_schema

MIGRATE_LOCK = gateway_schema.BOOTSTRAP_LOCK + 1


class Command(DjangoMigrate):
    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        # Another instance starting at the same time may hold the lock below for as long
        # as its migrations take: wait for it, past the timeouts meant for requests.
        with connections[using].unhurried():  # type: ignore[attr-defined]
            self._migrate(using, *args, **options)

    def _migrate(self, using: str, *args: Any, **options: Any) -> None:
        with connections[using].cursor() as cursor:
            # Two processes migrating at once would race on Django's own tables too.
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK])
        try:
            with connections[using].cursor() as cursor:
                cursor.execute("CREATE SCHEMA IF NOT EXISTS t0admin")
            try:
                gateway_schema.ensure(using)
            except gateway_schema.GatewaySchemaError as error:
                raise CommandError(str(error)) from None
            super().handle(*args, **options)
        finally:
            with connections[using].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATE_LOCK])
