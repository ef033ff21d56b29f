"""Paging at a million keys: t0admin's keyset pages against the TensorZero UI's OFFSET query.

Run with `make bench` (its own embedded cluster in .data/bench), or with
TENSORZERO_POSTGRES_URL set to use that server instead (the role needs CREATEDB). Either
way the rows go into a scratch database that is dropped at the end, also on failure.

    python bench/paging.py [--rows 1000000] [--reps 7] [--results bench/RESULTS.md]

Database time is PostgreSQL's own Planning + Execution Time from EXPLAIN ANALYZE of the
exact SQL the ORM sent (captured with an execute wrapper, parameters and all), with
TIMING OFF so that per-node clock calls do not inflate the big sorts. "Wall" is the time
the client waited for the plain query (or the page() call, or the rendered response).
Every figure is the median of --reps runs after one warm-up run: this measures a warm
cache, which is what an admin paging through the list sees.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python bench/paging.py`: make t0admin importable

import psycopg  # noqa: E402
import served  # noqa: E402  (bench/served.py, beside this file)
from psycopg.conninfo import make_conninfo  # noqa: E402

from bench.results import rewrite  # noqa: E402

TABLE = "public.tensorzero_auth_api_key"
LIMIT = 100

# The TensorZero UI's list query as the gateway's tensorzero-auth crate sends it through
# sqlx (list_key_info): server-side parameters, $1 the optional organization filter,
# which the UI leaves NULL.
UI_SQL = (
    "SELECT public_id, organization, workspace, description, created_at, disabled_at, "
    "expires_at FROM tensorzero_auth_api_key WHERE (organization = %(org)s OR %(org)s IS NULL) "
    "ORDER BY created_at DESC LIMIT %(limit)s OFFSET %(offset)s"
)

# Realistic rows, generated inside PostgreSQL so that a million take seconds, not minutes.
# Per row, 32 random bytes: 9 of them become the 12-character public ID (base64 with + and
# / mapped to letters, so [A-Za-z0-9] as the gateway draws), all 32 hash to the 64-hex
# `hash`. created_at rises with id over the last year, as it does when keys are made one
# after another; 5 % are disabled, 10 % carry an expiry (about a quarter of those already
# past), 60 % a description.
LOAD_SQL = f"""
INSERT INTO {TABLE}
    (organization, workspace, description, public_id, hash,
     disabled_at, created_at, updated_at, expires_at)
SELECT 'default', 'default',
       CASE WHEN g %% 5 < 3 THEN
           (ARRAY['ci pipeline', 'batch evals', 'staging app', 'notebook', 'prod web',
                  'support bot', 'data team'])[1 + g %% 7] || ' #' || g
       END,
       translate(encode(substring(r FROM 1 FOR 9), 'base64'), '+/', 'Pq'),
       encode(sha256(r), 'hex'),
       CASE WHEN g %% 20 = 0 THEN c + interval '30 days' END,
       c,
       CASE WHEN g %% 20 = 0 THEN c + interval '30 days' ELSE c END,
       CASE WHEN g %% 10 = 1 THEN c + interval '90 days' END
FROM (
    SELECT g,
           now() - interval '365 days' + (g * interval '365 days') / %(rows)s
               + random() * interval '1 second' AS c,
           sha256(uuid_send(gen_random_uuid()) || int8send(g)) AS r
    FROM generate_series(1, %(rows)s) AS g
) AS source
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return seconds * 1000.0


@dataclass
class Measurement:
    name: str
    sql: list[str] = field(default_factory=list)  # the statements, as sent
    db_ms: float | None = None  # median of Planning + Execution Time, summed over statements
    wall_ms: float | None = None  # median client-side wait
    render_ms: float | None = None  # median full response through Django's test client
    plans: list[str] = field(default_factory=list)  # EXPLAIN (ANALYZE, BUFFERS) text
    note: str = ""


# --- the server and the scratch database -------------------------------------------------


@contextmanager
def postgres_server() -> Iterator[str]:
    """The server's URL: TENSORZERO_POSTGRES_URL, else the embedded cluster in the data dir."""
    url = os.environ.get("TENSORZERO_POSTGRES_URL", "").strip()
    if url:
        yield url
        return
    from t0admin import embedded

    server = embedded.start(embedded.data_dir())
    try:
        yield embedded.url(server)
    finally:
        embedded.stop(server)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"t0admin_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    log(f"scratch database {name} created")
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(server_url, autocommit=True) as admin:
            # FORCE: a connection left open by a failure must not keep the rows around.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log(f"scratch database {name} dropped")


def setup_django(database_url: str) -> None:
    # Settings read the database from the environment; pointing it at the scratch database
    # before django.setup() means this process never touches the project's own data.
    os.environ["TENSORZERO_POSTGRES_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "t0admin.settings")
    # Settings require a secret key off the embedded database; this one lives only in
    # this process and signs nothing that outlives it.
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()


def load(database_url: str, rows: int) -> float:
    from django.core.management import call_command

    # migrate: the t0admin schema, the gateway's table and ledger (keys.gateway_schema,
    # exactly as the gateway's migrations make them: no index but the two), Django's tables.
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Scratch data: losing it on a crash costs nothing, and skipping the WAL flush
        # per commit is most of the load time on a small disk.
        conn.execute("SET synchronous_commit = off")
        conn.execute(LOAD_SQL, {"rows": rows})
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        loaded = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    elapsed = time.perf_counter() - started
    log(f"loaded {loaded[0] if loaded else 0:,} rows and vacuumed in {elapsed:.1f} s")
    return elapsed


# --- measuring ---------------------------------------------------------------------------


def median_of(reps: int, run: Callable[[], float]) -> float:
    run()  # warm-up: caches, the connection, Django's lazy imports
    return statistics.median(run() for _ in range(reps))


def plan_times(plan_json: Any) -> float:
    top = plan_json[0] if isinstance(plan_json, list) else json.loads(plan_json)[0]
    return float(top["Planning Time"]) + float(top["Execution Time"])


@dataclass
class Captured:
    sql: str
    params: Any


def capture_queries(call: Callable[[], Any]) -> list[Captured]:
    from django.db import connection

    captured: list[Captured] = []

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        captured.append(Captured(sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        call()
    return captured


def django_explain(query: Captured, options: str) -> Any:
    """EXPLAIN of a captured ORM statement, bound the way the ORM bound it (client-side)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN ({options}) {query.sql}", query.params)
        rows = cursor.fetchall()
    if "FORMAT JSON" in options:
        value = rows[0][0]
        return value if isinstance(value, list) else json.loads(value)
    return "\n".join(row[0] for row in rows)


def django_wall(queries: list[Captured]) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for query in queries:
            cursor.execute(query.sql, query.params)
            cursor.fetchall()
    return ms(time.perf_counter() - started)


def measure_keyset(name: str, call: Callable[[], Any], reps: int) -> Measurement:
    from django.db import connection

    queries = capture_queries(call)
    result = Measurement(name=name)
    with connection.cursor() as cursor:
        result.sql = [cursor.mogrify(q.sql, q.params) for q in queries]

    def db_time() -> float:
        return sum(
            plan_times(django_explain(q, "ANALYZE, TIMING OFF, FORMAT JSON")) for q in queries
        )

    result.db_ms = median_of(reps, db_time)
    result.wall_ms = median_of(reps, lambda: django_wall(queries))
    result.plans = [django_explain(q, "ANALYZE, BUFFERS") for q in queries]

    def page_call() -> float:
        started = time.perf_counter()
        call()
        return ms(time.perf_counter() - started)

    result.note = f"page() call: {median_of(reps, page_call):.2f} ms wall"
    return result


def measure_ui(database_url: str, offset: int, reps: int, limit: int = LIMIT) -> Measurement:
    params = {"org": None, "limit": limit, "offset": offset}
    name = f"TensorZero UI, OFFSET {offset:,}"
    result = Measurement(name=name if limit == LIMIT else f"{name}, LIMIT {limit:,}")
    # prepare_threshold=0: prepared from the first execution, as sqlx prepares every
    # statement it sends.
    with psycopg.connect(database_url, autocommit=True, prepare_threshold=0) as conn:
        result.sql = [UI_SQL.replace("%(org)s", "$1").replace("%(limit)s", "$2")]
        result.sql[0] = result.sql[0].replace("%(offset)s", "$3")
        result.sql.append(f"-- $1 = NULL, $2 = {limit}, $3 = {offset}")

        def db_time() -> float:
            row = conn.execute(
                f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {UI_SQL}", params
            ).fetchone()
            assert row is not None
            return plan_times(row[0])

        def wall() -> float:
            started = time.perf_counter()
            conn.execute(UI_SQL, params).fetchall()
            return ms(time.perf_counter() - started)

        result.db_ms = median_of(reps, db_time)
        result.wall_ms = median_of(reps, wall)
        rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {UI_SQL}", params).fetchall()
        result.plans = ["\n".join(r[0] for r in rows)]
    return result


def measure_render(path: str, reps: int, expect_public_id: str | None) -> tuple[float, str]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client(HTTP_HOST="localhost")
    # Signed in, so the figure stays meaningful once the list view requires a viewer.
    client.force_login(user)
    status: list[int] = []
    body: list[bytes] = []

    def render() -> float:
        started = time.perf_counter()
        response = client.get(path)
        elapsed = ms(time.perf_counter() - started)
        status.append(response.status_code)
        body.append(response.content)
        return elapsed

    median = median_of(reps, render)
    note = f"GET {path}: HTTP {status[-1]}, {len(body[-1]):,} bytes"
    if expect_public_id and expect_public_id.encode() not in body[-1]:
        note += " (the view does not show this page's keys: it ignores the cursor)"
    return median, note


def cursor_at(database_url: str, depth: int) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            f"SELECT public_id FROM {TABLE} ORDER BY id DESC OFFSET %s LIMIT 1", [depth]
        ).fetchone()
    assert row is not None, f"fewer than {depth + 1} rows"
    return str(row[0])


# --- the report --------------------------------------------------------------------------


def machine_basics() -> dict[str, str]:
    """The date and the hardware, for any benchmark's report."""

    def cpuinfo(key: str) -> str:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or "unknown"

    try:
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        ram = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        ram = "unknown"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "CPU": cpuinfo("model name"),
        "RAM": ram,
        "Python": platform.python_version(),
    }


def machine(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        version = conn.execute("SELECT version()").fetchone()
        settings = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings "
                "WHERE name IN ('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather',"
                " 'random_page_cost', 'jit')"
            ).fetchall()
        )
    import django

    info = machine_basics()
    python = info.pop("Python")
    return {
        **info,
        "PostgreSQL": version[0] if version else "unknown",
        "PostgreSQL settings": ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
        "Python / Django": f"{python} / {django.get_version()}",
    }


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def reading(renders: list[tuple[str, float, str]]) -> list[str]:
    """What the plans below show; kept free of figures so that it holds on every run."""
    view_ignores_cursor = any("ignores the cursor" in note for _, _, note in renders)
    lines = [
        "## Reading the plans",
        "",
        "- Every t0admin page is a `Limit` over an `Index Scan` (`Backward` for newest "
        "first, forward for `after=`) on `tensorzero_auth_api_key_pkey`, with "
        "`Index Cond: (id < cursor)` or `(id > cursor)`: it reads the page and one row more "
        "(101 rows, a handful of buffers) however deep the cursor is. The cursor itself is "
        "found with one probe of `uniq_public_id`. Nothing sorts, so the cost does not "
        "grow with the depth or with the table.",
        "- The TensorZero UI's query has no index on `created_at` to use: every page is a "
        "(parallel) sequential scan of the whole table followed by a sort. OFFSET 0 keeps "
        "only the top 100 in memory (`top-N heapsort`) but still reads every row; a deep "
        "OFFSET must sort offset + limit rows, which spills to disk (`external merge`) at "
        "the default `work_mem`, and then step over all but the last 100. Its cost grows "
        "with the table and with the offset. An index on `created_at` would make OFFSET 0 "
        "cheap but not OFFSET n (it still walks n index entries); t0admin never adds "
        "indexes to the gateway's table.",
        "- Search (`?q=`): a public ID is one probe of `uniq_public_id`. Any other text "
        "is `description ILIKE '%q%'`, and the gateway's table has no index on "
        "description (t0admin adds none): the planner reads the whole table and keeps "
        "the newest 100 matches, so a search costs about one sequential scan (the "
        "figures above), however common the term. Pasting a whole key into the Find box "
        "is a probe of `uniq_public_id`, not a search.",
        "- Order: t0admin pages by `id`, the UI by `created_at`. They agree while "
        "`created_at` rises with `id`, as when keys are created one after another (the "
        "gateway sets `created_at` to the inserting transaction's start); rows imported "
        "with back-dated `created_at` would be listed by insertion order here.",
    ]
    if view_ignores_cursor:
        lines.append(
            "- The rendered pages: the list view (`keys.views.key_list`) is still the "
            'placeholder that renders the newest 100 keys with `order_by("-id")[:100]`; '
            "it does not call `keys.listing.page` or read `?before=`/`?after=`, so its "
            "deep figure is the first page again. It measures the middleware, view and "
            "template cost that a real page adds to the query."
        )
    return [*lines, ""]


def report(
    info: dict[str, str],
    rows: int,
    reps: int,
    load_s: float,
    measurements: list[Measurement],
    renders: list[tuple[str, float, str]],
    served_lines: list[str],
    kept: str,
) -> str:
    lines = [
        "# Paging benchmark: keyset (t0admin) against OFFSET (the TensorZero UI)",
        "",
        f"Generated by `make bench` (`bench/paging.py --rows {rows} --reps {reps}`); "
        "every figure is the median of "
        f"{reps} runs after a warm-up run, on a warm cache. {rows:,} keys in "
        "`tensorzero_auth_api_key`, created exactly as the gateway's migrations make it "
        "(indexes: the primary key on `id` and `uniq_public_id` only), "
        f"loaded and vacuumed in {load_s:.1f} s.",
        "",
        "## Machine",
        "",
        "The machine is shared: other work ran on its 2 cores during the run, so compare "
        "the ratios to `/healthz` more than the milliseconds.",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        "",
        "## Results",
        "",
        "DB ms: PostgreSQL's Planning + Execution Time (EXPLAIN ANALYZE, TIMING OFF), summed "
        "over the statements one page needs. Wall ms: the client's wait for the same "
        "statements run plainly (rows fetched).",
        "",
        "| query | DB ms | wall ms | notes |",
        "|---|---:|---:|---|",
    ]
    for m in measurements:
        lines.append(f"| {m.name} | {fmt(m.db_ms)} | {fmt(m.wall_ms)} | {m.note} |")
    lines += [
        "",
        "Full pages through Django's test client (middleware, view, template; signed in). "
        "`/healthz` is answered before the session, the host check and sign-in; the view "
        "that does nothing pays what every signed-in page pays before its own work (the "
        "session with its user, one query, and the middleware); `?limit=1` adds the "
        "list's queries and its page around a single row:",
        "",
        "| page | ms | notes |",
        "|---|---:|---|",
    ]
    for name, value, note in renders:
        lines.append(f"| {name} | {fmt(value)} | {note} |")
    lines += ["", *served_lines, *reading(renders)]
    lines += [kept, "## Plans (EXPLAIN (ANALYZE, BUFFERS), one run)", ""]
    for m in measurements:
        lines += [f"### {m.name}", ""]
        for sql, plan in zip(m.sql, m.plans, strict=False):
            lines += ["```sql", sql, "```", "", "```", plan, "```", ""]
        if len(m.sql) > len(m.plans):  # the UI query's parameter line
            lines += ["```sql", *m.sql[len(m.plans) :], "```", ""]
    lines += [
        "## Reproduce",
        "",
        "```sh",
        "make bench                      # own embedded cluster in .data/bench",
        "TENSORZERO_POSTGRES_URL=postgres://user:pw@host/db make bench   # another server;"
        " needs CREATEDB",
        ".venv/bin/python bench/paging.py --rows 100000 --reps 3 --results /tmp/r.md  # quick",
        "```",
        "",
        "The script creates a scratch database `t0admin_bench_<random>`, runs `migrate` "
        "there (which bootstraps the gateway's table through `keys.gateway_schema`), loads "
        "the rows with one `INSERT ... SELECT FROM generate_series`, runs `VACUUM ANALYZE`, "
        "measures, writes this file and drops the scratch database, also on failure.",
        "",
    ]
    return "\n".join(lines)


KEPT_START = "<!-- kept: written by hand, carried over by each run -->"
KEPT_END = "<!-- end kept -->"


def kept_block(results: Path) -> str:
    """The hand-written part of the results (before/after comparisons), carried over."""
    try:
        text = results.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    start, end = text.find(KEPT_START), text.find(KEPT_END)
    if start < 0 or end < start:
        return ""
    return text[start : end + len(KEPT_END)] + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    rows, reps = args.rows, args.reps
    deep = rows // 2
    began = time.perf_counter()

    with postgres_server() as server_url, scratch_database(server_url) as database_url:
        setup_django(database_url)
        load_s = load(database_url, rows)
        info = machine(database_url)

        from keys import listing

        before = cursor_at(database_url, deep)  # the first key of the deep page is next
        after = cursor_at(database_url, deep + LIMIT)  # its page: rows deep .. deep+99
        deep_first = cursor_at(database_url, deep + 1)
        measurements = [
            measure_keyset("t0admin page(100), first page", lambda: listing.page(LIMIT), reps),
            measure_keyset(
                f"t0admin page(100, before=…), {deep:,} rows deep",
                lambda: listing.page(LIMIT, before=before),
                reps,
            ),
            measure_keyset(
                f"t0admin page(100, after=…), {deep:,} rows deep",
                lambda: listing.page(LIMIT, after=after),
                reps,
            ),
            # Search: the description has no index (t0admin adds none to the gateway's
            # table), so a page of matches costs what it takes to find 100 of them.
            measure_keyset(
                "t0admin search q=prod web (1 key in 7 matches)",
                lambda: listing.page(LIMIT, query="prod web"),
                reps,
            ),
            measure_keyset(
                "t0admin search q=<no match> (worst case: every row read)",
                lambda: listing.page(LIMIT, query="no such description"),
                reps,
            ),
            measure_keyset(
                "t0admin search q=<a public ID> (exact)",
                lambda: listing.page(LIMIT, query=deep_first),
                reps,
            ),
        ]
        for offset in (0, deep, max(rows - LIMIT, 0)):
            log(f"measuring the UI's OFFSET {offset:,} query")
            measurements.append(measure_ui(database_url, offset, reps))
        # The UI's biggest page, for ?limit=10000.
        measurements.append(measure_ui(database_url, 0, reps, limit=10_000))

        from django.test import override_settings

        renders = []
        with override_settings(ROOT_URLCONF="bench.floor_urls"):  # adds /bench/nothing
            for name, path, expect in (
                ("/healthz", "/healthz", None),
                (
                    "a signed-in view that does nothing (bench/floor_urls.py)",
                    "/bench/nothing",
                    None,
                ),
                ("/api-keys?limit=1 (floor of the list)", "/api-keys?limit=1", None),
                ("/api-keys (first page)", "/api-keys", None),
                (f"/api-keys?before=… ({deep:,} deep)", f"/api-keys?before={before}", deep_first),
            ):
                value, note = measure_render(path, reps, expect)
                renders.append((name, value, note))

        log("measuring the served pages through gunicorn")
        served_result = served.measure(
            database_url, os.environ["DJANGO_SECRET_KEY"], before, deep_first, reps
        )
        served_lines = served.report(served_result)
        text = report(
            info, rows, reps, load_s, measurements, renders, served_lines, kept_block(args.results)
        )

    rewrite(args.results, text)  # other scripts' sections (bench/results.py) stay
    print(text)
    log(f"wrote {args.results} in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
