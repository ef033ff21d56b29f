"""What each key did, read from the gateway's observability tables (GATEWAY.md, "Where usage
shows up"), and the rollup t0admin keeps of them in its own schema.

The gateway's tables are read, never altered (no index, trigger or column). A straight
query per key is slow for a busy key (its tag matches a large part of every partition, and
the GIN index only finds rows, it does not count or sort them), so usage is rolled up per
key and hour (UsageHour, ModelUsageHour, KeyLastUsed; bench/RESULTS.md compares designs):

- Rows are taken by the time in their UUIDv7 id, so every read is a range of each
  partition's primary key (id, created_at): no assumption about created_at, and partitions
  created or dropped under the rollup change nothing (a dropped day stays counted here).
- `catch_up()` feeds the rollup from its watermark to now, in chunks, each one transaction
  that first replaces the hours from (watermark - late window) on: a row the gateway writes
  up to T0ADMIN_USAGE_LATE_SECONDS after its id's time is counted, and none twice. A
  stretch without inferences is crossed in one chunk.
- Several t0admin instances: each chunk runs under a transaction-level advisory lock taken
  with try; the instance that gets it feeds, the others read what is there (never wait).
- Pages call `refresh()`: a catch-up only when the watermark is older than
  T0ADMIN_USAGE_MAX_AGE_SECONDS, bounded by T0ADMIN_USAGE_CATCH_UP_SECONDS. Every figure
  is "as of" the watermark, which pages show; the partial hours at a window's edge are
  counted from the raw rows, so windows are exact up to that moment.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone

from keys import gateway_schema
from keys.models import KeyLastUsed, ModelUsageHour, UsageHour, UsageState

log = logging.getLogger("t0admin.usage")

SCHEMA = "tensorzero"
INFERENCE_TABLES = ("chat_inferences", "json_inferences")
MODEL_TABLE = "model_inferences"
FEEDBACK_TABLES = (
    "boolean_metric_feedback",
    "float_metric_feedback",
    "comment_feedback",
    "demonstration_feedback",
)
TAG = "tensorzero::api_key_public_id"
LOCK = gateway_schema.BOOTSTRAP_LOCK + 8  # any constant every t0admin process shares
HOUR = timedelta(hours=1)
CHUNK = timedelta(hours=6)
MIN_CHUNK = timedelta(minutes=5)
_chunk_limit = CHUNK  # per process: halved when a bounded catch-up runs out of time
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = 50
NO_NAME = "(no name)"  # a row another writer left without a function or model name
WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("Last hour", HOUR),
    ("Last 24 hours", timedelta(days=1)),
    ("Last 7 days", timedelta(days=7)),
    ("Last 30 days", timedelta(days=30)),
)
BREAKDOWN = timedelta(days=30)
DENSE = timedelta(hours=3)  # a key with its latest 50 inferences in this span is "busy"

ABSENT = (
    "No usage figures: this database has no TensorZero observability tables (the gateway "
    "keeps its observability data in ClickHouse, or observability is off)."
)
FORBIDDEN = (
    "No usage figures: t0admin's database role may not read the gateway's observability "
    "tables (schema tensorzero); grant it USAGE on the schema and SELECT on the tables."
)
UNREADABLE = "No usage figures: reading them failed (details in t0admin's log)."


def _id_time(column: str) -> str:
    """SQL for the millisecond time in a UUIDv7 (its first 48 bits)."""
    text = f"{column}::text"
    hex48 = f"substr({text}, 1, 8) || substr({text}, 10, 4)"
    return f"to_timestamp((('x' || {hex48})::bit(48)::bigint) / 1000.0)"


def uuid_floor(at: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of the millisecond `at` falls in: ids order by time, so
    `id >= uuid_floor(t)` is "from t on", a range of the primary key."""
    ms = (at - EPOCH) // timedelta(milliseconds=1)
    return uuid.UUID(int=min(max(ms, 0), (1 << 48) - 1) << 80)


def hour_floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(at: datetime) -> datetime:
    floor = hour_floor(at)
    return floor if floor == at else floor + HOUR


def tag_filter(public_id: str) -> str:
    return json.dumps({TAG: public_id})


# --- are the tables there? -----------------------------------------------------------------


@dataclass(frozen=True)
class Availability:
    reason: str = ""  # a sentence for every usage element when the tables cannot be read
    feedback_tables: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.reason


def availability() -> Availability:
    """Whether the observability tables exist here and t0admin may read them."""
    names = [*INFERENCE_TABLES, MODEL_TABLE, *FEEDBACK_TABLES]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, to_regclass(%s || '.' || name) IS NOT NULL, "
            "has_schema_privilege(n.oid, 'USAGE') "
            "AND coalesce(has_table_privilege(to_regclass(%s || '.' || name), 'SELECT'), false) "
            "FROM unnest(%s::text[]) AS name "
            "LEFT JOIN pg_namespace n ON n.nspname = %s",
            [SCHEMA, SCHEMA, names, SCHEMA],
        )
        found = {name: (exists, readable) for name, exists, readable in cursor.fetchall()}
    required = [*INFERENCE_TABLES, MODEL_TABLE]
    if not all(found[name][0] for name in required):
        return Availability(ABSENT)
    if not all(found[name][1] for name in required):
        return Availability(FORBIDDEN)
    feedback = tuple(name for name in FEEDBACK_TABLES if all(found[name]))
    return Availability(feedback_tables=feedback)


# Whether the tables are there changes only when the gateway's migrations run or a grant
# changes. Pages take the answer their process got at most this long ago: the check was
# one of the list page's five round trips to the database (bench/RESULTS.md, 2026-12-03
# night). New tables show on the pages within this time. Tables dropped or a grant taken
# back meanwhile: the pages show t0admin's own figures, as fresh as they say, until the
# next catch-up, which always looks again (and a read that fails forgets the answer).
AVAILABILITY_SECONDS = 10.0
_known: tuple[float, Availability] | None = None


def look_again() -> Availability:
    """availability(), kept for recent_availability()."""
    global _known
    found = availability()
    _known = (time.monotonic(), found)
    return found


def recent_availability() -> Availability:
    """availability(), as this process found it at most AVAILABILITY_SECONDS ago."""
    known = _known
    if known is not None and time.monotonic() - known[0] < AVAILABILITY_SECONDS:
        return known[1]
    return look_again()


def forget_availability() -> None:
    global _known
    _known = None


# --- feeding the rollup --------------------------------------------------------------------


def _aggregate_sql() -> str:
    """One statement: the hours of [lo, hi) per key and function, per key and model, and the
    keys' last use. Data-modifying CTEs run once each, whatever reads them."""
    inferences = " UNION ALL ".join(
        f"SELECT id, function_name, tags ->> %(tag)s AS public_id FROM {SCHEMA}.{table} "
        f"WHERE id >= %(lo)s AND id < %(hi)s AND tags ? %(tag)s"
        for table in INFERENCE_TABLES
    )
    return f"""
WITH inf AS MATERIALIZED (
    SELECT i.id, coalesce(i.function_name, %(no_name)s) AS function_name, i.public_id, t.at,
           date_bin('1 hour', t.at, '1970-01-01 00:00:00+00') AS hour
    FROM ({inferences}) AS i
    CROSS JOIN LATERAL (SELECT {_id_time("i.id")} AS at) AS t
    WHERE length(i.public_id) = 12
),
calls AS MATERIALIZED (
    SELECT inf.id, inf.public_id, inf.hour, coalesce(m.model_name, %(no_name)s) AS model_name,
           m.input_tokens, m.output_tokens, m.cost
    FROM inf JOIN {SCHEMA}.{MODEL_TABLE} AS m ON m.inference_id = inf.id
    WHERE m.inference_id >= %(lo)s AND m.inference_id < %(hi)s
),
per_inference AS (
    SELECT id, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cost) AS cost
    FROM calls GROUP BY id
),
functions AS (
    INSERT INTO {UsageHour._meta.db_table}
        (public_id, hour, function_name, inferences, input_tokens, output_tokens, cost, last_at)
    SELECT inf.public_id, inf.hour, inf.function_name, count(*),
           coalesce(sum(p.input_tokens), 0), coalesce(sum(p.output_tokens), 0), sum(p.cost),
           max(inf.at)
    FROM inf LEFT JOIN per_inference AS p ON p.id = inf.id
    GROUP BY 1, 2, 3
    RETURNING public_id, last_at
),
models AS (
    INSERT INTO {ModelUsageHour._meta.db_table}
        (public_id, hour, model_name, calls, input_tokens, output_tokens, cost)
    SELECT public_id, hour, model_name, count(*), coalesce(sum(input_tokens), 0),
           coalesce(sum(output_tokens), 0), sum(cost)
    FROM calls GROUP BY 1, 2, 3
    RETURNING 1
)
INSERT INTO {KeyLastUsed._meta.db_table} AS u (public_id, last_used)
SELECT public_id, max(last_at) FROM functions GROUP BY public_id
ON CONFLICT (public_id) DO UPDATE SET last_used = greatest(u.last_used, excluded.last_used)
"""


def _first_inference(cursor: Any, since: datetime | None, before: datetime) -> datetime | None:
    """The time in the id of the first inference in [since, before) (from the start, without
    `since`): a walk of each table's primary key. Bounded by `before` (now), so that an id
    another writer made, reading as a time past now (even past year 9999, which Python's
    datetime cannot hold), is never taken for the next inference."""
    bounds = "id < %s" if since is None else "id >= %s AND id < %s"
    params = [uuid_floor(before)] if since is None else [uuid_floor(since), uuid_floor(before)]
    parts = " UNION ALL ".join(
        f"(SELECT id FROM {SCHEMA}.{table} WHERE {bounds} ORDER BY id LIMIT 1)"
        for table in INFERENCE_TABLES
    )
    cursor.execute(
        f"SELECT {_id_time('id')} FROM ({parts}) AS first ORDER BY id LIMIT 1",
        params * len(INFERENCE_TABLES),
    )
    row = cursor.fetchone()
    return row[0] if row else None


def _feed_one_chunk(chunk: timedelta, timeout_ms: int | None) -> tuple[bool, bool]:
    """(fed, reached_now). Not fed: another instance holds the lock."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s), statement_timestamp()", [LOCK])
        locked, now = cursor.fetchone()
        if not locked:
            return False, False
        if timeout_ms is not None:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout_ms)])
        # The lock is held: nobody else changes the rollup until this transaction ends.
        state = UsageState.objects.filter(pk=1).first()
        if state is None:
            # The first id's time: an id another writer made that reads as 1970 starts the
            # rollup there, and the idle stretch after it is crossed in one chunk.
            oldest = _first_inference(cursor, None, now)
            start = hour_floor(min(oldest, now) if oldest else now)
            state = UsageState(pk=1, complete_until=start, known_since=start, fed_at=start)
        if state.complete_until >= now:
            return True, True
        # Recount the hours a late row may have landed in since the last chunk read: far
        # behind (a first catch-up) only the watermark's own hour, at the live edge the
        # late window before that read too.
        late = timedelta(seconds=settings.USAGE_LATE_SECONDS)
        start = hour_floor(min(state.complete_until, state.fed_at - late))
        end = min(now, state.complete_until + chunk)
        # Skip an idle stretch in one step: nothing is there until the next inference.
        following = _first_inference(cursor, state.complete_until, now)
        if following is None or hour_floor(following) > end:
            end = now if following is None else min(now, hour_floor(following))
        for model in (UsageHour, ModelUsageHour):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE hour >= %s", [start])
        cursor.execute(
            _aggregate_sql(),
            {"tag": TAG, "lo": uuid_floor(start), "hi": uuid_floor(end), "no_name": NO_NAME},
        )
        state.complete_until = end
        state.known_since = min(state.known_since, start)
        state.fed_at = now
        state.save()
        return True, end >= now


def catch_up(budget_seconds: float | None = None, chunk: timedelta = CHUNK) -> bool:
    """Feed the rollup up to now, chunk by chunk, until done or the budget is spent.

    True when it reached now. Safe from several processes at once: one feeds, the
    others return False at once. Rows are never counted twice: every chunk replaces the
    hours it recounts, in the same transaction, under the lock.
    """
    unhurried = getattr(connection, "unhurried", None)
    if budget_seconds is None and unhurried is not None:
        # Without a budget (catch_up_usage) a day's chunk may take longer than the
        # connection's statement timeout, which is meant for requests.
        connection.ensure_connection()
        with unhurried():
            return _catch_up(None, chunk)
    return _catch_up(budget_seconds, chunk)


def _catch_up(budget_seconds: float | None, chunk: timedelta) -> bool:
    global _chunk_limit
    if not look_again().ok:
        return False
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    while True:
        timeout_ms = None
        size = chunk
        if deadline is not None:
            timeout_ms = max(int((deadline - time.monotonic()) * 1000), 100)
            size = min(chunk, _chunk_limit)
        try:
            fed, done = _feed_one_chunk(size, timeout_ms)
        except OperationalError as error:
            # The statement timeout: a smaller chunk next time, so that a busy gateway's
            # backlog still moves forward a bounded slice per read.
            _chunk_limit = max(size / 2, MIN_CHUNK)
            log.warning("usage catch-up stopped: %s", str(error).strip().splitlines()[:1])
            return False
        if not fed or done:
            return done
        if deadline is not None and time.monotonic() >= deadline:
            return False


@dataclass(frozen=True)
class Freshness:
    complete_until: datetime | None  # None: nothing rolled up yet
    known_since: datetime | None
    now: datetime

    @property
    def age(self) -> timedelta | None:
        return None if self.complete_until is None else self.now - self.complete_until

    @property
    def age_text(self) -> str:
        age = self.age
        if age is None:
            return "not yet counted"
        seconds = max(int(age.total_seconds()), 0)
        if seconds < 120:
            return f"{seconds} s ago"
        if seconds < 7200:
            return f"{seconds // 60} min ago"
        if seconds < 2 * 86400:
            return f"{seconds // 3600} h ago"
        return f"{seconds // 86400} days ago"


def freshness() -> Freshness:
    """The watermark and the database's time, in one round trip (it precedes every list)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement_timestamp(), s.complete_until, s.known_since FROM (SELECT) AS one "
            f"LEFT JOIN {UsageState._meta.db_table} AS s ON s.id = 1"
        )
        now, complete_until, known_since = cursor.fetchone()
    return Freshness(complete_until, known_since, now)


def refresh() -> tuple[Availability, Freshness | None]:
    """For a page about to show usage: catch up when the rollup is older than allowed
    (bounded in time), then say how fresh it is. Never raises for a database fault here:
    usage is a part of the page, not the page."""
    try:
        available = recent_availability()
        if not available.ok:
            return available, None
        current = freshness()
        age = current.age
        if age is None or age > timedelta(seconds=settings.USAGE_MAX_AGE_SECONDS):
            catch_up(settings.USAGE_CATCH_UP_SECONDS)
            available = recent_availability()  # as the catch-up has just found it
            if not available.ok:
                return available, None
            current = freshness()
        return available, current
    except DatabaseError as error:
        forget_availability()
        log.warning("usage unavailable: %s", str(error).strip().splitlines()[:1])
        return Availability(
            "No usage figures: reading them failed (details in t0admin's log)."
        ), None


# --- reading it --------------------------------------------------------------------------


def last_used(public_ids: list[str]) -> dict[str, datetime]:
    """Last use of each listed key, as of the watermark: one probe per key."""
    rows = KeyLastUsed.objects.filter(public_id__in=public_ids)
    return {row.public_id.strip(): row.last_used for row in rows}


@dataclass(frozen=True)
class Breakdown:
    name: str
    count: int
    input_tokens: int
    output_tokens: int
    cost: Decimal | None


@dataclass(frozen=True)
class Inference:
    id: uuid.UUID
    at: datetime
    function_name: str
    variant_name: str
    models: str
    input_tokens: int | None
    output_tokens: int | None
    cost: Decimal | None


@dataclass(frozen=True)
class Window:
    label: str
    since: datetime
    count: int


@dataclass
class KeyUsage:
    freshness: Freshness
    last_used: datetime | None
    windows: list[Window]
    since: Window | None
    functions: list[Breakdown]
    models: list[Breakdown]
    breakdown_since: datetime
    latest: list[Inference]
    feedback: int
    after_disabled: int | None = None
    after_ttl: int | None = None


def _counts_since(public_id: str, moments: list[datetime], until: datetime) -> list[int]:
    """Inferences of the key from each moment up to `until` (the watermark): whole hours
    from the rollup, the partial hour at the edge from the raw rows (a primary-key range
    of at most an hour per partition)."""
    if not moments:
        return []
    rollup_sql = ", ".join(
        "coalesce(sum(inferences) FILTER (WHERE hour >= %s), 0)" for _ in moments
    )
    edges = [(moment, min(hour_ceil(moment), until)) for moment in moments]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {rollup_sql} FROM {UsageHour._meta.db_table} "
            "WHERE public_id = %s AND hour >= %s AND hour < %s",
            [
                *(hour_ceil(m) for m in moments),
                public_id,
                min(hour_ceil(m) for m in moments),
                until,
            ],
        )
        whole = list(cursor.fetchone())
        ranges = [(uuid_floor(a), uuid_floor(b)) for a, b in edges if a < b]
        raw = [0] * len(moments)
        if ranges:
            where = " OR ".join("(id >= %s AND id < %s)" for _ in ranges)
            union = " UNION ALL ".join(
                # ->> on purpose: no GIN index serves it, so each range is read on the
                # primary key (an hour at most), never the key's whole GIN posting list.
                f"SELECT id FROM {SCHEMA}.{table} WHERE tags ->> '{TAG}' = %s AND ({where})"
                for table in INFERENCE_TABLES
            )
            filters = ", ".join("count(*) FILTER (WHERE id >= %s AND id < %s)" for _ in edges)
            params: list[Any] = []
            for a, b in edges:
                params += [uuid_floor(a), uuid_floor(b)]
            for _ in INFERENCE_TABLES:
                params.append(public_id)
                for lo, hi in ranges:
                    params += [lo, hi]
            cursor.execute(f"SELECT {filters} FROM ({union}) AS edge", params)
            raw = list(cursor.fetchone())
    return [
        int(w) + int(r) if m < until else 0 for w, r, m in zip(whole, raw, moments, strict=True)
    ]


def _breakdown(
    model: Any, name: str, count: str, public_id: str, since: datetime
) -> list[Breakdown]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {name}, sum({count}), sum(input_tokens), sum(output_tokens), sum(cost) "
            f"FROM {model._meta.db_table} WHERE public_id = %s AND hour >= %s "
            f"GROUP BY {name} ORDER BY 2 DESC, 1",
            [public_id, since],
        )
        return [
            Breakdown(n, int(c), int(i), int(o), cost) for n, c, i, o, cost in cursor.fetchall()
        ]


def _latest(public_id: str) -> list[Inference]:
    """The newest inferences, live. The rollup says from which hour on there are enough of
    them, so a busy key reads an hour of the primary key, not its whole GIN posting list."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT hour FROM (SELECT hour, sum(sum(inferences)) OVER (ORDER BY hour DESC) AS n "
            f"FROM {UsageHour._meta.db_table} WHERE public_id = %s GROUP BY hour) AS h "
            "WHERE n >= %s ORDER BY hour DESC LIMIT 1",
            [public_id, LATEST],
        )
        row = cursor.fetchone()
        params: list[Any] = []
        if row and row[0] >= hour_floor(timezone.now()) - DENSE:
            # A busy key: its newest rows are in the last hours, a short walk back along
            # the primary key (->> keeps the planner off the GIN index, whose posting list
            # for such a key is a large part of every partition).
            match, value = f"tags ->> '{TAG}' = %s AND id >= %s", [public_id, uuid_floor(row[0])]
        else:
            # A quiet key: the GIN index finds its few rows; the rollup's hour bounds them.
            match = "tags @> %s::jsonb" + (" AND id >= %s" if row else "")
            value = [tag_filter(public_id), *([uuid_floor(row[0])] if row else [])]
        for _ in INFERENCE_TABLES:
            params += [*value, LATEST]
        union = " UNION ALL ".join(
            f"(SELECT id, created_at, function_name, variant_name FROM {SCHEMA}.{table} "
            f"WHERE {match} ORDER BY id DESC LIMIT %s)"
            for table in INFERENCE_TABLES
        )
        cursor.execute(
            "SELECT id, created_at, coalesce(function_name, %s), coalesce(variant_name, %s) "
            f"FROM ({union}) AS latest ORDER BY id DESC LIMIT %s",
            [NO_NAME, NO_NAME, *params, LATEST],
        )
        rows = cursor.fetchall()
        ids = [r[0] for r in rows]
        calls: dict[uuid.UUID, tuple[str, Any, Any, Any]] = {}
        if ids:
            cursor.execute(
                "SELECT inference_id, string_agg(DISTINCT coalesce(model_name, %s), ', '), "
                "sum(input_tokens), "
                f"sum(output_tokens), sum(cost) FROM {SCHEMA}.{MODEL_TABLE} "
                "WHERE inference_id = ANY(%s) GROUP BY inference_id",
                [NO_NAME, ids],
            )
            calls = {r[0]: r[1:] for r in cursor.fetchall()}
    return [
        Inference(i, at, fn, variant, *calls.get(i, ("", None, None, None)))
        for i, at, fn, variant in rows
    ]


def _feedback(public_id: str, tables: tuple[str, ...]) -> int:
    if not tables:
        return 0
    union = " UNION ALL ".join(
        f"SELECT count(*) AS n FROM {SCHEMA}.{table} WHERE tags @> %s::jsonb" for table in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT sum(n) FROM ({union}) AS f", [tag_filter(public_id)] * len(tables))
        (total,) = cursor.fetchone()
    return int(total or 0)


def key_usage(
    public_id: str,
    available: Availability,
    current: Freshness,
    since: datetime | None = None,
    disabled_at: datetime | None = None,
) -> KeyUsage:
    """Everything the key page shows about one key's use, as of the rollup's watermark
    (the latest inferences and the feedback count are read live)."""
    until = current.complete_until or current.now
    moments = [until - span for _, span in WINDOWS]
    extra = [m for m in (since, disabled_at) if m is not None]
    ttl = timedelta(milliseconds=settings.GATEWAY_AUTH_CACHE_TTL_MS)
    if disabled_at is not None:
        extra.append(disabled_at + ttl)
    counts = _counts_since(public_id, moments + extra, until) if current.complete_until else []
    counts = counts or [0] * (len(moments) + len(extra))
    windows = [
        Window(label, moment, count)
        for (label, _), moment, count in zip(WINDOWS, moments, counts, strict=False)
    ]
    rest = counts[len(moments) :]
    usage = KeyUsage(
        freshness=current,
        last_used=None,
        windows=windows,
        since=Window("Since", since, rest.pop(0)) if since is not None else None,
        functions=_breakdown(
            UsageHour, "function_name", "inferences", public_id, hour_ceil(until - BREAKDOWN)
        ),
        models=_breakdown(
            ModelUsageHour, "model_name", "calls", public_id, hour_ceil(until - BREAKDOWN)
        ),
        breakdown_since=hour_ceil(until - BREAKDOWN),
        latest=_latest(public_id),
        feedback=_feedback(public_id, available.feedback_tables),
    )
    if disabled_at is not None:
        usage.after_disabled, usage.after_ttl = rest[0], rest[1]
    recorded = KeyLastUsed.objects.filter(public_id=public_id).values_list("last_used", flat=True)
    seen = [*recorded, *(row.at for row in usage.latest[:1])]
    usage.last_used = max(seen) if seen else None
    return usage
