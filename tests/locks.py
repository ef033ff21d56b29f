"""Waiting for an app's write to reach a lock that the `locker` fixture (conftest.py) holds:
races that happen every time, not now and then."""

from __future__ import annotations

import time

import psycopg

from tests.servers import test_database_url as database_url


def wait_until_blocked(locker: psycopg.Connection) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with psycopg.connect(database_url(), autocommit=True) as probe:
            row = probe.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()
        if row and row[0]:
            return
        time.sleep(0.02)
    raise AssertionError("the write never reached the lock")
