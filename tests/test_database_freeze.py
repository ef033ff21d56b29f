"""A database that stops answering (SIGSTOP) costs each request seconds, never the whole
freeze; probes keep answering; and the app recovers on its own once the database is back.

Real gunicorn with its real configuration, in front of a PostgreSQL of this test's
own, frozen with SIGSTOP for 15 seconds while clients keep asking for the keys page.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests import servers
from tests.conftest import manage
from tests.pgserver import PostgresServer, postgres_server

pytestmark = pytest.mark.slow

FREEZE_SECONDS = 15
# Clients asking for pages at once during the freeze: fewer than one worker's threads, so
# that the probes measure queueing behind stuck requests, not a server at capacity.
LOAD_CLIENTS = 6
IDENTITY = {"X-Forwarded-Email": "admin@example.com"}


@dataclass
class Timed:
    path: str
    started: float
    seconds: float
    status: int  # 0: no answer at all


def timed_get(port: int, path: str, headers: dict[str, str] | None = None) -> Timed:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
    finally:
        connection.close()
    return Timed(path, started, time.monotonic() - started, status)


@dataclass
class Site:
    database: PostgresServer
    app: servers.Server


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with postgres_server() as database:
        with psycopg.connect(database.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE t0admin")
        url = database.url("t0admin", connect_timeout=None)  # t0admin's own timeouts
        migrated = manage(url, "migrate", "--noinput")
        assert migrated.returncode == 0, migrated.stderr
        env = {
            # Identity by header keeps the test to the database: no sign-in form, and
            # every page still loads the session and the user from the database.
            "T0ADMIN_AUTH": "proxy",
            "T0ADMIN_TRUSTED_PROXIES": "127.0.0.1",
            "T0ADMIN_PROXY_ADMINS": "admin@example.com",
        }
        with servers.gunicorn(url, env=env) as app:
            yield Site(database, app)


def test_a_frozen_database_costs_seconds_and_the_app_recovers(site: Site) -> None:
    port = site.app.port
    for _ in range(20):  # every worker thread keeps a connection, as in daily use
        assert timed_get(port, "/api-keys", IDENTITY).status == 200
    assert timed_get(port, "/readyz").status == 200

    pages: list[Timed] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            pages.append(timed_get(port, "/api-keys", IDENTITY))

    clients = [threading.Thread(target=client) for _ in range(LOAD_CLIENTS)]
    for thread in clients:
        thread.start()
    probes: list[Timed] = []
    try:
        time.sleep(1)
        try:
            site.database.freeze()
            frozen_at = time.monotonic()
            time.sleep(1)  # the clients' requests are now stuck on the database
            while time.monotonic() < frozen_at + FREEZE_SECONDS:
                probes.append(timed_get(port, "/healthz"))
                probes.append(timed_get(port, "/readyz"))
                time.sleep(0.5)
        finally:
            site.database.thaw()
        thawed_at = time.monotonic()
        recovered = None
        while recovered is None and time.monotonic() < thawed_at + 20:
            if timed_get(port, "/api-keys", IDENTITY).status == 200:
                recovered = time.monotonic() - thawed_at
            else:
                time.sleep(0.2)
    finally:
        stop.set()
        for thread in clients:
            thread.join(60)

    log = site.app.output()
    during = [p for p in pages if frozen_at <= p.started + p.seconds and p.started < thawed_at]
    slowest = max(p.seconds for p in pages)
    health = [p for p in probes if p.path == "/healthz"]
    ready = [p for p in probes if p.path == "/readyz"]
    print(
        f"\npages: {len(pages)}, {len(during)} touched the freeze, slowest {slowest:.2f}s, "
        f"statuses {sorted({p.status for p in during})}\n"
        f"/healthz slowest {max(p.seconds for p in health):.3f}s of {len(health)}; "
        f"/readyz slowest {max(p.seconds for p in ready):.2f}s, statuses "
        f"{sorted({p.status for p in ready})}\nrecovered {recovered}s after the thaw"
    )
    assert during, "no request met the frozen database; the test proves nothing"
    assert slowest < 8, [p for p in pages if p.seconds >= 8]
    # Every request got an answer: the page, or the database-unreachable page. Never a
    # 500, and never a 400 from a session that could not be saved.
    assert {p.status for p in during} <= {200, 503}, log[-3000:]
    assert all(p.status == 200 and p.seconds < 1 for p in health), health
    assert all(p.status == 503 and p.seconds < 3 for p in ready), ready
    assert recovered is not None and recovered < 10, log[-3000:]
    # Readiness comes back with the database: the probe is never held off by a process
    # that still counts the database as silent (another worker may have served the page).
    ready_again = [timed_get(port, "/readyz") for _ in range(4)]
    assert all(p.status == 200 for p in ready_again), ready_again


def test_migrate_waits_for_another_instance_past_the_request_timeouts(scratch_db: str) -> None:
    """Instances started together migrate one after the other; the one that waits must
    not give up after the few seconds a request would."""
    from keys.management.commands.migrate import MIGRATE_LOCK

    held = 9  # beyond the lock (3 s), statement (5 s) and answer (6 s) timeouts
    with psycopg.connect(scratch_db, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK])
        release = threading.Timer(held, other.execute, ["SELECT pg_advisory_unlock_all()"])
        release.start()
        started = time.monotonic()
        try:
            result = manage(scratch_db, "migrate", "--noinput")
        finally:
            release.join()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= held


def test_a_skipped_health_check_meets_a_frozen_server_by_the_checks_deadline(
    site: Site, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """A kept connection that answered a moment ago skips the health check; the request's
    first statement then waits no longer than the check would have (3 s, not 6 s)."""
    from django.db.utils import ConnectionHandler

    from t0admin.postgres.base import DatabaseWrapper
    from t0admin.settings import _database

    own = _database(site.database.url("t0admin", None))
    settings = ConnectionHandler({"default": own}).settings["default"]  # Django's defaults
    assert (settings["HEALTH_CHECK_TIMEOUT"], settings["ANSWER_TIMEOUT"]) == (3, 6)
    wrapper = DatabaseWrapper(settings, alias="frozen")
    with django_db_blocker.unblock():  # a connection of this test's own, to its own server
        _first_statement_on_a_frozen_server(site, wrapper)


def _first_statement_on_a_frozen_server(site: Site, wrapper) -> None:  # type: ignore[no-untyped-def]
    from django.db import OperationalError

    from t0admin.postgres.base import silence

    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")  # answered just now
        site.database.freeze()
        try:
            wrapper.health_check_done = False  # as a request starts
            with (
                pytest.raises(OperationalError, match="did not answer within 3 seconds"),
                wrapper.cursor() as cursor,
            ):
                cursor.execute("SELECT 'the first statement of a request'")
        finally:
            site.database.thaw()
    finally:
        wrapper.close()
        silence.answered()  # per process: the next test starts with it closed
