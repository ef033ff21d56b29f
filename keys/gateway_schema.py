"""Finds, verifies or bootstraps the gateway's API key table and its migration ledger.

The gateway (sqlx) owns `tensorzero_auth_api_key` and records its migrations in
`tensorzero_auth__sqlx_migrations`. On an empty database we create both exactly as the
gateway's own migrations would, byte for byte from the migration files it ships, so that
a later `gateway --run-postgres-migrations` finds them applied with matching checksums.
A table the gateway made is only ever read here, never altered.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import connections, transaction

TABLE = "tensorzero_auth_api_key"
LEDGER = "tensorzero_auth__sqlx_migrations"
SCHEMA = "public"  # the gateway's default schema, whatever our search_path says
MIGRATIONS_DIR = Path(__file__).resolve().parent / "gateway_migrations"

# Any constant works as long as every t0admin process uses the same one.
BOOTSTRAP_LOCK = 0x7430_6164_6D69_6E01

REQUIRED_COLUMNS = (
    "id",
    "organization",
    "workspace",
    "description",
    "public_id",
    "hash",
    "disabled_at",
    "created_at",
    "updated_at",
    "expires_at",
)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    checksum: str  # SHA-384 of the migration file, hex, as GATEWAY.md gives it
    first_release: str  # the first gateway release that ships this file byte for byte

    @property
    def path(self) -> Path:
        return MIGRATIONS_DIR / f"{self.version}_{self.description.replace(' ', '_')}.sql"

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


MIGRATIONS = (
    Migration(
        20251020144538,
        "api key",
        "e8df10739c23504f67c5baa7c0e8ce6d74e32c0ec35cd8c1ec402d89404196a3"
        "1cf96a9b66d2fca4d592b8a0b426bb58",
        "2025.10.9",  # 2025.10.6 and 2025.10.7 shipped an earlier text (another checksum)
    ),
    Migration(
        20251219223031,
        "add expires at to tensorzero auth api key",
        "982edd0b2f8f95481ee841ad7ff2f69369742a613525bad7a6cebc5422e2534e"
        "4f7eac39b818d5093bbff35a48bb0b50",
        "2026.2.2",
    ),
)

# Read from the gateway's source, release by release (crates/tensorzero-auth/src/postgres/
# migrations): every release from the last migration's first one through this one ships
# exactly MIGRATIONS. compose.yaml pins this release; tests/test_compose.py holds them together.
GATEWAY_RELEASE_CHECKED = "2026.4.1"
GATEWAY_RELEASE_NEEDED = MIGRATIONS[-1].first_release

MIGRATE_HINT = (
    "run the gateway's migrations (gateway --run-postgres-migrations, TensorZero "
    f"{GATEWAY_RELEASE_NEEDED} or later) against this database, then start t0admin again"
)


class GatewaySchemaError(Exception):
    """The database holds something t0admin must not write to; the message says what to do."""


def file_checksum(migration: Migration) -> str:
    return hashlib.sha384(migration.path.read_bytes()).hexdigest()


def _table_columns(cursor, table: str) -> set[str]:  # type: ignore[no-untyped-def]
    cursor.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        [SCHEMA, table],
    )
    return {row[0] for row in cursor.fetchall()}


def verify(using: str = "default") -> None:
    """Raise GatewaySchemaError unless the gateway's table has every column t0admin uses."""
    with connections[using].cursor() as cursor:
        columns = _table_columns(cursor, TABLE)
    if not columns:
        raise GatewaySchemaError(
            f"The table {SCHEMA}.{TABLE} does not exist: "
            "run `python manage.py ensure_gateway_schema` or " + MIGRATE_HINT + "."
        )
    if "expires_at" not in columns:
        raise GatewaySchemaError(
            f"The gateway's table {SCHEMA}.{TABLE} has no expires_at column, so it was made "
            f"by a TensorZero gateway older than {GATEWAY_RELEASE_NEEDED}: " + MIGRATE_HINT + "."
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise GatewaySchemaError(
            f"The table {SCHEMA}.{TABLE} lacks the columns {', '.join(missing)}: it is not "
            "the TensorZero gateway's API key table, and t0admin will not write to it."
        )


def ensure(using: str = "default") -> str:
    """Create the gateway's table and ledger when absent, else verify them.

    Returns "created" or "verified". One transaction, serialised by an advisory lock so
    that two processes starting together create the table once.
    """
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [BOOTSTRAP_LOCK])
        if _table_columns(cursor, TABLE):
            created = False
        else:
            _bootstrap(cursor)
            created = True
    verify(using)
    return "created" if created else "verified"


def _bootstrap(cursor) -> None:  # type: ignore[no-untyped-def]
    # The gateway's files name the table without a schema: run them where the gateway
    # would find it. SET LOCAL ends with this transaction.
    cursor.execute(f"SET LOCAL search_path = {SCHEMA}")
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {LEDGER} ("
        "version BIGINT PRIMARY KEY, description TEXT NOT NULL, "
        "installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, "
        "checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)"
    )
    cursor.execute(
        f"SELECT version FROM {LEDGER} WHERE version = ANY(%s)",
        [[m.version for m in MIGRATIONS]],
    )
    recorded = sorted(row[0] for row in cursor.fetchall())
    if recorded:
        raise GatewaySchemaError(
            f"The gateway's ledger {LEDGER} records migrations {recorded} but the table "
            f"{TABLE} is missing; t0admin will not guess. Restore the table or "
            + MIGRATE_HINT
            + "."
        )
    for migration in MIGRATIONS:
        started = time.perf_counter_ns()
        cursor.execute(migration.sql())
        elapsed = time.perf_counter_ns() - started
        cursor.execute(
            f"INSERT INTO {LEDGER} (version, description, success, checksum, execution_time) "
            "VALUES (%s, %s, true, %s, %s)",
            [migration.version, migration.description, bytes.fromhex(migration.checksum), elapsed],
        )
    cursor.execute("SET LOCAL search_path TO DEFAULT")
