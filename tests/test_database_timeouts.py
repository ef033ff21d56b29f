"""The database timeouts each connection carries, and the per-process breaker that stops
requests queueing behind a database that does not answer. The frozen server itself is in
test_database_freeze.py."""

from __future__ import annotations

import select
import threading
import time

import pytest
from django.db import OperationalError, close_old_connections, connection

from keys.models import ApiKey
from t0admin.postgres.base import Silence, silence


@pytest.mark.django_db
def test_every_connection_carries_the_server_side_timeouts() -> None:
    with connection.cursor() as cursor:
        shown = {}
        for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
            cursor.execute(f"SHOW {name}")
            shown[name] = cursor.fetchone()[0]
    assert shown == {
        "statement_timeout": "5s",
        "lock_timeout": "3s",
        "idle_in_transaction_session_timeout": "10s",
    }
    assert connection.connection.answer_timeout == 6  # the server's statement timeout, + 1 s


def test_after_silence_requests_fail_at_once_then_one_tries_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    silence = Silence()
    monkeypatch.setattr(Silence, "QUIET", 0.2)
    assert silence.admit()
    silence.silent()
    assert not silence.admit()  # quiet: nobody waits on the database
    time.sleep(0.25)
    assert silence.admit()  # one request tries again...
    assert not silence.admit()  # ...and only one
    silence.gave_up()  # refused for another reason: the next one may try
    assert silence.admit()
    silence.answered()
    assert silence.admit() and silence.admit() and not silence.quiet()


def test_the_readiness_probe_is_never_held_off_by_silence() -> None:
    silence = Silence()
    silence.silent()
    assert not silence.admit()
    with silence.probing():
        assert silence.admit() and silence.admit()  # the probe asks, however often
        seen: list[bool] = []
        other = threading.Thread(target=lambda: seen.append(silence.admit()))
        other.start()
        other.join()
        assert seen == [False]  # only the probe's own thread
    assert not silence.admit()


@pytest.mark.django_db(transaction=True)
def test_a_statement_without_an_answer_is_the_error_given_not_the_breakers() -> None:
    """A bulk disable whose statement outlasts the answer timeout fails with that reason,
    as a command says it, and the next statement connects again as usual."""
    from keys import service

    keys = [service.create_key(actor="t").api_key.public_id for _ in range(3)]
    slept: list[bool] = []

    def slow_lock(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if "FOR UPDATE" in sql and not slept:
            slept.append(True)
            connection.connection.answer_timeout = 0.3  # this connection only
            execute("SELECT pg_sleep(1)", None, False, context)  # in the lock's place
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(slow_lock), pytest.raises(OperationalError) as failed:
            service.disable_keys(actor="t", public_ids=keys, reason="leaked")
        assert "did not answer within 0.3 seconds" in str(failed.value)
        assert "a moment ago" not in str(failed.value)
        assert connection.connection is None  # dropped, and not connected again meanwhile
    finally:
        silence.answered()  # the breaker is per process: the next test starts with it closed
    assert ApiKey.objects.filter(public_id__in=keys, disabled_at__isnull=True).count() == 3


def _last_statement(pid: int) -> str:
    """What the server says connection `pid` last ran, asked on a connection of our own."""
    import psycopg

    from tests.servers import test_database_url

    with psycopg.connect(test_database_url(), autocommit=True) as other:
        row = other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert row is not None, f"no connection {pid}"
    return str(row[0])


@pytest.mark.django_db(transaction=True)
def test_the_health_check_is_skipped_only_just_after_an_answer() -> None:
    from t0admin.postgres import base

    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement', pg_backend_pid()")
        pid = cursor.fetchone()[1]
    assert connection.is_usable()
    assert _last_statement(pid) == "SELECT 'the last statement', pg_backend_pid()"
    # Idle for longer: the check runs (SELECT 1, on psycopg's own cursor).
    connection.connection.answered_at -= base.UNCHECKED_FOR
    assert connection.is_usable()
    assert _last_statement(pid) == "SELECT 1"


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_a_moment_ago_is_replaced(admin_client) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    from tests.servers import test_database_url

    assert admin_client.get("/api-keys").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(test_database_url(), autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    # The server's last words reach the socket; as if it had answered just now, too.
    assert select.select([connection.connection.fileno()], [], [], 5)[0]
    connection.connection.answered_at = time.monotonic()
    assert not connection.is_usable()
    # What Django does as a request starts (the test client skips it): the check then
    # replaces the connection, and the page is served.
    close_old_connections()
    assert admin_client.get("/api-keys").status_code == 200
    assert connection.connection.info.backend_pid != pid


@pytest.mark.django_db(transaction=True)
def test_a_connection_left_in_a_failed_transaction_is_checked_and_replaced() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    raw = connection.connection
    raw.execute("BEGIN")
    with pytest.raises(Exception, match="division by zero"):
        raw.execute("SELECT 1 / 0")
    assert raw.answered_at > time.monotonic() - 1  # answered a moment ago, and yet:
    assert not connection.is_usable()
    connection.close()
