"""Ask a running gateway whether keys still get in; the one place that speaks HTTP to it.

GATEWAY.md, "Asking a running gateway whether a key still works": `POST /inference` with
the body `{}` and `Authorization: Bearer <key>` costs no inference. `401` means the gateway
refuses the key; any other answer means the key passed the auth check. The gateway caches
each key's verdict for its auth cache TTL (1 s by default), so a key disabled a moment ago
may pass once more: a key that should be refused is asked again for a few seconds before
it is reported as still accepted.

Short timeouts and a bounded total, so that a page waiting for this never hangs on a
slow gateway; a gateway that stops answering is given up on at once. Each of the workers
keeps its connection open from one call to the next, and the keys that should be refused
are asked first: the proof that they are off is what the check is for. No redirects are
followed: a key is never sent anywhere but the configured URL.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from keys import text, tokens

CONNECT_AT_LEAST = 1.0  # seconds one address of several is given to connect, if there are
CALL_TIMEOUT = 2.0  # seconds for one call, from connecting to the last byte read
# How long after the check begins a key that should be refused is asked again: the auth
# cache's TTL and then some. Counted from the check, not from each key's first call: a key
# disabled before the check began is past its TTL by then, whenever it is reached.
RETRY_FOR = 4.0
RETRY_EVERY = 0.25
ROUND_PAUSE = 0.5  # before asking again the keys that got no answer; doubled each round
BUDGET = 12.0  # the most the whole check may take, however many keys
WORKERS = 8
AUTH_ERROR_PREFIX = "TensorZero authentication error: "
# GATEWAY.md: a key that gets through the auth check fails on the empty body with 400 or
# 422. Any other status but 401 comes from something in front of the gateway (a proxy's
# 429, a redirect, a WAF's 403): no verdict on the key either way.
LET_IN = frozenset({400, 422})
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only

NOT_CONFIGURED = (
    "t0admin could not ask the gateway whether these keys still get in: "
    "TENSORZERO_GATEWAY_URL is not set. Set it, where t0admin runs, to the address at "
    "which t0admin reaches the gateway (e.g. http://gateway:3000) to have every key checked."
)


class Verdict(StrEnum):
    REFUSED = "refused"
    ACCEPTED = "accepted"
    NO_ANSWER = "no_answer"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    status: int | None = None
    message: str = ""  # the gateway's reason for a 401, or why there was no answer
    attempts: int = 0
    expected_refused: bool = True
    earlier: datetime | None = None  # refused in an earlier check, then; not asked this time
    retry: bool = False  # no verdict, but asking again may get one (a 5xx, a 429, a reset)

    @property
    def loud(self) -> bool:
        """Accepted although it should have been refused."""
        return self.verdict is Verdict.ACCEPTED and self.expected_refused

    @property
    def text(self) -> str:
        if self.verdict is Verdict.REFUSED and self.earlier:
            at = timezone.localtime(self.earlier).strftime("%H:%M:%S %Z")
            return f"refused by the gateway in the check at {at}; not asked again"
        if self.verdict is Verdict.REFUSED:
            return f"refused by the gateway (401: {self.message})"
        if self.loud:
            return f"STILL ACCEPTED by the gateway (HTTP {self.status}, not 401)"
        if self.verdict is Verdict.ACCEPTED:
            return f"accepted by the gateway (HTTP {self.status}): it works there"
        if self.verdict is Verdict.NO_ANSWER:
            return f"not checked: {self.message}"
        return f"not checked: {self.message or 'the check ran out of time'}"


@dataclass
class Report:
    url: str | None  # None: no gateway configured, nothing was asked
    answers: list[Answer] = field(default_factory=list)  # one per key, in order
    decoy: Answer | None = None  # the made-up key's answer
    seconds: float = 0.0
    error: str = ""  # why nothing could be asked, e.g. a malformed URL

    @property
    def auth_off(self) -> bool:
        """A key that cannot exist got through: this gateway checks no keys at all."""
        return self.decoy is not None and self.decoy.verdict is Verdict.ACCEPTED

    @property
    def still_accepted(self) -> int:
        return sum(answer.loud for answer in self.answers)

    @property
    def unanswered(self) -> int:
        """Keys with no verdict: the gateway did not answer, or the time ran out first."""
        return sum(
            answer.verdict in {Verdict.NO_ANSWER, Verdict.NOT_CHECKED} for answer in self.answers
        )

    @property
    def worth_asking_again(self) -> bool:
        """Some key without a verdict may get one in another check (not, say, when every
        answer was a redirect: that is the URL to fix)."""
        return any(a.retry or a.verdict is Verdict.NOT_CHECKED for a in self.answers)

    @property
    def decoy_unanswered(self) -> bool:
        """Whether authentication is on at the gateway could not be told."""
        return self.decoy is not None and self.decoy.verdict in {
            Verdict.NO_ANSWER,
            Verdict.NOT_CHECKED,
        }


def configured_url() -> str | None:
    """The gateway's URL when TENSORZERO_GATEWAY_URL was really set, else None (the
    setting's default only fills in a usage example)."""
    return settings.GATEWAY_URL if settings.GATEWAY_URL_SET else None


def _printable(words: str, limit: int = 200) -> str:
    """The gateway's words as the page shows them: a secret in them (a gateway or a proxy
    that repeats the key it refused) hidden before anything is cut, control characters
    as spaces."""
    words = text.hide_secrets(words)
    clean = "".join(" " if unicodedata.category(c).startswith("C") else c for c in words)
    return clean.strip()[:limit]


def _error_words(body: bytes) -> str | None:
    """The words of an error body, `{"error": "…"}` or `{"error": {"message": "…"}}` (on
    the gateway's OpenAI-compatible routes); "" for JSON without them, None if no JSON."""
    try:
        error = json.loads(body.decode("utf-8", "replace")).get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else ""


def _reason(body: bytes) -> str:
    """The gateway's words from a 401 body, as the page shows them."""
    words = _error_words(body)
    if words is None:
        return _printable(body.decode("utf-8", "replace")) or "no reason given"
    return _printable(words.removeprefix(AUTH_ERROR_PREFIX)) or "no reason given"


def _the_gateways_refusal(body: bytes) -> bool:
    """A 401 with TensorZero's own words (GATEWAY.md). Any other 401 is from something in
    front of the gateway (a proxy asking for its own sign-in): it says nothing about the
    key, and counting it as refused would show a key as off that may still work."""
    return (_error_words(body) or "").startswith(AUTH_ERROR_PREFIX)


class _CallDeadline:
    """One call's limit, from looking up the host to the last byte read.

    A socket timeout bounds each operation, not their sum: a gateway (or a proxy) that
    drips its answer a byte at a time, a host with several silent addresses, or a TLS
    handshake after a slow connect would each outlast it. At the deadline the socket is
    shut down (the plain socket's shutdown, also under TLS), so the reader sees the
    stream end, and the call counts as timed out: never a verdict from a cut answer.
    """

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._finished = False
        self.overdue = False
        self._timer = threading.Timer(seconds, self._cut_off)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0 or self.overdue:
            raise TimeoutError
        return left

    def hold(self, sock: socket.socket) -> None:
        """The socket to cut at the deadline (http.client lets go of `connection.sock`
        once a response that ends at close has begun, so it is held here)."""
        with self._lock:
            self._sock = sock
        if self.overdue:
            raise TimeoutError

    def _cut_off(self) -> None:
        with self._lock:  # never a socket whose descriptor close() has given back
            if self._finished:
                return
            self.overdue = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def finish(self) -> None:
        with self._lock:
            self._finished = True
        self._timer.cancel()


class _Gateway:
    def __init__(self, url: str, call_timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"TENSORZERO_GATEWAY_URL must be an http(s) URL, not {url!r}.")
        try:
            parts.hostname.encode("idna")
            port = parts.port
        except (UnicodeError, ValueError):
            raise ValueError(
                f"TENSORZERO_GATEWAY_URL has a host name or port that cannot be used: {url!r}."
            ) from None
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.https else 80)
        self.path = parts.path.rstrip("/") + "/inference"
        self.call_timeout = call_timeout
        self.stalled = threading.Event()  # a call timed out: ask nothing more
        self._resolving = threading.Lock()
        self._addresses: list[Any] | None = None
        # Each worker thread keeps its connection open between its calls (HTTP/1.1):
        # a call costs one round trip, not a connect (and a TLS handshake) as well.
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._opened_lock = threading.Lock()

    def _resolve(self, deadline: _CallDeadline) -> list[Any]:
        """The host's addresses, looked up once for the whole check. The resolver has no
        timeout of its own, so it runs beside the call, which waits only until its
        deadline."""
        if not self._resolving.acquire(timeout=deadline.remaining()):
            raise TimeoutError
        try:
            if self._addresses is None:
                found: dict[str, Any] = {}

                def look_up() -> None:
                    try:
                        found["addresses"] = socket.getaddrinfo(
                            self.host, self.port, type=socket.SOCK_STREAM
                        )
                    except (OSError, UnicodeError) as error:
                        found["error"] = error

                # A daemon thread: a resolver that hangs is left behind, never waited for.
                lookup = threading.Thread(target=look_up, daemon=True)
                lookup.start()
                lookup.join(deadline.remaining())
                if lookup.is_alive():
                    raise TimeoutError
                if "error" in found:
                    error = found["error"]
                    raise error if isinstance(error, OSError) else OSError(str(error))
                self._addresses = found["addresses"]
            return self._addresses
        finally:
            self._resolving.release()

    def _connect(self, deadline: _CallDeadline) -> socket.socket:
        """http.client's connect, but every address tried within the one deadline, each
        with a share of the time left, and at least a second of it (a far gateway takes a
        round trip to connect): a silent first address (an unreachable AAAA record) leaves
        time for the next."""
        addresses = self._resolve(deadline)
        if not addresses:
            raise OSError("the host name has no address")
        for index, (family, kind, proto, _, address) in enumerate(addresses):
            sock = socket.socket(family, kind, proto)
            try:
                deadline.hold(sock)
                left = deadline.remaining()
                sock.settimeout(max(left / (len(addresses) - index), min(left, CONNECT_AT_LEAST)))
                sock.connect(address)
                # The TLS handshake (one deadline in Python) and each read after it.
                sock.settimeout(deadline.remaining())
                return sock
            except OSError:
                sock.close()
                if deadline.overdue or index == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable: the last address returns or raises")

    def _open(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if self.https:
            connection = http.client.HTTPSConnection(
                self.host,
                self.port,
                timeout=self.call_timeout,
                context=ssl.create_default_context(),
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.call_timeout)
        with self._opened_lock:
            self._opened.append(connection)
        return connection

    def call(self, key: str) -> tuple[int, bytes]:
        """One request on this thread's kept connection, or a new one. A kept connection
        the gateway closed while it was idle fails at once and is replaced, within the
        same deadline: asking again costs nothing, the body `{}` runs no inference."""
        deadline = _CallDeadline(self.call_timeout)
        try:
            kept: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
            self._local.connection = None  # kept again only after a whole answer
            if kept is not None and kept.sock is not None:
                try:
                    return self._exchange(kept, key, deadline)
                except _Closed:
                    pass
            return self._exchange(self._open(), key, deadline)
        finally:
            deadline.finish()

    def _exchange(
        self, connection: http.client.HTTPConnection, key: str, deadline: _CallDeadline
    ) -> tuple[int, bytes]:
        reused = connection.sock is not None
        answered = False
        # http.client's own hook for opening the socket; the TLS handshake follows on it.
        connection._create_connection = lambda *_: self._connect(deadline)  # type: ignore[attr-defined]
        try:
            if reused:
                # Each read waits at most what is left of this call, not of the one that
                # opened the connection.
                connection.sock.settimeout(deadline.remaining())
            else:
                connection.connect()
            # Under TLS the socket just held is now wrapped (and detached): hold the wrapper.
            deadline.hold(connection.sock)
            connection.request(
                "POST",
                self.path,
                body=b"{}",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            if QUICKACK is not None:
                # A server that writes its head and body apart (Python's http.server does)
                # holds the body until the head is acknowledged, and Linux delays that
                # acknowledgment on a kept connection: 40 ms a call. 500 calls to such a
                # server: 2.8 s without this, 0.4 s with it.
                connection.sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            response = connection.getresponse()
            answered = True
            answer = response.status, response.read(4096)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            if deadline.overdue:
                raise TimeoutError from None
            # A kept connection that fails before any answer (a reset, an end of stream,
            # under TLS an EOF without close_notify) was closed by the other end while
            # idle; a wait that ran out is the gateway's slowness, not that.
            closed = isinstance(error, OSError | http.client.BadStatusLine) and not isinstance(
                error, TimeoutError
            )
            if reused and not answered and closed:
                raise _Closed from None
            raise
        if deadline.overdue:  # what was read may be cut short: no verdict from it
            connection.close()
            raise TimeoutError
        if response.isclosed() and connection.sock is not None:
            self._local.connection = connection  # the whole answer read: ready for the next
        else:  # a longer body than is read, or the gateway ends the connection
            response.close()
            connection.close()
        return answer

    def close(self) -> None:
        """Close every kept connection, once all calls are done."""
        with self._opened_lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()


class _Closed(Exception):
    """A kept connection the gateway had closed: the request never reached it."""


def _ask(
    gateway: _Gateway, key: str, expect_refused: bool, deadline: float, settled: float
) -> Answer:
    """One key: refused, accepted, or no answer; asked again until `settled` while the
    gateway's auth cache may still hold it as good."""
    return replace(
        _ask_until(gateway, key, expect_refused, deadline, settled),
        expected_refused=expect_refused,
    )


def _no_verdict(status: int) -> str:
    """Why an answer other than 401, 400 or 422 says nothing about the key."""
    if 300 <= status < 400:
        return (
            f"the gateway answered HTTP {status}, a redirect, which is not followed: is "
            "TENSORZERO_GATEWAY_URL the gateway's own address?"
        )
    if status >= 500:
        # Auth runs before anything else at the gateway: a 5xx is a proxy or a crash in
        # front of it, not a verdict on the key.
        return f"the gateway answered HTTP {status}"
    if status == 401:
        return (
            "the answer was HTTP 401 without TensorZero's authentication error: something "
            "in front of the gateway refused the request, not the gateway the key"
        )
    return (
        f"the gateway answered HTTP {status}, where it answers 401 (refused) or 400 or 422 "
        "(let in): something in front of it answered"
    )


def _ask_until(
    gateway: _Gateway, key: str, expect_refused: bool, deadline: float, settled: float
) -> Answer:
    attempts = 0
    while True:
        if gateway.stalled.is_set():
            return Answer(Verdict.NOT_CHECKED, message="the gateway stopped answering")
        if time.monotonic() + gateway.call_timeout > deadline:
            return Answer(
                Verdict.NOT_CHECKED, message="the check ran out of time", attempts=attempts
            )
        attempts += 1
        try:
            status, body = gateway.call(key)
        except TimeoutError:
            gateway.stalled.set()
            return Answer(
                Verdict.NO_ANSWER,
                message=f"the gateway did not answer within {gateway.call_timeout:g} s",
                attempts=attempts,
            )
        except (OSError, http.client.HTTPException) as error:
            return Answer(
                Verdict.NO_ANSWER,
                message=f"could not reach the gateway ({_printable(str(error)) or type(error).__name__})",
                attempts=attempts,
                retry=True,
            )
        if status == 401 and _the_gateways_refusal(body):
            return Answer(Verdict.REFUSED, status, _reason(body), attempts)
        if status not in LET_IN:
            return Answer(
                Verdict.NO_ANSWER,
                status,
                _no_verdict(status),
                attempts,
                retry=status >= 500 or status in {408, 429},
            )
        if not expect_refused or time.monotonic() + RETRY_EVERY > settled:
            return Answer(Verdict.ACCEPTED, status, attempts=attempts)
        time.sleep(RETRY_EVERY)  # its auth cache may still hold the key as good


def probe(
    keys: Sequence[str],
    expect_refused: Sequence[bool],
    url: str | None = None,
    *,
    call_timeout: float = CALL_TIMEOUT,
    budget: float = BUDGET,
) -> Report:
    """Ask the gateway at `url` (default: the configured one) about each key.

    `expect_refused[i]` says whether keys[i] should be refused (disabled, expired,
    unknown): only those are asked again while the gateway's auth cache may lag. A made-up
    key is asked too; if it is not refused, auth is off at that gateway.
    """
    if len(keys) != len(expect_refused):
        raise ValueError("one expect_refused per key")
    url = url if url is not None else configured_url()
    if url is None:
        return Report(url=None)
    began = time.monotonic()
    deadline = began + budget
    try:
        gateway = _Gateway(url, call_timeout)
    except ValueError as error:
        return Report(url=url, error=str(error))
    # A made-up key (62^60 possibilities: certainly in no database) first, then the keys
    # that should be refused: if time runs out, what is left unchecked is the keys
    # t0admin itself says work.
    asked = [tokens.generate(), *keys]
    refuse = [False, *expect_refused]
    settled = began + RETRY_FOR
    answers: dict[int, Answer] = {}
    pending = sorted(range(len(asked)), key=lambda index: index > 0 and not refuse[index])
    pause = ROUND_PAUSE
    fruitless = 0
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(WORKERS, len(asked)))) as pool:
            while True:
                futures = {
                    index: pool.submit(
                        _ask, gateway, asked[index], refuse[index], deadline, settled
                    )
                    for index in pending
                }
                for index, future in futures.items():
                    answer = future.result()
                    if answer.verdict is Verdict.NOT_CHECKED and index in answers:
                        continue  # out of time: the round before said more
                    answers[index] = answer
                # Keys without an answer that another try may get (a 5xx, a 429, a
                # reset) are asked again, after a pause that doubles each round, while
                # time remains. Three rounds in a row without one answer: no more.
                again = [index for index in pending if answers[index].retry]
                fruitless = fruitless + 1 if len(again) == len(pending) else 0
                if not again or fruitless == 3 or gateway.stalled.is_set():
                    break
                if time.monotonic() + pause + call_timeout > deadline:
                    break
                time.sleep(pause)
                pause *= 2
                pending = again
    finally:
        gateway.close()
    return Report(
        url=url,
        answers=[answers[index] for index in range(1, len(asked))],
        decoy=answers[0],
        seconds=time.monotonic() - began,
    )
