"""A stand-in TensorZero gateway for tests: GATEWAY.md's auth rules on the same table.

It answers `POST /inference` as the gateway does: the auth check first (parse the key,
hash its secret part, look the row up, refuse a disabled or expired one, 401 with the
gateway's JSON body and words), with a per-key cache of each verdict for `ttl_ms`; a key
that gets through is refused for its empty body (400), as the real gateway does. Modes:
`auth_off` lets every request through (`[gateway.auth] enabled = false`), `hang` accepts
connections and never answers, `close_after_each` closes each connection after one answer
without saying so (as a server does with a connection idle too long), `answers=n` answers
n requests and then hangs like `hang` (until the test sets `silent_after` to None).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

AUTH = "TensorZero authentication error: "


@dataclass
class StandIn:
    url: str
    calls: list[str] = field(default_factory=list)  # public IDs asked about, in order
    connections: int = 0  # TCP connections accepted
    received: int = 0  # requests received, answered or not
    silent_after: int | None = None  # requests answered before it hangs; None: all


def _verdict(database_url: str, key: str) -> str | None:
    """None when the key passes the auth check, else the gateway's reason."""
    parts = key.split("-")
    if (
        len(parts) != 4
        or parts[:2] != ["sk", "t0"]
        or len(parts[2]) != 12
        or len(parts[3]) != 48
        or not (parts[2].isascii() and parts[2].isalnum())
        or not (parts[3].isascii() and parts[3].isalnum())
    ):
        return "Invalid API key format"
    digest = hashlib.sha256(parts[3].encode()).hexdigest()
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT to_char(disabled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
            " to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
            " expires_at <= now() FROM public.tensorzero_auth_api_key"
            " WHERE public_id = %s AND hash = %s",
            [parts[2], digest],
        ).fetchone()
    if row is None:
        return "Provided API key does not exist in the database"
    if row[0] is not None:
        return f"API key was disabled at: {row[0]}"
    if row[2]:
        return f"API key expired at: {row[1]}"
    return None


@contextlib.contextmanager
def stand_in_gateway(
    database_url: str,
    *,
    ttl_ms: int = 1000,
    auth_off: bool = False,
    hang: bool = False,
    close_after_each: bool = False,
    answers: int | None = None,
) -> Iterator[StandIn]:
    released = threading.Event()
    cache: dict[str, tuple[float, str | None]] = {}
    lock = threading.Lock()
    state = StandIn(url="", silent_after=answers)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            with lock:
                state.connections += 1

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if close_after_each:
                self.close_connection = True  # no "Connection: close": the client learns late

        def do_POST(self) -> None:  # noqa: N802  http.server's name
            with lock:
                state.received += 1
                silent = state.silent_after is not None and state.received > state.silent_after
            if hang or silent:
                released.wait(30)
                return
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            header = self.headers.get("Authorization", "")
            key = header.removeprefix("Bearer ").strip()
            parts = key.split("-")
            with lock:
                state.calls.append(parts[2] if len(parts) == 4 else "?")
            if not auth_off:
                if not header.startswith("Bearer "):
                    self._send(401, {"error": AUTH + "Authorization header is required"})
                    return
                now = time.monotonic()
                with lock:
                    cached = cache.get(key)
                if cached and now - cached[0] < ttl_ms / 1000:
                    reason = cached[1]
                else:
                    reason = _verdict(database_url, key)
                    with lock:
                        cache[key] = (now, reason)
                if reason is not None:
                    self._send(401, {"error": AUTH + reason})
                    return
            self._send(400, {"error": "Failed to parse the request body: missing field `input`"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        released.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
