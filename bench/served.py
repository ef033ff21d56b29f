"""Pages as a browser gets them: the real gunicorn of `make run`, over HTTP, signed in.

Called by bench/paging.py after it has loaded the scratch database, so that `make bench`
measures everything in one run. Every time is a ratio to `/healthz` measured in the same
run on the same connection: on a shared 2-core machine the absolute figures move with
the load, the ratios much less.

Wire bytes are what crosses the socket: status line, headers and the body as sent
(compressed when the server compressed it). The client asks for compression as Chromium
does (`Accept-Encoding: gzip, deflate, br, zstd`).
"""

from __future__ import annotations

import gzip
import http.client
import re
import statistics
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
ACCEPT_ENCODING = "gzip, deflate, br, zstd"  # what Chromium sends
BROWSER_HEADERS = {"Accept-Encoding": ACCEPT_ENCODING}
HTMX = {"HX-Request": "true"}
# Turns of /healthz and page for each small page (see timed): enough that a noisy
# neighbour's bursts fall on both sides alike.
ROUNDS = 8


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    wire: int  # bytes on the wire: status line, headers, body as sent
    body: bytes  # decoded (decompressed) body
    ms: float


@dataclass
class Row:
    name: str
    ms: float
    ratio: float
    wire: int
    note: str = ""


@dataclass
class Served:
    healthz_ms: float = 0.0
    rows: list[Row] = field(default_factory=list)
    # path, wire bytes, Content-Encoding, wire bytes were the body gzipped (-9) ahead of time
    first_visit: list[tuple[str, int, str, int]] = field(default_factory=list)
    memory: list[tuple[str, list[int]]] = field(default_factory=list)  # moment, worker RSS KiB
    render: list[tuple[str, float]] = field(default_factory=list)  # in-process template timing
    session_save_ms: float | None = None
    command: str = ""


class Client:
    """One keep-alive connection, with the cookies the server set."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        fresh: bool = False,
    ) -> Answer:
        if fresh:  # a new connection: lands on whichever worker accepts it
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        sent = {**BROWSER_HEADERS, "Host": f"localhost:{self.port}", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            sent["Origin"] = f"http://localhost:{self.port}"
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=sent)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the kept connection as it sat idle (gunicorn's keep-alive
            # is 2 s, and another server's start can take that long): as a browser does,
            # a GET goes again on a new connection.
            if method not in {"GET", "HEAD"}:
                raise
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            started = time.perf_counter()
            self.conn.request(method, path, body=body, headers=sent)
            response = self.conn.getresponse()
        raw = response.read()
        elapsed = (time.perf_counter() - started) * 1000.0
        header_bytes = len(f"HTTP/1.1 {response.status} {response.reason}\r\n") + sum(
            len(f"{k}: {v}\r\n") for k, v in response.getheaders()
        )
        chunked = response.getheader("Transfer-Encoding", "") == "chunked"
        # Chunked framing: about 8 bytes per chunk; counted as the body's length plus 1 %.
        wire = header_bytes + 2 + len(raw) + (len(raw) // 100 if chunked else 0)
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                cookie = value.split(";", 1)[0]
                key, _, val = cookie.partition("=")
                self.cookies[key.strip()] = val.strip()
        encoding = response.getheader("Content-Encoding", "")
        if encoding == "gzip":
            decoded = gzip.decompress(raw)
        elif encoding == "deflate":
            decoded = zlib.decompress(raw)
        elif encoding:
            decoded = raw  # br/zstd: counted on the wire, not read back here
        else:
            decoded = raw
        return Answer(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            wire,
            decoded,
            elapsed,
        )


@contextmanager
def gunicorn(database_url: str, secret_key: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The command `make run` starts (t0admin.serve), as the page tests start it."""
    from tests.servers import gunicorn as serve

    with serve(database_url, env={"DJANGO_SECRET_KEY": secret_key}) as server:
        yield server.port, server.process


def worker_rss_kib(master: int) -> list[int]:
    """Resident memory of each gunicorn worker (the master's children), in KiB."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    sizes = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]))
    return sorted(sizes)


def timed(reps: int, call: object, client: Client, rounds: int = 1) -> tuple[float, float, Answer]:
    """Median ms of `call`, and of /healthz measured just before it: on a shared machine
    the load drifts, and a ratio of two figures taken minutes apart drifts with it. (Not
    interleaved one by one: a /healthz right after a big page waits for that worker.)

    With `rounds`, the probes and the calls take turns that many times, `reps` calls each
    turn: the medians then come from rounds × reps calls, spread over the same moments.
    For the small pages, whose few milliseconds a busy neighbour moves by a third."""
    assert callable(call)
    probes: list[float] = []
    times: list[float] = []
    last = None
    for _ in range(rounds):
        client.request("GET", "/healthz")
        probes += [client.request("GET", "/healthz").ms for _ in range(max(reps, 9))]
        last = call()  # warm-up
        for _ in range(reps):
            last = call()
            times.append(last.ms)
    assert last is not None
    return statistics.median(times), statistics.median(probes), last


CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


def session_cookie(username: str, role: str | None = None) -> str:
    """A signed-in session for `username`, made as Django's test client does: a superuser,
    or with `role` a member of that role's group, as most people who use t0admin are."""
    from django.contrib.auth import get_user_model
    from django.test import Client as DjangoClient

    from keys import roles

    superuser = role is None
    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"is_superuser": superuser, "is_staff": superuser}
    )
    if role is not None:
        roles.set_role(user, role)
    client = DjangoClient()
    client.force_login(user)
    return client.cookies["sessionid"].value


def measure_session_save(session_key: str, reps: int) -> float:
    """What SESSION_SAVE_EVERY_REQUEST adds to each request: the session row written back
    (an UPDATE in its own transaction, committed: a WAL flush), as SessionMiddleware does."""
    from t0admin.sessions import SessionStore

    store = SessionStore(session_key)
    store.load()

    def save() -> float:
        started = time.perf_counter()
        store.modified = True
        store.save()
        return (time.perf_counter() - started) * 1000.0

    save()
    return statistics.median(save() for _ in range(reps))


def measure_row_render(limit: int, reps: int) -> float:
    """The list's table for `limit` keys already loaded, as the view makes it: the
    `keys/list.html#table` partial, then the rows spliced in (keys/rows.py)."""
    from django.contrib.auth import get_user_model
    from django.http import HttpResponse
    from django.template.loader import get_template
    from django.test import RequestFactory

    from keys import listing, rows

    page = listing.page(limit)
    request = RequestFactory().get("/api-keys", HTTP_HOST="localhost")
    request.user = get_user_model().objects.get(username="bench")
    template = get_template("keys/list.html#table")
    context = {
        "page": page,
        "query": "",
        "keep": "",
        "can_write": True,
        "api_keys_url": "/api-keys",
        "rows_place": rows.place(),
    }

    def render() -> float:
        started = time.perf_counter()
        response = HttpResponse(template.render(context, request))
        rows.splice(
            response, context["rows_place"], page.keys, can_write=True, api_keys_url="/api-keys"
        )
        elapsed = (time.perf_counter() - started) * 1000.0
        assert response.content.count(b"<tr id=") == limit, "the rows did not go in"
        return elapsed

    render()
    # Best of: on a shared machine the other load only ever adds time.
    return min(render() for _ in range(reps))


def measure(
    database_url: str, secret_key: str, deep_cursor: str, deep_first: str, reps: int
) -> Served:
    from keys import roles
    from keys.models import ApiKey

    result = Served()
    from t0admin.serve import gunicorn_command

    command = gunicorn_command("--bind", "127.0.0.1:PORT")
    result.command = " ".join(command[2:])
    sessionid = session_cookie("bench")
    result.session_save_ms = measure_session_save(sessionid, reps * 5)
    for limit in (100, 1000, 10_000):
        result.render.append((f"table of {limit:,} rows", measure_row_render(limit, max(3, reps))))

    with gunicorn(database_url, secret_key) as (port, process):
        # First visit: a browser with no cookies but the session, and an empty cache.
        first = Client(port)
        first.cookies["sessionid"] = sessionid
        page = first.request("GET", "/api-keys")
        assert page.status == 200, page.status
        result.first_visit.append(
            ("/api-keys", page.wire, page.headers.get("content-encoding", "none"), page.wire)
        )
        for asset in re.findall(rb'(?:href|src)="(/static/[^"]+)"', page.body):
            got = first.request("GET", asset.decode())
            encoding = got.headers.get("content-encoding", "none")
            # What a pre-compressed copy (whitenoise's .gz, level 9) would put on the wire.
            packed = got.wire
            if encoding == "none":
                packed += len(gzip.compress(got.body, 9)) - len(got.body) + 24
            result.first_visit.append((asset.decode(), got.wire, encoding, packed))

        client = Client(port)
        client.cookies["sessionid"] = sessionid
        client.cookies["t0admin_tz"] = "UTC"
        client.request("GET", "/api-keys")  # sets csrftoken
        result.memory.append(("after start and one list page", worker_rss_kib(process.pid)))

        healthz, _, got = timed(reps * 3, lambda: client.request("GET", "/healthz"), client)
        assert got.status == 200
        result.healthz_ms = healthz
        probes: list[float] = []

        def add(name: str, timing: tuple[float, float, Answer], note: str = "") -> None:
            ms, probe, answer = timing
            probes.append(probe)
            result.rows.append(Row(name, ms, ms / probe, answer.wire, note))

        add("/healthz", (healthz, healthz, got))
        # The floor of any signed-in page: session, user, permissions, one row.
        timing = timed(reps, lambda: client.request("GET", "/api-keys?limit=1"), client, ROUNDS)
        add("/api-keys?limit=1 (floor of a signed-in page)", timing)
        timing = timed(reps, lambda: client.request("GET", "/api-keys"), client, ROUNDS)
        add("/api-keys (first page, 100 rows)", timing)
        # The same page for a member of the Key admins group rather than a superuser,
        # whose permission checks Django answers without asking the database.
        role_admin = Client(port)
        role_admin.cookies["sessionid"] = session_cookie("bench-key-admin", roles.ADMINS)
        role_admin.cookies["t0admin_tz"] = "UTC"
        timing = timed(reps, lambda: role_admin.request("GET", "/api-keys"), client, ROUNDS)
        assert b"Generate API Key" in timing[2].body, "the Key admin cannot write"
        add("/api-keys as a Key admin (a role, not a superuser)", timing)
        timing = timed(
            reps, lambda: client.request("GET", f"/api-keys?before={deep_cursor}"), client, ROUNDS
        )
        got = timing[2]
        assert deep_first.encode() in got.body, "the deep page does not show its keys"
        add("/api-keys?before=… (500,000 deep)", timing)
        timing = timed(reps, lambda: client.request("GET", "/api-keys?limit=1000"), client)
        add("/api-keys?limit=1000", timing)
        timing = timed(
            max(3, reps // 2), lambda: client.request("GET", "/api-keys?limit=10000"), client
        )
        got = timing[2]
        add("/api-keys?limit=10000", timing, f"{len(got.body):,} bytes of HTML unpacked")

        # Big pages on fresh connections, so that both workers serve some.
        for _ in range(6):
            client.request("GET", "/api-keys?limit=10000", fresh=True)
        result.memory.append(("after 6 more ?limit=10000", worker_rss_kib(process.pid)))

        # Find with an exact public ID: every request the browser makes until it shows
        # the key (a redirect is followed, as the browser does).
        def find() -> Answer:
            answer = client.request("POST", "/api-keys/find", {"query": deep_first})
            total = answer.ms
            wire = answer.wire
            hops = 1
            while answer.status in (301, 302, 303):
                answer = client.request("GET", answer.headers["location"])
                total += answer.ms
                wire += answer.wire
                hops += 1
            assert deep_first.encode() in answer.body, (answer.status, answer.body[:300])
            return Answer(answer.status, {"hops": str(hops)}, wire, answer.body, total)

        timing = timed(reps, find, client, ROUNDS)
        hops = timing[2].headers["hops"]
        add("Find an exact public ID (all round trips)", timing, f"{hops} request(s)")

        # Create and disable, as the dialog sends them (htmx); the list's own refresh
        # that follows is the first-page figure above.
        created: list[str] = []

        def create() -> Answer:
            form = {
                "form_token": str(uuid.uuid4()),
                "description": "bench",
                "expiration": "never",
            }
            answer = client.request("POST", "/api-keys/new", form, HTMX)
            assert answer.status == 200, answer.status
            created.append(re.findall(rb"sk-t0-([A-Za-z0-9]{12})-", answer.body)[0].decode())
            return answer

        timing = timed(reps, create, client)
        add("create a key (htmx POST)", timing)
        queue = list(created)

        def disable() -> Answer:
            public_id = queue.pop()
            answer = client.request("POST", f"/api-keys/{public_id}/disable", {}, HTMX)
            assert answer.status == 200, answer.status
            return answer

        timing = timed(min(reps, len(queue) - 1), disable, client)
        add("disable a key (htmx POST)", timing)
        ApiKey.objects.filter(description="bench").delete()
        result.memory.append(("at the end", worker_rss_kib(process.pid)))
    return result


def report(result: Served) -> list[str]:
    lines = [
        "## Served pages (real gunicorn, over HTTP)",
        "",
        f"`python -m {result.command}` (what `make run` starts), signed in as a superuser; "
        "one keep-alive connection, requests one after another; median after a warm-up. "
        f"`/healthz` took {result.healthz_ms:.2f} ms (median) at the start of this run. "
        "Ratio: the page's median over the median of the `/healthz` requests sent just "
        "before it (at least 9), so that both saw about the same load. The pages of 1 and "
        f"100 rows and Find take {ROUNDS} turns with /healthz (the medians of "
        f"{ROUNDS} × the runs on each side), since a busy neighbour moves their few "
        "milliseconds most.",
        "",
        "| request | ms | × /healthz | bytes on the wire | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for row in result.rows:
        lines.append(
            f"| {row.name} | {row.ms:,.2f} | {row.ratio:,.1f} | {row.wire:,} | {row.note} |"
        )
    total = sum(visit[1] for visit in result.first_visit)
    packed = sum(visit[3] for visit in result.first_visit)
    lines += [
        "",
        f"First visit to `/api-keys` (empty cache; `Accept-Encoding: {ACCEPT_ENCODING}`): "
        f"**{total:,} bytes** on the wire as served now; {packed:,} bytes once static "
        "files are served pre-compressed (the last column: each file gzipped at level 9 "
        "here, as whitenoise's compressed storage stores it; brotli is smaller still).",
        "",
        "| request | bytes on the wire | Content-Encoding | pre-compressed |",
        "|---|---:|---|---:|",
        *(
            f"| {path} | {wire:,} | {enc} | {pre:,} |"
            for path, wire, enc, pre in result.first_visit
        ),
        "",
        "Resident memory of the gunicorn workers (KiB, each worker):",
        "",
        "| moment | workers' RSS |",
        "|---|---|",
        *(
            f"| {moment} | {', '.join(f'{kib:,}' for kib in sizes)} |"
            for moment, sizes in result.memory
        ),
        "",
        "The table alone (in-process, keys already loaded: the `keys/list.html#table` partial "
        "and the rows spliced in, as the view does; best of the runs, since other load on "
        "the machine only ever adds time):",
        "",
        "| render | ms | ms per row |",
        "|---|---:|---:|",
    ]
    for name, ms in result.render:
        count = int(name.split()[2].replace(",", ""))
        lines.append(f"| {name} | {ms:,.2f} | {ms / count:.4f} |")
    if result.session_save_ms is not None:
        lines += [
            "",
            f"Saving the session: {result.session_save_ms:.2f} ms (median), the `UPDATE` "
            "of the session row and its commit. With `SESSION_SAVE_EVERY_REQUEST = True` "
            "(until issue 9) every signed-in request paid it, on top of the `SELECT` that "
            "loads the session.",
        ]
    return [*lines, ""]
