"""The database timeouts each connection carries, and the per-process breaker that stops
requests queueing behind a database that does not answer. The frozen server itself is in
test_database_freeze.py."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from t0admin.postgres.base import Silence


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
