"""Shared fixtures: scratch databases on the test PostgreSQL, and subprocess helpers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session: pytest.Session) -> None:
    """Pages link to the hashed names in collectstatic's manifest, as in production: bring
    it up to date for a bare `pytest` too (a no-op after `make test`)."""
    subprocess.run(["make", "--silent", "staticfiles"], cwd=ROOT, check=True)


def server_url(dbname: str) -> str:
    """A libpq connection string to `dbname` on the PostgreSQL the tests run against."""
    return make_conninfo(settings.DATABASE_URL, dbname=dbname)


@pytest.fixture
def scratch_db() -> Iterator[str]:
    """A fresh, empty database; dropped afterwards. Yields its connection string."""
    name = f"t0admin_scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url(name)
    finally:
        with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TENSORZERO_POSTGRES_URL=database_url,
        DJANGO_SECRET_KEY="test-secret-key-not-for-production-" + "x" * 20,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(
    database_url: str, *args: str, stdin: str = "", **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run `manage.py ARGS` in a fresh process against `database_url`."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=manage_env(database_url, **extra),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server_url(transactional_db: None) -> Iterator[str]:
    """A real gunicorn serving the test database (rows a test writes must be committed)."""
    from tests.servers import gunicorn, test_database_url

    with gunicorn(test_database_url()) as server:
        yield server.url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from tests.servers import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(timezone_id="Europe/Berlin", locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()


def gateway_accepts(key: str) -> bool:
    """The gateway's own check (GATEWAY.md), in plain SQL: parse, hash, look up, rules."""
    import hashlib

    from django.db import connection

    parts = key.split("-")
    if len(parts) != 4 or parts[:2] != ["sk", "t0"] or len(parts[2]) != 12 or len(parts[3]) != 48:
        return False
    digest = hashlib.sha256(parts[3].encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT disabled_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
            "FROM public.tensorzero_auth_api_key WHERE public_id = %s AND hash = %s",
            [parts[2], digest],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


@pytest.fixture
def signed_in_page(page, live_server_url: str, admin_user):  # type: ignore[no-untyped-def]
    """A browser page carrying a superuser's session for the live server."""
    from django.test import Client

    client = Client()
    client.force_login(admin_user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server_url}]
    )
    return page


@pytest.fixture
def viewer(django_user_model):  # type: ignore[no-untyped-def]
    """A signed-in user who may see keys but not change them."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="not-used-" + "v" * 12)
    user.user_permissions.add(
        Permission.objects.get(codename="view_apikey", content_type__app_label="keys")
    )
    return user


@pytest.fixture
def viewer_client(client, viewer):  # type: ignore[no-untyped-def]
    client.force_login(viewer)
    return client


@pytest.fixture
def locker() -> Iterator[psycopg.Connection]:
    """A connection of the test's own that holds locks the app's write has to wait for
    (with tests.locks.wait_until_blocked)."""
    from tests.servers import test_database_url

    with psycopg.connect(test_database_url()) as connection:
        yield connection


@pytest.fixture(autouse=True)
def _empty_gateway_table_after_transactional_tests(request):  # type: ignore[no-untyped-def]
    """Django's flush after a transactional test skips unmanaged tables: empty it here."""
    yield
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(
        marker and marker.kwargs.get("transaction")
    )
    if transactional:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE public.tensorzero_auth_api_key RESTART IDENTITY")


@pytest.fixture(autouse=True)
def _usage_tables_looked_for_afresh() -> Iterator[None]:
    """Tests make and drop the gateway's observability tables: what one test's pages found
    (keys.usage.recent_availability) must not answer for the next test's."""
    from keys import usage

    usage.forget_availability()
    yield
    usage.forget_availability()
