"""The gateway's table and ledger: created exactly as the gateway would, never altered."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from keys import gateway_schema
from tests.conftest import ROOT, manage, manage_env

# The DDL exactly as GATEWAY.md describes the gateway's first migration.
GATEWAY_FIRST_MIGRATION = """
CREATE TABLE tensorzero_auth_api_key (
    "id" BIGSERIAL PRIMARY KEY,
    "organization" TEXT NOT NULL,
    "workspace" TEXT NOT NULL,
    "description" TEXT,
    "public_id" CHAR(12) NOT NULL,
    "hash" VARCHAR(255) NOT NULL,
    "disabled_at" TIMESTAMPTZ NULL,
    "created_at" TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "uniq_public_id" UNIQUE ("public_id")
);
"""
GATEWAY_LEDGER = """
CREATE TABLE tensorzero_auth__sqlx_migrations (
    version BIGINT PRIMARY KEY, description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL
);
"""

EXPECTED_COLUMNS = [
    # name, type, nullable, default
    ("id", "bigint", "NO", "nextval('tensorzero_auth_api_key_id_seq'::regclass)"),
    ("organization", "text", "NO", None),
    ("workspace", "text", "NO", None),
    ("description", "text", "YES", None),
    ("public_id", "character(12)", "NO", None),
    ("hash", "character varying(255)", "NO", None),
    ("disabled_at", "timestamp with time zone", "YES", None),
    ("created_at", "timestamp with time zone", "NO", "CURRENT_TIMESTAMP"),
    ("updated_at", "timestamp with time zone", "NO", "CURRENT_TIMESTAMP"),
    ("expires_at", "timestamp with time zone", "YES", None),
]

CHECKSUMS = {
    20251020144538: "e8df10739c23504f67c5baa7c0e8ce6d74e32c0ec35cd8c1ec402d89404196a3"
    "1cf96a9b66d2fca4d592b8a0b426bb58",
    20251219223031: "982edd0b2f8f95481ee841ad7ff2f69369742a613525bad7a6cebc5422e2534e"
    "4f7eac39b818d5093bbff35a48bb0b50",
}


def columns(url: str) -> list[tuple[str, str, str, str | None]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                   CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END,
                   pg_get_expr(d.adbin, d.adrelid)
            FROM pg_attribute a
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = 'public.tensorzero_auth_api_key'::regclass
              AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """
        ).fetchall()


def constraints(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'public.tensorzero_auth_api_key'::regclass AND contype <> 'n' "
            "ORDER BY conname"
        ).fetchall()


def indexes(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = 'tensorzero_auth_api_key' ORDER BY indexname"
        ).fetchall()
    return [row[0] for row in rows]


def ledger(url: str) -> list[tuple[int, str, bool, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT version, description, success, encode(checksum, 'hex') "
            "FROM public.tensorzero_auth__sqlx_migrations ORDER BY version"
        ).fetchall()


def test_shipped_migration_files_have_the_gateways_checksums() -> None:
    for migration in gateway_schema.MIGRATIONS:
        assert gateway_schema.file_checksum(migration) == CHECKSUMS[migration.version]
        assert migration.checksum == CHECKSUMS[migration.version]


def test_bootstrap_on_empty_database_creates_exactly_the_gateways_table(scratch_db: str) -> None:
    result = manage(scratch_db, "ensure_gateway_schema")
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout
    assert columns(scratch_db) == EXPECTED_COLUMNS
    assert constraints(scratch_db) == [
        ("tensorzero_auth_api_key_pkey", "PRIMARY KEY (id)"),
        ("uniq_public_id", "UNIQUE (public_id)"),
    ]
    assert indexes(scratch_db) == ["tensorzero_auth_api_key_pkey", "uniq_public_id"]


def test_bootstrap_records_both_migrations_with_the_gateways_checksums(scratch_db: str) -> None:
    assert manage(scratch_db, "ensure_gateway_schema").returncode == 0
    assert ledger(scratch_db) == [
        (20251020144538, "api key", True, CHECKSUMS[20251020144538]),
        (
            20251219223031,
            "add expires at to tensorzero auth api key",
            True,
            CHECKSUMS[20251219223031],
        ),
    ]
    with psycopg.connect(scratch_db) as conn:
        times = conn.execute(
            "SELECT execution_time FROM tensorzero_auth__sqlx_migrations"
        ).fetchall()
    assert all(t[0] > 0 for t in times)


def test_bootstrap_twice_changes_nothing(scratch_db: str) -> None:
    assert manage(scratch_db, "ensure_gateway_schema").returncode == 0
    with psycopg.connect(scratch_db) as conn:
        before = conn.execute(
            "SELECT version, installed_on FROM tensorzero_auth__sqlx_migrations ORDER BY 1"
        ).fetchall()
    second = manage(scratch_db, "ensure_gateway_schema")
    assert second.returncode == 0, second.stderr
    assert "verified" in second.stdout
    with psycopg.connect(scratch_db) as conn:
        after = conn.execute(
            "SELECT version, installed_on FROM tensorzero_auth__sqlx_migrations ORDER BY 1"
        ).fetchall()
    assert after == before
    assert columns(scratch_db) == EXPECTED_COLUMNS


def test_bootstrap_from_two_processes_at_once_creates_once(scratch_db: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "ensure_gateway_schema"],
            cwd=ROOT,
            env=manage_env(scratch_db),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    outcomes = sorted(out.split()[2].rstrip(":") for out, _ in outputs)
    assert outcomes == ["created", "verified", "verified"]
    assert len(ledger(scratch_db)) == 2
    assert columns(scratch_db) == EXPECTED_COLUMNS


def test_table_created_the_gateways_way_is_accepted_untouched(scratch_db: str) -> None:
    with psycopg.connect(scratch_db) as conn:
        conn.execute(GATEWAY_FIRST_MIGRATION)
        conn.execute("ALTER TABLE tensorzero_auth_api_key ADD COLUMN expires_at TIMESTAMPTZ")
        conn.execute(GATEWAY_LEDGER)
        for version, checksum in CHECKSUMS.items():
            conn.execute(
                "INSERT INTO tensorzero_auth__sqlx_migrations "
                "(version, description, success, checksum, execution_time) "
                "VALUES (%s, 'x', true, %s, 1)",
                [version, bytes.fromhex(checksum)],
            )
        conn.execute(
            "INSERT INTO public.tensorzero_auth_api_key (organization, workspace, public_id, hash) "
            "VALUES ('default', 'default', 'AAAAAAAAAAAA', 'h')"
        )
    before = (columns(scratch_db), ledger(scratch_db))
    result = manage(scratch_db, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    assert (columns(scratch_db), ledger(scratch_db)) == before
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT count(*) FROM public.tensorzero_auth_api_key").fetchone() == (
            1,
        )


def test_table_without_expires_at_is_refused_with_the_migration_hint(scratch_db: str) -> None:
    with psycopg.connect(scratch_db) as conn:
        conn.execute(GATEWAY_FIRST_MIGRATION)
    before = columns(scratch_db)
    for command in ("ensure_gateway_schema", "migrate"):
        result = manage(scratch_db, command)
        assert result.returncode != 0
        assert "--run-postgres-migrations" in result.stderr
        assert "expires_at" in result.stderr
        assert "Traceback" not in result.stderr
    assert columns(scratch_db) == before


def test_no_django_table_lands_in_public(scratch_db: str) -> None:
    result = manage(scratch_db, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    with psycopg.connect(scratch_db) as conn:
        public = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        ours = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 't0admin'"
            )
        }
    assert public == {"tensorzero_auth_api_key", "tensorzero_auth__sqlx_migrations"}
    assert {"django_migrations", "auth_user", "keys_session"} <= ours
