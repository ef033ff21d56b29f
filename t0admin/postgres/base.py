"""Django's PostgreSQL backend, whose connections stop waiting on a server that answers
nothing at all.

The server-side timeouts (statement_timeout, lock_timeout, set in settings.py) end slow
work on a server that still runs. A server that is frozen (SIGSTOP, a hung VM, a dead
network path) ends nothing: the kernel still accepts connections and acknowledges every
byte, so TCP keepalives and tcp_user_timeout never fire either (measured). libpq's
connect_timeout covers the connection; this covers every later wait: each round trip
gets DATABASES[...]["ANSWER_TIMEOUT"] seconds, after which the connection is dropped and
the request fails like any other lost connection (the 503 page).

Once the database has failed to answer, a process stops queueing more requests behind it
for a moment (see Silence): they fail at once, keeping threads free for the health
probes and for the one request at a time that tries again.

Timestamps are also read faster here than by Django's own loader (see timestamptz_loader).
"""

from __future__ import annotations

import functools
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import errors
from psycopg.abc import AdaptContext, Buffer, PQGen
from psycopg.pq import Format, TransactionStatus
from psycopg.types.datetime import TimestamptzLoader as PythonParse


class Silence:
    """Per process: after the database left a request without an answer, new connections
    fail at once for QUIET seconds, then one request at a time tries, until one gets an
    answer. Only silence counts; an error the server answers with is an answer.

    Written here rather than taken from a circuit-breaker library: it must wrap connecting
    and waiting inside the driver, trip on psycopg's timeouts only, and fail before any
    connection is attempted; that is these few lines.
    """

    QUIET = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0  # 0: the database answers
        self._trying = False
        self._probe = threading.local()

    @contextmanager
    def probing(self) -> Iterator[None]:
        """The readiness check is always let through: it runs on one thread of its own with
        a deadline of its own, so it never holds up a request, and it is how a process
        learns first that the database is back. Its answer counts like any other."""
        self._probe.active = True
        try:
            yield
        finally:
            self._probe.active = False

    def admit(self) -> bool:
        if not self._until or getattr(self._probe, "active", False):
            return True
        with self._lock:
            if not self._until:
                return True
            if self._trying or time.monotonic() < self._until:
                return False
            self._trying = True
            return True

    def quiet(self) -> bool:
        return bool(self._until)

    def silent(self) -> None:
        with self._lock:
            self._until = time.monotonic() + self.QUIET
            self._trying = False

    def answered(self) -> None:
        if self._until or self._trying:
            with self._lock:
                self._until = 0.0
                self._trying = False

    def gave_up(self) -> None:
        """A try that failed for another reason (refused, bad password): the next may try."""
        with self._lock:
            self._trying = False


silence = Silence()

# Seconds after the server's last answer during which a kept connection is reused without
# the health check's round trip, if the server has not written to it (DatabaseWrapper).
UNCHECKED_FOR = 1.0


class Connection(psycopg.Connection[Any]):
    """A psycopg connection that gives every wait for the server a deadline."""

    # Set right after connecting (see DatabaseWrapper); None waits as long as psycopg does.
    answer_timeout: float | None = None
    answered_at = 0.0  # time.monotonic() when the server last answered
    # For the next wait only, if shorter: the health check's deadline, when the check was
    # skipped (DatabaseWrapper.is_usable), so that the statement that took its place meets
    # a frozen server no later than the check would have.
    next_answer_within: float | None = None

    def wait(self, gen: PQGen[Any], interval: float = 0.1, timeout: float | None = None) -> Any:
        limit = self.answer_timeout
        once, self.next_answer_within = self.next_answer_within, None
        if limit and once is not None:
            limit = min(limit, once)
        if timeout is not None or not limit:
            result = super().wait(gen, interval, timeout)
        else:
            try:
                result = super().wait(gen, interval, limit)
            except errors._WaitTimeout:  # psycopg's own "no answer in time"
                silence.silent()
                # The protocol stopped half-way: nothing more can be sent on this connection.
                self.close()
                raise psycopg.OperationalError(
                    f"the database did not answer within {limit:g} seconds; connection dropped"
                ) from None
            silence.answered()
        self.answered_at = time.monotonic()
        return result

    def quiet_since_answer(self) -> bool:
        """Nothing from the server is waiting to be read. On an idle connection the server
        writes only to end it (its last words, then the socket closes: readable)."""
        try:
            readable, _, _ = select.select([self.fileno()], [], [], 0)
        except (OSError, ValueError, psycopg.Error):  # closed meanwhile
            return False
        return not readable


TIMESTAMPTZ = psycopg.postgres.types["timestamptz"].oid
# psycopg's own text loader: its C version, since psycopg[binary] is installed.
_PARSE_TIMESTAMPTZ = psycopg.adapters.get_loader(TIMESTAMPTZ, Format.TEXT) or PythonParse


@functools.cache
def timestamptz_loader(zone: tzinfo | None) -> type[psycopg.adapt.Loader]:
    """What Django's loader (psycopg_any.BaseTzLoader) does, three times faster.

    Django's subclasses psycopg's pure-Python parser (a regular expression and a dozen
    ints a value; the C loader cannot be subclassed) and then sets Django's tzinfo. This
    one parses with psycopg's C loader and sets the same tzinfo: the same datetimes
    (tests/test_db_timestamps.py). Measured on the 10,000 rows of the list's biggest
    page: 35 ms to read them with Django's loader, 15 ms with this one, and 10 ms once it
    no longer relabels a datetime that already has the tzinfo.
    `timezone` is what Django's create_cursor compares to decide it needs no other.
    """

    class TimestamptzLoader(psycopg.adapt.Loader):
        timezone = zone

        def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
            super().__init__(oid, context)
            self._parse = _PARSE_TIMESTAMPTZ(oid, context).load

        def load(self, data: Buffer) -> datetime:
            # In the connection's time zone, which Django keeps equal to `zone`. For UTC
            # (Django's usual zone) the C loader already sets that very tzinfo; replace()
            # would cost four times the parsing (0.73 against 0.17 µs a value).
            parsed: datetime = self._parse(data)
            return parsed if parsed.tzinfo is zone else parsed.replace(tzinfo=zone)

    return TimestamptzLoader


class _Driver:
    """psycopg as Django's backend uses it, but connecting with the class above."""

    def __getattr__(self, name: str) -> Any:
        return getattr(psycopg, name)

    connect = Connection.connect


class DatabaseWrapper(base.DatabaseWrapper):
    Database = _Driver()

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if not silence.admit():
            raise psycopg.OperationalError(
                "the database did not answer a moment ago; another request is trying again"
            )
        try:
            connection = super().get_new_connection(conn_params)
        except errors.ConnectionTimeout:
            silence.silent()
            raise
        except BaseException:
            silence.gave_up()
            raise
        silence.answered()
        connection.answer_timeout = self.settings_dict.get("ANSWER_TIMEOUT")
        connection.adapters.register_loader(TIMESTAMPTZ, timestamptz_loader(self.timezone))
        return connection

    def set_autocommit(
        self, autocommit: bool, force_begin_transaction_with_broken_autocommit: bool = False
    ) -> None:
        # Leaving a transaction whose connection was dropped (no answer in time, or a
        # rollback that failed), Django connects again only to switch autocommit back on,
        # which a new connection is anyway. That connect, to a database that has just
        # failed, waits for the connect timeout or meets the breaker above, and its error
        # replaced the real one ("did not answer within 6 seconds" became "did not answer
        # a moment ago; another request is trying again", even in a command). The next
        # query connects as usual.
        if self.connection is None and autocommit == self.settings_dict["AUTOCOMMIT"]:
            self.validate_no_atomic_block()
            self.autocommit = autocommit
            return
        super().set_autocommit(autocommit, force_begin_transaction_with_broken_autocommit)

    def is_usable(self) -> bool:
        # The health check before reusing a connection is one SELECT 1: give it no longer
        # than a new connection would get, so a frozen server costs a request one short
        # wait here and one for the new connection, not two long ones.
        connection = self.connection
        if connection is None or silence.quiet():
            return False  # closed and replaced: by the one try, or at once by an error
        # Skipped, as HikariCP skips its own (aliveBypassWindowMs), for a connection the
        # server answered on a moment ago and has not written to since: under load every
        # request reuses such a connection, and the check was one of a page's few round
        # trips (bench/RESULTS.md, 2026-12-03 night). A server that shut down or ended
        # the connection has written to it, and gets the check; so does a connection
        # left in a transaction, failed or not (libpq knows without asking).
        check_within = self.settings_dict.get("HEALTH_CHECK_TIMEOUT")
        if (
            time.monotonic() - connection.answered_at < UNCHECKED_FOR
            and connection.info.transaction_status == TransactionStatus.IDLE
            and connection.quiet_since_answer()
        ):
            connection.next_answer_within = check_within
            return True
        usual = connection.answer_timeout
        connection.answer_timeout = check_within or usual
        try:
            return super().is_usable()
        finally:
            connection.answer_timeout = usual

    @contextmanager
    def unhurried(self) -> Iterator[None]:
        """No statement, lock or answer deadline on this connection meanwhile: for
        migrations, which may wait for another instance's and may take long on big
        tables. Requests keep their deadlines."""
        with self.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
            cursor.execute("SET lock_timeout = 0")
        connection = self.connection
        usual = connection.answer_timeout
        connection.answer_timeout = None
        try:
            yield
        finally:
            connection.answer_timeout = usual
            if not connection.closed:
                with self.cursor() as cursor:
                    # Back to the connection's own settings (the options in settings.py).
                    cursor.execute("RESET statement_timeout")
                    cursor.execute("RESET lock_timeout")
