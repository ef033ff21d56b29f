"""Usage at 10 million inferences: the key page, the list with Last used, the stale filter,
and the rollup's catch-up, against straight queries on the gateway's tables.

Run with `make bench-usage` (the embedded cluster in .data/bench, or TENSORZERO_POSTGRES_URL).
The data lives in its own database, `t0admin_usage_bench`, kept between runs (generating it
takes minutes): --reload makes it again.

    python bench/usage.py [--inferences 10000000] [--keys 1000000] [--used 1000] [--reps 7]

Data: 1,000,000 keys as bench/paging.py makes them; the newest 1,000 of them used, with a
Zipf-like skew (rank r gets about 1/r of the traffic: the busiest key ~14 % of all rows,
the quietest ~0.01 %), ranks shuffled over the keys so that the list's first page mixes
busy and quiet keys. Inferences spread evenly over 30 daily partitions (80 % chat, 20 %
JSON), each with one model call (tokens, a cost on 90 %), tagged as the gateway tags them;
100,000 boolean feedback rows with the same skew. Tables, partitions and indexes as
GATEWAY.md lists them (tests/gateway_observability.py). Inputs and outputs are empty JSON,
so every raw-table scan here is cheaper than on a real gateway's wide rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from bench import paging, results  # noqa: E402
from tests import gateway_observability as obs  # noqa: E402

DATABASE = "t0admin_usage_bench"
DAYS = 30
RESULTS_HEADING = "# Usage benchmark"

UUID7 = """
CREATE OR REPLACE FUNCTION public.bench_uuid7(at timestamptz) RETURNS uuid
LANGUAGE sql VOLATILE AS $$
SELECT (lpad(to_hex(floor(extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7'
        || substr(md5(random()::text), 1, 3)
        || (ARRAY['8', '9', 'a', 'b'])[1 + floor(random() * 4)::int]
        || substr(md5(random()::text), 1, 15))::uuid
$$;
"""

# Rank 1..used with P(r) ~ 1/r: the inverse of the continuous 1/x distribution.
RANK = "least(%(used)s, floor(exp(random() * ln(%(used)s + 1)))::int)"

INFERENCES = f"""
INSERT INTO tensorzero.{{partition}}
    (id, function_name, variant_name, episode_id, input, output, tags, processing_time_ms,
     created_at)
SELECT public.bench_uuid7(s.at), (ARRAY['answer', 'extract', 'summarize', 'classify',
       'chat'])[1 + mod(u.rank + s.g, 5)], 'v' || mod(s.g, 3), gen_random_uuid(), '{{{{}}}}',
       '{{{{}}}}', jsonb_build_object('{obs.TAG}', u.public_id), 200 + mod(s.g, 800),
       date_trunc('milliseconds', s.at)
FROM (SELECT g, %(start)s::timestamptz + (g + random()) * %(step)s * interval '1 second' AS at,
             {RANK} AS rank
      FROM generate_series(0, %(n)s - 1) AS g) AS s
JOIN public.bench_used AS u USING (rank)
"""

MODEL_CALLS = """
INSERT INTO tensorzero.{model_partition}
    (id, inference_id, model_name, model_provider_name, input_tokens, output_tokens,
     response_time_ms, cached, cost, created_at)
SELECT gen_random_uuid(), id,
       (ARRAY['gpt-4o-mini', 'claude-haiku', 'llama-3-70b'])[1 + mod(abs(hashtext(function_name)), 3)],
       'openai', 100 + (random() * 900)::int, 20 + (random() * 300)::int, 500, false,
       CASE WHEN random() < 0.9 THEN round((random() * 0.01)::numeric, 9) END, created_at
FROM tensorzero.{partition}
"""


def log(message: str) -> None:
    paging.log(message)


def ms(seconds: float) -> float:
    return seconds * 1000.0


# --- the data ------------------------------------------------------------------------------


def database_url(server_url: str, reload: bool) -> tuple[str, bool]:
    """The bench database's URL, and whether it must be loaded."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
        ).fetchone()
        if exists and reload:
            admin.execute(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
            exists = None
        if not exists:
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
    url = make_conninfo(server_url, dbname=DATABASE)
    with psycopg.connect(url) as conn:
        loaded = conn.execute("SELECT to_regclass('public.bench_meta') IS NOT NULL").fetchone()
    return url, not (loaded and loaded[0])


def load(url: str, inferences: int, keys: int, used: int) -> dict[str, float]:
    from django.core.management import call_command

    timings: dict[str, float] = {}
    call_command("migrate", verbosity=0)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")

        def step(name: str, run: Callable[[], Any]) -> None:
            started = time.perf_counter()
            run()
            timings[name] = time.perf_counter() - started
            log(f"{name}: {timings[name]:.1f} s")

        step("keys", lambda: conn.execute(paging.LOAD_SQL, {"rows": keys}))
        conn.execute(UUID7)
        conn.execute(
            "CREATE TABLE public.bench_used AS SELECT row_number() OVER (ORDER BY random())::int "
            "AS rank, public_id FROM (SELECT public_id::text AS public_id "
            f"FROM {paging.TABLE} ORDER BY id DESC LIMIT %s) AS newest",
            [used],
        )
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        days = [(today - timedelta(days=d)).date() for d in range(DAYS - 1, -1, -1)]
        with conn.cursor() as cursor:
            cursor.execute(obs.DDL)
            for table in obs.FEEDBACK:
                cursor.execute(obs.FEEDBACK_DDL.format(t=table))
            for table in obs.PARTITIONED:
                cursor.execute(
                    f"CREATE TABLE tensorzero.{table}_default PARTITION OF tensorzero.{table} DEFAULT"
                )
                for day in days:
                    obs.add_partition(cursor, table, day)

        def rows() -> None:
            per_day = inferences // DAYS
            # The newest day ends now: the rollup's catch-up has a live edge to work on.
            end = datetime.now(UTC)
            for day in days:
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                seconds = min(86400.0, (end - start).total_seconds())
                for table, share in (("chat_inferences", 0.8), ("json_inferences", 0.2)):
                    n = int(per_day * share)
                    conn.execute(
                        INFERENCES.format(partition=obs.partition(table, day)),
                        {"start": start, "step": seconds / n, "n": n, "used": used},
                    )
                    conn.execute(
                        MODEL_CALLS.format(
                            model_partition=obs.partition("model_inferences", day),
                            partition=obs.partition(table, day),
                        )
                    )
                log(f"  {day}: {per_day:,} inferences")

        step("inferences and model calls", rows)

        def indexes() -> None:
            for table in obs.INFERENCES:
                conn.execute(obs.INDEXES.format(t=table))
            conn.execute("CREATE INDEX ON tensorzero.model_inferences (inference_id, id)")

        step("indexes (GIN on tags, btree)", indexes)
        step(
            "feedback",
            lambda: conn.execute(
                "INSERT INTO tensorzero.boolean_metric_feedback (id, target_id, metric_name, value, tags) "
                f"SELECT gen_random_uuid(), gen_random_uuid(), 'ok', 'true', "
                f"jsonb_build_object('{obs.TAG}', u.public_id) FROM (SELECT {RANK} AS rank "
                "FROM generate_series(1, 100000)) AS s JOIN public.bench_used AS u USING (rank)".replace(
                    "%(used)s", str(used)
                )
            ),
        )
        step("vacuum analyze", lambda: conn.execute("VACUUM ANALYZE"))
        conn.execute(
            "CREATE TABLE public.bench_meta AS SELECT %s::bigint AS inferences, %s::bigint AS keys, "
            "%s::int AS used, now() AS loaded_at, %s::float AS load_seconds",
            [inferences, keys, used, sum(timings.values())],
        )
    return timings


# --- measuring -----------------------------------------------------------------------------


def median_ms(reps: int, run: Callable[[], Any]) -> float:
    def timed() -> float:
        started = time.perf_counter()
        run()
        return ms(time.perf_counter() - started)

    timed()
    return statistics.median(timed() for _ in range(reps))


def client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    browser = Client(HTTP_HOST="localhost")
    browser.force_login(user)
    return browser


def page(browser: Any, path: str, reps: int) -> tuple[float, str]:
    responses: list[Any] = []

    def get() -> None:
        responses.append(browser.get(path))

    value = median_ms(reps, get)
    last = responses[-1]
    assert last.status_code == 200, (path, last.status_code, last.content[:500])
    return value, f"HTTP {last.status_code}, {len(last.content):,} bytes"


def sql_ms(url: str, sql: str, params: Any, reps: int) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        return median_ms(reps, lambda: conn.execute(sql, params).fetchall())


def ranked(url: str, rank: int) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT public_id FROM public.bench_used WHERE rank = %s", [rank]
        ).fetchone()
    assert row is not None
    return str(row[0])


def unused_key(url: str) -> str:
    with psycopg.connect(url) as conn:
        # Half-way down the list: never among the newest keys, which are the used ones.
        row = conn.execute(
            f"SELECT public_id FROM {paging.TABLE} ORDER BY id OFFSET "
            f"(SELECT count(*) / 2 FROM {paging.TABLE}) LIMIT 1"
        ).fetchone()
    assert row is not None
    return str(row[0])


def live_traffic(url: str, minutes: float, per_day: int, used: int) -> int:
    """Rows written now, at the bench's rate, with ids of the last `minutes`."""
    n = max(int(per_day * minutes / 1440), 1)
    start = datetime.now(UTC) - timedelta(minutes=minutes)
    with psycopg.connect(url, autocommit=True) as conn:
        today = datetime.now(UTC).date()
        exists = conn.execute(
            "SELECT to_regclass(%s)", [f"tensorzero.{obs.partition('chat_inferences', today)}"]
        ).fetchone()
        table = "chat_inferences"
        conn.execute(
            INFERENCES.format(partition=table),
            {"start": start, "step": minutes * 60 / n, "n": n, "used": used},
        )
        conn.execute(
            MODEL_CALLS.format(model_partition="model_inferences", partition=table)
            + " WHERE created_at >= %(start)s AND NOT EXISTS (SELECT 1 FROM "
            "tensorzero.model_inferences m WHERE m.inference_id = chat_inferences.id)",
            {"start": start},
        )
        del exists
    return n


def straight_queries(url: str, keys: dict[str, str], reps: int) -> list[tuple[str, float, str]]:
    """The designs the rollup was chosen against: each figure a plain query on the
    gateway's tables, no rollup."""
    tag = obs.TAG
    results = []
    for label, public_id in keys.items():
        filt = f'{{"{tag}": "{public_id}"}}'
        count_30d = (
            "SELECT count(*) FROM (SELECT id FROM tensorzero.chat_inferences WHERE tags @> %s::jsonb "
            "AND created_at >= now() - interval '30 days' UNION ALL SELECT id FROM "
            "tensorzero.json_inferences WHERE tags @> %s::jsonb AND created_at >= now() - "
            "interval '30 days') AS i"
        )
        results.append(
            (f"count, last 30 days, GIN ({label})", sql_ms(url, count_30d, [filt, filt], reps), "")
        )
        per_model = (
            "SELECT m.model_name, count(*), sum(m.input_tokens), sum(m.output_tokens), sum(m.cost) "
            "FROM tensorzero.chat_inferences i JOIN tensorzero.model_inferences m "
            "ON m.inference_id = i.id WHERE i.tags @> %s::jsonb GROUP BY 1"
        )
        results.append(
            (
                f"per model with tokens and cost, GIN + join ({label})",
                sql_ms(url, per_model, [filt], max(reps // 3, 1)),
                "chat only",
            )
        )
        last = (
            "SELECT max(created_at) FROM (SELECT created_at FROM tensorzero.chat_inferences "
            "WHERE tags @> %s::jsonb ORDER BY id DESC LIMIT 1) AS l"
        )
        results.append(
            (f"last used, newest tagged row by id ({label})", sql_ms(url, last, [filt], reps), "")
        )
    # The list's column without a rollup: the newest tagged row of each of the 100 keys.
    page_last_used = (
        "SELECT k.public_id, (SELECT c.id FROM tensorzero.chat_inferences c WHERE c.tags @> "
        f"jsonb_build_object('{tag}', k.public_id::text) ORDER BY c.id DESC LIMIT 1) "
        f"FROM (SELECT public_id FROM {paging.TABLE} ORDER BY id DESC LIMIT 100) AS k"
    )
    results.append(
        (
            "Last used for the list's 100 keys, one probe each",
            sql_ms(url, page_last_used, None, reps),
            "chat only",
        )
    )
    # The stale filter without a rollup: which keys had an inference in 30 days.
    used_30 = (
        f"SELECT count(DISTINCT tags ->> '{tag}') FROM tensorzero.chat_inferences "
        "WHERE created_at >= now() - interval '30 days'"
    )
    results.append(
        (
            "keys used in 30 days (for the stale filter), one scan",
            sql_ms(url, used_30, None, 1),
            "chat only; 1 run",
        )
    )
    return results


def results_text(
    info: dict[str, str],
    meta: dict[str, Any],
    rollup: dict[str, Any],
    pages: list[tuple[str, float, str]],
    straight: list[tuple[str, float, str]],
    catch: list[tuple[str, float, str]],
) -> str:
    def table(rows: list[tuple[str, float, str]], what: str) -> list[str]:
        lines = [f"| {what} | ms | notes |", "|---|---:|---|"]
        lines += [f"| {name} | {value:,.1f} | {note} |" for name, value, note in rows]
        return lines

    lines = [
        RESULTS_HEADING,
        "",
        f"Generated by `make bench-usage` (`bench/usage.py`); medians of {meta['reps']} runs after a "
        "warm-up, warm cache. "
        f"{meta['inferences']:,} inferences over {DAYS} daily partitions (+ default), one model "
        f"call each, {meta['used']:,} keys used with a Zipf-like skew among "
        f"{meta['keys']:,} keys in `tensorzero_auth_api_key`; 100,000 feedback rows. Loaded in "
        f"{meta['load_seconds'] / 60:.1f} min (generate_series in SQL, indexes built after).",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        "",
        "## Pages (Django's test client: middleware, view, queries, template; signed in)",
        "",
        *table(pages, "page"),
        "",
        "## The rollup's catch-up (keys/usage.py)",
        "",
        *table(catch, "step"),
        "",
        f"Rollup size: {rollup['hours']:,} key-function-hour rows, {rollup['model_hours']:,} "
        f"key-model-hour rows, {rollup['last_used']:,} last-used rows.",
        "",
        "## The alternative: straight queries on the gateway's tables (no rollup)",
        "",
        *table(straight, "query"),
        "",
        *DESIGNS,
    ]
    return "\n".join(lines)


DESIGNS = [
    "## Designs compared",
    "",
    "- **Straight queries on the gateway's tables, per page** (no state of our own; the last "
    "table). Counting a key's inferences uses the GIN index on `tags`, which finds rows but "
    "neither counts nor sorts them: the cost grows with the key's traffic, so the busiest "
    "key's 30-day count and per-model totals (a join to `model_inferences`) miss the 100 ms "
    'target by far, while quiet keys are cheap. "Last used" for one busy key is cheap '
    "(the primary key walked backwards stops at its first row), but for 100 keys of every "
    "kind it adds up, and the stale filter has to read 30 days of rows to learn which keys "
    "were used at all.",
    "- **A rollup per key and hour in t0admin's own schema** (chosen; `keys/usage.py`): "
    "`UsageHour` (key, hour, function: inferences, tokens, cost, last seen), `ModelUsageHour` "
    "(key, hour, model) and `KeyLastUsed` (one row per key ever used). A page reads at most "
    "720 hours x a few functions for one key, the list one row per listed key, the stale "
    "filter walks the key table's primary key with an anti-join probe into `KeyLastUsed`. "
    "The partial hour at each window's edge is counted from the raw rows on the primary key "
    "(at most an hour of one partition), so windows are exact up to the watermark.",
    "- **A rollup per key and day** (considered): 24 times fewer rows, but a window's edge "
    "would need up to a day of raw rows (for the busiest key tens of thousands) on every "
    'page, and "last hour" could not come from the rollup at all.',
    "- **Feeding by `created_at`** (rejected): it has no index besides partition pruning, so "
    "every catch-up would scan whole day partitions. The ids are UUIDv7: `id >= t` is a range "
    "of each partition's primary key, which is what the catch-up and the edge counts read. "
    "Nothing assumes `created_at` equals the id's time.",
    "- **Triggers or a materialized view on the gateway's tables** (not allowed, and a "
    "`REFRESH` recounts everything: about the first catch-up's time, every time).",
    "- **A daemon** (rejected): the catch-up runs on read, when the watermark is older than "
    "`T0ADMIN_USAGE_MAX_AGE_SECONDS` (60), bounded by `T0ADMIN_USAGE_CATCH_UP_SECONDS` (2 s, "
    "a statement timeout; after a timeout the next read takes a smaller chunk) and guarded by "
    "a transaction-level advisory lock taken with try, so one instance feeds and the others "
    "show what is there. The table above gives the price a reader pays once a minute; every "
    "other page view reads the rollup only. The first catch-up over 30 days is "
    "`manage.py catch_up_usage` (or pages, 2 s at a time).",
    "- **Late rows**: each chunk replaces the hours from (watermark, or the previous read "
    "minus `T0ADMIN_USAGE_LATE_SECONDS`) on, in one transaction under the lock, so a row "
    "written up to 15 minutes after its id's time is counted, once. The recount starts on "
    "the hour, which is most of the catch-up's cost at the live edge.",
    "- **The filter counts** (all, active, disabled, expired, not used in 30 / 90 days) are "
    "one pass over the key table (no index on `disabled_at` or `expires_at`, and t0admin adds "
    "none) plus a join from the recently used keys: the list fetches them with htmx after it "
    "has shown, so the list's own time stays that of its 100 rows; a filtered page (the "
    "stale filter) computes them inline, within its 200 ms.",
    "",
]


def write_results(path: Path, text: str) -> None:
    """This benchmark's own marked section of RESULTS.md (bench/results.py)."""
    results.write_section(path, "bench/usage.py", text.rstrip("\n"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--inferences", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--used", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--load-only", action="store_true")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()

    with paging.postgres_server() as server_url:
        url, must_load = database_url(server_url, args.reload)
        paging.setup_django(url)
        if must_load:
            load(url, args.inferences, args.keys, args.used)
        if args.load_only:
            return 0
        measure(url, args)
    return 0


def measure(url: str, args: argparse.Namespace) -> None:
    from django.conf import settings

    from keys import usage
    from keys.models import KeyLastUsed, ModelUsageHour, UsageHour, UsageState

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT inferences, keys, used, load_seconds FROM public.bench_meta"
        ).fetchone()
    assert row is not None
    meta = {
        "inferences": row[0],
        "keys": row[1],
        "used": row[2],
        "load_seconds": row[3],
        "reps": args.reps,
    }
    reps = args.reps
    per_day = meta["inferences"] // DAYS
    catch: list[tuple[str, float, str]] = []

    # A full rebuild, as on the first start against a gateway with 30 days of data.
    UsageHour.objects.all().delete()
    ModelUsageHour.objects.all().delete()
    KeyLastUsed.objects.all().delete()
    UsageState.objects.all().delete()
    started = time.perf_counter()
    assert usage.catch_up(chunk=timedelta(days=1))
    catch.append(
        (
            "first catch-up, 30 days (chunks of a day)",
            ms(time.perf_counter() - started),
            "`manage.py catch_up_usage`, or pages, 2 s at a time",
        )
    )
    with psycopg.connect(url, autocommit=True) as conn:  # past the requests' timeout
        conn.execute("VACUUM ANALYZE")
    # Steady state: a minute of new traffic since the last catch-up, as a page finds it.
    for _ in range(3):
        live_traffic(url, 1, per_day, meta["used"])
        started = time.perf_counter()
        assert usage.catch_up()
        catch.append(
            (
                "catch-up on read, 1 min of new rows",
                ms(time.perf_counter() - started),
                f"recounts from the late window ({settings.USAGE_LATE_SECONDS // 60} min) rounded down to the hour",
            )
        )
    rollup = {
        "hours": UsageHour.objects.count(),
        "model_hours": ModelUsageHour.objects.count(),
        "last_used": KeyLastUsed.objects.count(),
    }

    # Pages, with the rollup fresh (the catch-up's own cost is above).
    settings.USAGE_MAX_AGE_SECONDS = 10**6
    browser = client()
    busiest, median_key, quietest = ranked(url, 1), ranked(url, 30), ranked(url, meta["used"])
    since = (datetime.now(UTC) - timedelta(days=2, minutes=17)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pages: list[tuple[str, float, str]] = []
    for label, public_id in (
        ("busiest key", busiest),
        ("30th key", median_key),
        ("quietest used key", quietest),
        ("unused key", unused_key(url)),
    ):
        value, note = page(browser, f"/api-keys/{public_id}?since={since}", reps)
        pages.append((f"key page, {label}, with ?since=", value, note))
    with_column, note = page(browser, "/api-keys", reps)
    pages.append(("list, 100 rows, with Last used", with_column, note))
    # The same list without usage: what the page cost before this change.
    real_refresh, real_last_used = usage.refresh, usage.last_used
    usage.refresh = lambda: (usage.Availability(usage.ABSENT), None)  # type: ignore[assignment]
    usage.last_used = lambda public_ids: {}  # type: ignore[assignment]
    try:
        without, note = page(browser, "/api-keys", reps)
    finally:
        usage.refresh, usage.last_used = real_refresh, real_last_used  # type: ignore[assignment]
    pages.append(
        (
            "list, 100 rows, without Last used",
            without,
            note + f"; with it: {with_column / without:.2f}x",
        )
    )
    for days in (30, 90):
        value, note = page(browser, f"/api-keys?unused={days}", reps)
        pages.append((f"stale filter ?unused={days}, 100 rows, with its counts", value, note))
    value, note = page(browser, "/api-keys/counts", reps)
    pages.append(("filter counts (fetched by the list after it shows)", value, note))

    straight = straight_queries(
        url,
        {"busiest": busiest, "30th": median_key, "quietest": quietest, "unused": unused_key(url)},
        reps,
    )
    info = paging.machine(url)
    # Other work on the machine shows in every figure: say how busy it was.
    info["load average (1, 5, 15 min) at the end"] = " ".join(
        Path("/proc/loadavg").read_text().split()[:3]
    )
    text = results_text(info, meta, rollup, pages, straight, catch)
    write_results(args.results, text)
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("T0ADMIN_USAGE_CATCH_UP_SECONDS", "2")
    sys.exit(main())
