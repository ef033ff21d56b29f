"""Leak response at a million keys: classify a 1 MB paste, Disable all, find_leaked_keys.

Run with `make bench` (its own embedded cluster in .data/bench) or with
TENSORZERO_POSTGRES_URL set (the role needs CREATEDB). Rows go into a scratch database that
is dropped at the end, also on failure. The figures replace this script's section of
bench/RESULTS.md (bench/results.py; the rest of the file is kept).

    python bench/leaks.py [--rows 1000000] [--reps 5] [--file-mb 100]

Targets (issue 7): 1 MB holding 1,000 keys in mixed states classified in under 300 ms of
server time; "Disable all" on 1,000 keys under 2 s; find_leaked_keys on a 100 MB file
under 100 MB resident.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from paging import (  # bench/ is this script's directory, so its sibling imports
    ROOT,
    TABLE,
    load,
    log,
    machine,
    postgres_server,
    scratch_database,
    setup_django,
)
from results import write_section

PLANS: list[str] = []
MIX = {"active": 400, "disabled": 200, "expired": 150, "not_a_working_key": 150, "unknown": 100}
NOISE = [
    '{ts} INFO gateway request_id={rid} route=/inference status=200 latency_ms={n} model="gpt-4o-mini"',
    "{ts} DEBUG worker[{n}] picked job {rid} from queue default (attempt 1)",
    '{ts} WARN client 10.0.{n}.7 sent "User-Agent: python-httpx/0.27" without X-Request-Id',
    "{ts} INFO deploy: rolled out web-{n} in {n}s; health checks green",
]


def ms(seconds: float) -> float:
    return seconds * 1000.0


def median_ms(reps: int, run: Callable[[], object]) -> float:
    run()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        run()
        times.append(ms(time.perf_counter() - started))
    return statistics.median(times)


def make_keys(database_url: str) -> list[str]:
    """1,000 keys in the MIX of states, with their secrets: inserted where a state needs a
    row, forged on public IDs of the loaded million, made up for the unknown ones."""
    from keys import tokens

    now = datetime.now(UTC)
    rows, keys = [], []
    with psycopg.connect(database_url, autocommit=True) as conn:
        taken = [
            r[0]
            for r in conn.execute(
                f"SELECT public_id FROM {TABLE} ORDER BY random() LIMIT %s",
                [MIX["not_a_working_key"]],
            )
        ]
        for state, count in MIX.items():
            for i in range(count):
                key = tokens.generate()
                parsed = tokens.parse(key)
                if state == "not_a_working_key":
                    keys.append(f"sk-t0-{taken[i]}-{parsed.long_key}")
                    continue
                keys.append(key)
                if state == "unknown":
                    continue
                disabled = now - timedelta(days=1) if state == "disabled" else None
                expires = now - timedelta(hours=1) if state == "expired" else None
                rows.append((parsed.public_id, parsed.hash, disabled, expires))
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {TABLE} (organization, workspace, public_id, hash, disabled_at,"
                " expires_at) VALUES ('default', 'default', %s, %s, %s, %s)",
                rows,
            )
        conn.execute(f"ANALYZE {TABLE}")
    random.shuffle(keys)
    return keys


def noise_line(rng: random.Random) -> str:
    return rng.choice(NOISE).format(
        ts=f"2026-11-29T08:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
        rid=f"{rng.getrandbits(64):016x}",
        n=rng.randrange(1000),
    )


def paste(keys: list[str], size: int, seed: int = 7) -> str:
    """About `size` bytes of log lines with every key in it, in the usual wrappings."""
    rng = random.Random(seed)
    wraps = [
        "{ts} DEBUG outgoing headers: Authorization: Bearer {k}",
        'config dump: {{"api_key": "{k}", "base_url": "http://gateway:3000"}}',
        "export TENSORZERO_API_KEY={k}",
        "GET /v1/models?api_key={k} HTTP/1.1",
    ]
    lines: list[str] = []
    total = 0

    def add(line: str) -> None:
        nonlocal total
        lines.append(line)
        total += len(line) + 1

    step = size / (len(keys) + 1)
    for i, key in enumerate(keys):
        while total < step * (i + 1):
            add(noise_line(rng))
        add(rng.choice(wraps).format(ts="2026-11-29T08:00:00Z", k=key))
    while total < size:
        add(noise_line(rng))
    return "\n".join(lines)


# Pastes of 1 MB with no key in them, each as costly to scan as it can be made.
JUNK = {
    name: (unit * (2**20 // len(unit) + 1))[: 2**20]
    for name, unit in {
        "`sk-t0-`": "sk-t0-",
        "`sk-t0-` and a line break": "sk-t0-\n",
        "`sk-t0-` and a zero-width space": "sk-t0-\u200b",
        "`sk-t0-` and 60 line breaks": "sk-t0-" + "\n" * 60,
        "line breaks": "\n",
    }.items()
}


def bench_classify(keys: list[str], reps: int) -> list[tuple[str, float, str]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.client import BOUNDARY, encode_multipart
    from django.test.utils import CaptureQueriesContext

    from keys import leaks

    text = paste(keys, 2**20 - 4096)
    found = leaks.extract(text)
    assert len(found) == len(keys), (len(found), len(keys))
    counts = leaks.counts(leaks.classify(found))
    mix = ", ".join(f"{n} {s.label}" for s, n in counts.items())
    with CaptureQueriesContext(connection) as queries:
        leaks.classify(found)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + queries[0]["sql"])
        plan = "\n".join(r[0] for r in cursor.fetchall())
        PLANS.append(re.sub(r"'\{[^}]*\}'", f"'{{…{len(found):,} public IDs…}}'", plan))
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    # Encoded once, as the browser sends it: the timing is the server's work alone.
    body = encode_multipart(BOUNDARY, {"text": text})

    def post() -> None:
        response = client.post(
            "/api-keys/leaked", body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
        )
        assert response.status_code == 200, response.status_code
        assert b"Disable all 400 active" in response.content

    size = len(text.encode())
    return [
        (
            f"extract: {size:,} bytes, {len(found):,} keys",
            median_ms(reps, lambda: leaks.extract(text)),
            "pure Python, no database",
        ),
        (
            "classify: one query for all 1,000",
            median_ms(reps, lambda: leaks.classify(found)),
            f"{len(queries)} query; states: {mix}",
        ),
        *(
            (
                f"extract: 1 MB of {name}",
                median_ms(reps, lambda junk=junk: leaks.extract(junk)),
                "no key: a paste made to cost the most (every `sk-t0-` tried as a cut key)",
            )
            for name, junk in JUNK.items()
        ),
        (
            "POST /api-keys/leaked, whole request",
            median_ms(reps, post),
            "through Django's handler (test client, body encoded beforehand): middleware, multipart parsing, extract, classify, signing, template",
        ),
    ]


def bench_disable(database_url: str, reps: int) -> list[tuple[str, float, str]]:
    from keys import service

    times = []
    for _ in range(reps):
        made = make_active(database_url, 1000)
        started = time.perf_counter()
        result = service.disable_keys(
            actor="bench", public_ids=made, reason="leaked", incident=service.new_incident()
        )
        times.append(ms(time.perf_counter() - started))
        assert len(result.disabled) == 1000
    larger = []
    for count in (10_000, service.MAX_DISABLE):  # up to the most one disable takes
        made = make_active(database_url, count)
        started = time.perf_counter()
        result = service.disable_keys(
            actor="bench", public_ids=made, reason="leaked", incident=service.new_incident()
        )
        larger.append((count, ms(time.perf_counter() - started)))
        assert len(result.disabled) == count
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    pages = []
    for _ in range(reps):
        made = make_active(database_url, 1000, secrets=True)
        checked = client.post("/api-keys/leaked", {"text": "\n".join(made)})
        token = re.search(rb'name="token" value="([^"]+)"', checked.content)
        assert token, checked.status_code
        started = time.perf_counter()
        done = client.post(
            "/api-keys/leaked/disable", {"token": token.group(1).decode(), "confirmed": "yes"}
        )
        pages.append(ms(time.perf_counter() - started))
        assert b"1000 keys disabled" in done.content, done.status_code
    return [
        (
            "service.disable_keys, 1,000 active keys",
            statistics.median(times),
            f"one transaction, {reps} runs on fresh keys; 1,000 audit records each",
        ),
        *(
            (
                f"service.disable_keys, {count:,} active keys",
                took,
                f"one run; {count:,} audit records",
            )
            for count, took in larger
        ),
        (
            "POST /api-keys/leaked/disable (the confirmed Disable all), 1,000 keys",
            statistics.median(pages),
            "whole request: signed list checked, disable, outcome page (no gateway asked)",
        ),
    ]


def make_active(database_url: str, count: int, secrets: bool = False) -> list[str]:
    """`count` fresh active keys: their public IDs, or with `secrets` the whole keys."""
    from keys import tokens

    whole = [tokens.generate() for _ in range(count)]
    parsed = [tokens.parse(key) for key in whole]
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {TABLE} (organization, workspace, public_id, hash)"
            " VALUES ('default', 'default', %s, %s)",
            [(p.public_id, p.hash) for p in parsed],
        )
    return whole if secrets else [p.public_id for p in parsed]


def bench_command(
    database_url: str, keys: list[str], megabytes: int
) -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.log"
        chunk = paste(keys, 2**20, seed=11)
        filler = paste([], 2**20, seed=13)
        with open(path, "w") as out:
            out.write(chunk)
            for _ in range(megabytes - 1):
                out.write("\n" + filler)
        size = path.stat().st_size
        env = {
            **os.environ,
            "TENSORZERO_POSTGRES_URL": database_url,
            "DJANGO_SECRET_KEY": "bench-only-" + "x" * 40,
        }
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "manage.py", "find_leaked_keys", "--json", str(path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        output = process.stdout.read() if process.stdout else b""
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
    found = len(re.findall(rb'"public_id"', output))
    return [
        (
            f"find_leaked_keys --json, {size / 2**20:,.0f} MB file",
            ms(elapsed),
            f"peak resident {usage.ru_maxrss / 1024:.1f} MB; exit {process.returncode}; "
            f"{found:,} keys reported",
        )
    ]


def report(info: dict[str, str], rows: int, load_s: float, sections: dict[str, list]) -> str:
    lines = [
        "# Leak response benchmark (`bench/leaks.py`)",
        "",
        f"{rows:,} keys in `tensorzero_auth_api_key` (loaded in {load_s:.1f} s) plus the "
        "1,000 of the paste. Medians after one warm-up run.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
    ]
    for title, rows_ in sections.items():
        lines += [f"## {title}", "", "| what | ms | notes |", "|---|---:|---|"]
        lines += [f"| {name} | {value:,.1f} | {note} |" for name, value, note in rows_]
        lines.append("")
    lines += [
        "## Reading",
        "",
        "- Classifying is one query: an index probe of `uniq_public_id` per distinct public "
        "ID (a `Bitmap Index Scan` with `= ANY(array)`, plan below), however big the table. "
        "Whether a secret matches is checked in Python against the stored hash. The rest of "
        "the request is parsing the 1 MB multipart body, the scan for keys and the page.",
        "- Disable all is one transaction: the keys' ids read, then locked, updated and "
        "recorded in slices of 10,000 rows a statement (`service.SLICE`), so that no "
        "statement nears the statement timeout at 100,000 keys; the page figure adds checking the signed list "
        "and drawing the outcome for 1,000 rows. The time grows in step with the keys, up "
        "to the 100,000 one disable takes (until 2026-12-03 the outcome was sorted out by a "
        "loop that grew with the square of the keys: seconds for 10,000, hours for 100,000).",
        "- find_leaked_keys reads 1 MiB of text at a time and keeps only the distinct keys "
        "found, so its memory is the Python process with Django loaded (about 80 MB) plus "
        "a few MB, whatever the file's size; it grows only with the number of distinct keys.",
        "",
        "## The classify query's plan",
        "",
        "```",
        *PLANS,
        "```",
        "",
    ]
    return "\n".join(lines).rstrip("\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--file-mb", type=int, default=100)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    began = time.perf_counter()
    with postgres_server() as server_url, scratch_database(server_url) as database_url:
        setup_django(database_url)
        load_s = load(database_url, args.rows)
        info = machine(database_url)
        keys = make_keys(database_url)
        log("classifying")
        sections = {
            "Classify 1 MB holding 1,000 keys (target: under 300 ms)": bench_classify(
                keys, args.reps
            )
        }
        log(f"find_leaked_keys on {args.file_mb} MB")
        sections["find_leaked_keys on a big file (target: under 100 MB resident)"] = bench_command(
            database_url, keys, args.file_mb
        )
        log("disable all")
        sections["Disable all on 1,000 keys (target: under 2 s), and on more"] = bench_disable(
            database_url, args.reps
        )
        section = report(info, args.rows, load_s, sections)
    write_section(args.results, "bench/leaks.py", section)
    print(section)
    log(f"wrote {args.results} in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
