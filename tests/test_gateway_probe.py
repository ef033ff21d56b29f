"""keys.gateway_probe against stand-in gateways started here (tests/gateway_stand_in.py)."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.core import signing
from django.utils import timezone

from keys import gateway_probe, leaks, service, tokens, views
from keys.gateway_probe import Verdict
from tests.gateway_stand_in import stand_in_gateway
from tests.servers import test_database_url as database_url

pytestmark = pytest.mark.django_db(transaction=True)


def test_disabled_and_unknown_keys_are_refused_with_the_gateways_reason() -> None:
    live = service.create_key(actor="t")
    dead = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=dead.api_key.public_id)
    unknown = tokens.generate()
    with stand_in_gateway(database_url()) as gateway:
        report = gateway_probe.probe(
            [live.secret, dead.secret, unknown], [False, True, True], gateway.url
        )
    live_answer, dead_answer, unknown_answer = report.answers
    assert live_answer.verdict is Verdict.ACCEPTED and live_answer.status == 400
    assert dead_answer.verdict is Verdict.REFUSED
    assert dead_answer.message.startswith("API key was disabled at: ")
    assert dead_answer.text.startswith("refused by the gateway (401: API key was disabled at")
    assert unknown_answer.message == "Provided API key does not exist in the database"
    assert not report.auth_off and report.decoy and report.decoy.verdict is Verdict.REFUSED


def test_retries_while_the_gateways_cache_still_accepts_a_disabled_key() -> None:
    key = service.create_key(actor="t")
    with stand_in_gateway(database_url(), ttl_ms=1500) as gateway:
        # The gateway sees the key work and caches that for 1.5 s; then it is disabled.
        first = gateway_probe.probe([key.secret], [False], gateway.url)
        assert first.answers[0].verdict is Verdict.ACCEPTED
        service.disable_key(actor="t", public_id=key.api_key.public_id)
        report = gateway_probe.probe([key.secret], [True], gateway.url)
    answer = report.answers[0]
    assert answer.verdict is Verdict.REFUSED
    assert answer.attempts > 1  # accepted from the cache at first, then refused


def test_a_key_still_accepted_after_the_retries_is_reported_loudly() -> None:
    key = service.create_key(actor="t")  # never disabled: the gateway keeps accepting it
    with stand_in_gateway(database_url()) as gateway:
        report = gateway_probe.probe([key.secret], [True], gateway.url)
    assert report.answers[0].verdict is Verdict.ACCEPTED
    assert report.answers[0].text.startswith("STILL ACCEPTED")
    assert report.still_accepted == 1


def test_auth_switched_off_is_detected_with_a_made_up_key() -> None:
    dead = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=dead.api_key.public_id)
    with stand_in_gateway(database_url(), auth_off=True) as gateway:
        report = gateway_probe.probe([dead.secret], [False], gateway.url)
    assert report.auth_off
    assert report.answers[0].verdict is Verdict.ACCEPTED


def test_a_hanging_gateway_costs_one_timeout_not_one_per_key() -> None:
    keys = [tokens.generate() for _ in range(40)]
    with stand_in_gateway(database_url(), hang=True) as gateway:
        started = time.monotonic()
        report = gateway_probe.probe(keys, [True] * 40, gateway.url, call_timeout=0.5)
        elapsed = time.monotonic() - started
    # 40 keys at 0.5 s each would be 20 s even one at a time; the first timeout stops all.
    assert elapsed < 3, elapsed
    assert {a.verdict for a in report.answers} <= {Verdict.NO_ANSWER, Verdict.NOT_CHECKED}
    assert any("did not answer within 0.5 s" in a.text for a in report.answers)
    assert not report.auth_off


def test_total_time_is_bounded_by_the_budget() -> None:
    keys = [service.create_key(actor="t").secret for _ in range(20)]
    with stand_in_gateway(database_url()) as gateway:
        started = time.monotonic()
        # Every key should be refused but is not: each would retry for RETRY_FOR seconds.
        report = gateway_probe.probe(keys, [True] * 20, gateway.url, budget=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0 + gateway_probe.RETRY_EVERY + 0.5
    assert {a.verdict for a in report.answers} <= {Verdict.ACCEPTED, Verdict.NOT_CHECKED}


def test_an_unreachable_gateway_says_so() -> None:
    from tests.conftest import free_port

    report = gateway_probe.probe([tokens.generate()], [True], f"http://127.0.0.1:{free_port()}")
    assert report.answers[0].verdict is Verdict.NO_ANSWER
    assert "could not reach the gateway" in report.answers[0].text


def test_without_a_configured_gateway_nothing_is_asked(settings) -> None:  # type: ignore[no-untyped-def]
    settings.GATEWAY_URL_SET = False
    report = gateway_probe.probe([tokens.generate()], [True])
    assert report.url is None and report.answers == []
    assert "TENSORZERO_GATEWAY_URL is not set" in gateway_probe.NOT_CONFIGURED


def test_a_malformed_gateway_url_is_an_error_not_a_crash() -> None:
    report = gateway_probe.probe([tokens.generate()], [True], "gateway:3000")
    assert "must be an http(s) URL" in report.error


def test_probes_run_side_by_side() -> None:
    keys = [tokens.generate() for _ in range(16)]
    with stand_in_gateway(database_url()) as gateway:
        report = gateway_probe.probe(keys, [True] * 16, gateway.url)
    assert [a.verdict for a in report.answers] == [Verdict.REFUSED] * 16
    assert len(gateway.calls) == 17  # every key once, and the made-up one
    assert threading.active_count() < 50


def test_the_leak_page_shows_the_gateways_answer_per_key(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    live = service.create_key(actor="t")
    dead = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=dead.api_key.public_id)
    with stand_in_gateway(database_url()) as gateway:
        settings.GATEWAY_URL, settings.GATEWAY_URL_SET = gateway.url, True
        html = admin_client.post(
            "/api-keys/leaked", {"text": f"{live.secret}\n{dead.secret}", "probe": "on"}
        ).content.decode()
    assert "accepted by the gateway (HTTP 400): it works there" in html
    assert "refused by the gateway (401: API key was disabled at: " in html
    assert "STILL ACCEPTED" not in html


def test_disable_all_then_the_gateway_refuses_every_key(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    import re

    keys = [service.create_key(actor="t") for _ in range(3)]
    text = " ".join(k.secret for k in keys)
    with stand_in_gateway(database_url()) as gateway:
        settings.GATEWAY_URL, settings.GATEWAY_URL_SET = gateway.url, True
        # Checked first with the gateway asked: it caches each key as good for its TTL.
        checked = admin_client.post("/api-keys/leaked", {"text": text, "probe": "on"})
        token = re.search(r'name="token" value="([^"]+)"', checked.content.decode())
        assert token
        done = admin_client.post(
            "/api-keys/leaked/disable",
            {"token": token.group(1), "confirmed": "yes", "text": text},
        ).content.decode()
    assert done.count("refused by the gateway (401: API key was disabled at: ") == 3
    assert "STILL ACCEPTED" not in done


def test_auth_off_is_a_warning_on_the_page(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    key = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=key.api_key.public_id)
    with stand_in_gateway(database_url(), auth_off=True) as gateway:
        settings.GATEWAY_URL, settings.GATEWAY_URL_SET = gateway.url, True
        html = admin_client.post(
            "/api-keys/leaked", {"text": key.secret, "probe": "on"}
        ).content.decode()
    assert "Authentication is switched off at the gateway" in html
    assert "STILL ACCEPTED by the gateway" in html


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "TensorZero authentication error: Invalid API key %s"}',
        b'{"error": {"message": "bad key %s"}}',
        b"<html>401: %s is not allowed</html>",
    ],
    ids=["tensorzero", "openai-route", "a-proxy-page"],
)
def test_a_refusal_that_repeats_the_key_never_shows_its_secret(body: bytes) -> None:
    """Found by a probe: a gateway or a proxy in front of it that echoes the refused key
    in its 401 put the whole key on the leak page."""
    secret = "A" * 48
    key = f"sk-t0-{'B' * 12}-{secret}"
    shown = gateway_probe._reason(body.replace(b"%s", key.encode()))
    assert secret not in shown and secret[:20] not in shown, shown
    assert "[secret hidden]" in shown


@contextlib.contextmanager
def socket_gateway(
    serve: Callable[[socket.socket, threading.Event], None], tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """A server on bare sockets, at the URL it yields: `serve(conn, stop)` answers each
    connection (under TLS if `tls`) in a thread of its own; a client that hangs up ends it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        try:
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            with conn:
                serve(conn, stop)
        except OSError:
            return  # the client hung up

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


@contextlib.contextmanager
def dripping_gateway(head: bytes, drip: bytes, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A server that sends `head` at once, then `drip` one byte a second: each read
    gets a byte well within any per-read timeout, but the answer never ends in time."""

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        conn.sendall(head)
        for byte in drip:
            if stop.wait(1.0):
                return
            conn.sendall(bytes([byte]))

    with socket_gateway(serve, tls) as url:
        yield url


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A self-signed certificate for 127.0.0.1, key and certificate in one PEM file."""
    pem = tmp_path_factory.mktemp("tls") / "gateway.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(pem), "-out", str(pem)],
        check=True, capture_output=True,
    )  # fmt: skip
    return pem


REFUSAL = b'{"error": "TensorZero authentication error: API key was disabled at: 2026"}'


@pytest.mark.parametrize(
    ("head", "drip"),
    [
        (b"HTTP/1.1 401 Unauthorized\r\n", b"Content-Type: application/json\r\n" * 4),
        (
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n" % len(REFUSAL),
            REFUSAL,
        ),
        (b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n", REFUSAL),
    ],
    ids=["headers", "body", "body-until-close"],
)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_gateway_that_drips_its_answer_is_cut_off_at_the_call_timeout(
    head: bytes, drip: bytes, scheme: str, certificate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = None
    if scheme == "https":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(certificate)
        trusting = ssl.create_default_context(cafile=str(certificate))
        monkeypatch.setattr(gateway_probe.ssl, "create_default_context", lambda: trusting)
    with dripping_gateway(head, drip, tls) as url:
        started = time.monotonic()
        report = gateway_probe.probe(
            [tokens.generate() for _ in range(3)], [True] * 3, url, call_timeout=1.5, budget=4
        )
        elapsed = time.monotonic() - started
    # Without a limit on the whole call, each answer takes len(drip) seconds (30 s and more).
    assert elapsed < 1.5 + 1.0, elapsed
    verdicts = [a.verdict for a in [*report.answers, report.decoy]]
    assert set(verdicts) <= {Verdict.NO_ANSWER, Verdict.NOT_CHECKED}, verdicts
    assert any("did not answer within 1.5 s" in a.text for a in report.answers)


def test_each_worker_keeps_its_connection_open_between_calls() -> None:
    keys = [tokens.generate() for _ in range(60)]
    with stand_in_gateway(database_url()) as gateway:
        report = gateway_probe.probe(keys, [True] * 60, gateway.url)
    assert [a.verdict for a in report.answers] == [Verdict.REFUSED] * 60
    assert len(gateway.calls) == 61
    # A connection per call would be 61; each worker keeps one.
    assert gateway.connections <= gateway_probe.WORKERS, gateway.connections


def test_a_kept_connection_the_gateway_closed_is_replaced_not_reported() -> None:
    keys = [tokens.generate() for _ in range(30)]
    with stand_in_gateway(database_url(), close_after_each=True) as gateway:
        report = gateway_probe.probe(keys, [True] * 30, gateway.url)
    # Each answer ends its connection without a word: the next call on it finds it closed
    # and asks again on a new one; no key is left without a verdict for it.
    assert [a.verdict for a in report.answers] == [Verdict.REFUSED] * 30, report.answers
    assert gateway.connections == 31  # one per call, and none of them asked twice
    assert len(gateway.calls) == 31


def test_keys_that_should_be_refused_are_asked_first(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(gateway_probe, "WORKERS", 1)  # one at a time: the order is seen
    live = [service.create_key(actor="t") for _ in range(3)]
    dead = [service.create_key(actor="t") for _ in range(3)]
    for key in dead:
        service.disable_key(actor="t", public_id=key.api_key.public_id)
    mixed = [k for pair in zip(live, dead, strict=True) for k in pair]  # live, dead, live, ...
    with stand_in_gateway(database_url()) as gateway:
        report = gateway_probe.probe(
            [k.secret for k in mixed], [k in dead for k in mixed], gateway.url
        )
    asked = gateway.calls[1:]  # after the made-up key
    assert asked == [k.api_key.public_id for k in dead + live]
    # The answers stay in the order of the keys given.
    assert [a.verdict for a in report.answers] == [Verdict.ACCEPTED, Verdict.REFUSED] * 3


def test_keys_the_gateway_did_not_answer_for_are_counted_not_called_asked(
    admin_client, settings
) -> None:  # type: ignore[no-untyped-def]
    keys = [service.create_key(actor="t") for _ in range(3)]
    for key in keys:
        service.disable_key(actor="t", public_id=key.api_key.public_id)
    with stand_in_gateway(database_url(), hang=True) as gateway:
        settings.GATEWAY_URL, settings.GATEWAY_URL_SET = gateway.url, True
        html = admin_client.post(
            "/api-keys/leaked", {"text": " ".join(k.secret for k in keys), "probe": "on"}
        ).content.decode()
    assert "3 of 3 keys not checked</strong> by the gateway" in html
    assert "with each key" not in html
    assert "did not answer within 2 s" in html


@contextlib.contextmanager
def plain_gateway(
    tls: ssl.SSLContext | None = None,
    *,
    keep_open: bool = True,
    pace: float | None = None,
    status: int = 401,
    body: bytes = REFUSAL,
    fail_every: int = 0,
    fail_first: int = 0,
    down_for: float = 0.0,
    delay: float = 0.0,
    seen: list[int] | None = None,
) -> Iterator[str]:
    """A gateway that refuses every key, written on bare sockets. `keep_open=False` ends
    each connection right after its answer without a word (under TLS: no close_notify),
    as a proxy does with a connection idle too long. From a connection's second request
    on, it waits `pace` seconds before each answer; `delay`: before every answer.
    `status` and `body`: what it answers instead (as a proxy in front of it might).
    503 instead: every `fail_every`-th request, the first `fail_first` requests, and all
    requests in its first `down_for` seconds. Each request is appended to `seen`."""
    requests = itertools.count(1)  # next() on it is atomic: shared by the connections
    up_at = time.monotonic() + down_for

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        for count in itertools.count(1):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, sent = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(sent) < length:
                sent += conn.recv(65536)
            if pace and count > 1:
                time.sleep(pace)
            number = next(requests)
            if seen is not None:
                seen.append(number)
            time.sleep(delay)
            answer = status
            if (fail_every and number % fail_every == 0) or number <= fail_first:
                answer = 503
            if time.monotonic() < up_at:
                answer = 503
            conn.sendall(
                b"HTTP/1.1 %d X\r\nLocation: /elsewhere\r\nContent-Length: %d\r\n\r\n%s"
                % (answer, len(body), body)
            )
            if not keep_open:
                return  # closed, under TLS without close_notify

    with socket_gateway(serve, tls) as url:
        yield url


def test_a_kept_connection_waits_a_whole_call_timeout_not_what_its_first_call_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first call's host lookup takes 1.5 s of its 2 s; the later calls on the same
    connections each take 0.8 s, well within theirs."""
    real = socket.getaddrinfo

    def slow(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "gateway":
            time.sleep(1.5)
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    with plain_gateway(pace=0.8) as url:
        report = gateway_probe.probe(
            [tokens.generate() for _ in range(24)], [True] * 24, url.replace("127.0.0.1", "gateway")
        )
    assert [a.verdict for a in report.answers] == [Verdict.REFUSED] * 24, report.answers


def test_a_kept_tls_connection_the_gateway_dropped_is_replaced(
    certificate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate)
    trusting = ssl.create_default_context(cafile=str(certificate))
    monkeypatch.setattr(gateway_probe.ssl, "create_default_context", lambda: trusting)
    with plain_gateway(tls, keep_open=False) as url:
        report = gateway_probe.probe([tokens.generate() for _ in range(20)], [True] * 20, url)
    assert [a.verdict for a in report.answers] == [Verdict.REFUSED] * 20, report.answers


@pytest.mark.parametrize("status", [429, 302, 403, 404, 200])
def test_an_answer_that_is_not_the_gateways_is_no_verdict(status: int) -> None:
    """Only 401 refuses and only 400 or 422 lets in (GATEWAY.md): a proxy's 429, a
    redirect or a WAF's 403 would otherwise read as keys that still work, and the
    made-up key's as authentication switched off."""
    with plain_gateway(status=status) as url:
        report = gateway_probe.probe([tokens.generate() for _ in range(3)], [True] * 3, url)
    assert not report.auth_off
    assert report.decoy is not None and report.decoy.verdict is Verdict.NO_ANSWER
    assert [a.verdict for a in report.answers] == [Verdict.NO_ANSWER] * 3
    assert report.still_accepted == 0
    assert f"the gateway answered HTTP {status}" in report.answers[0].text
    if status == 302:
        assert "a redirect, which is not followed" in report.answers[0].text


def test_keys_without_an_answer_are_asked_again_while_time_remains() -> None:
    with plain_gateway(fail_every=3) as url:  # every third request: 503
        report = gateway_probe.probe([tokens.generate() for _ in range(40)], [True] * 40, url)
    assert [a.verdict for a in report.answers] == [Verdict.REFUSED] * 40


@pytest.mark.parametrize("status", [503, 429])
def test_a_gateway_that_never_answers_a_verdict_is_asked_three_rounds(status: int) -> None:
    """Not flooded either (a rate limit): a pause between rounds, and no fourth round."""
    seen: list[int] = []
    with plain_gateway(status=status, seen=seen) as url:
        started = time.monotonic()
        report = gateway_probe.probe([tokens.generate() for _ in range(20)], [True] * 20, url)
        elapsed = time.monotonic() - started
    assert [a.verdict for a in report.answers] == [Verdict.NO_ANSWER] * 20
    assert len(seen) == 3 * 21  # each key and the made-up one, in three rounds
    assert elapsed < 0.5 + 1 + 1.5  # the two pauses, and the calls
    assert report.worth_asking_again


def test_keys_still_accepted_cost_the_cache_window_once_not_each() -> None:
    """Keys that should be refused but are let in are asked again for RETRY_FOR (4 s)
    from the start of the check, in case the gateway's cache still holds them: not for
    4 s each. 40 of them, at 8 at a time, would be 20 s, and the keys after them would
    never be asked."""
    working = [service.create_key(actor="t").secret for _ in range(40)]
    dead = [service.create_key(actor="t") for _ in range(40)]
    for key in dead:
        service.disable_key(actor="t", public_id=key.api_key.public_id)
    keys = working + [key.secret for key in dead]
    with stand_in_gateway(database_url()) as gateway:
        report = gateway_probe.probe(keys, [True] * 80, gateway.url)
    verdicts = [a.verdict for a in report.answers]
    assert verdicts == [Verdict.ACCEPTED] * 40 + [Verdict.REFUSED] * 40, verdicts
    assert report.still_accepted == 40
    assert report.seconds < gateway_probe.RETRY_FOR + 3


def test_a_short_outage_is_waited_out_between_rounds() -> None:
    with plain_gateway(down_for=0.3) as url:  # a restart: 503 for 0.3 s
        report = gateway_probe.probe([tokens.generate() for _ in range(20)], [True] * 20, url)
    assert [a.verdict for a in report.answers] == [Verdict.REFUSED] * 20, report.answers


def test_the_made_up_key_is_asked_again_too() -> None:
    """Authentication is off: every request gets through, but the first one, the made-up
    key's, meets a 503. Asked once only, it would hide that every key works there."""
    with plain_gateway(status=400, fail_first=1) as url:
        report = gateway_probe.probe([tokens.generate() for _ in range(3)], [True] * 3, url)
    assert report.auth_off and not report.decoy_unanswered


def test_running_out_of_time_keeps_the_reason_the_gateway_gave() -> None:
    with plain_gateway(status=503, delay=0.6) as url:
        report = gateway_probe.probe(
            [tokens.generate() for _ in range(3)], [True] * 3, url, call_timeout=1, budget=1.5
        )
    assert {a.text for a in report.answers} == {"not checked: the gateway answered HTTP 503"}


@pytest.mark.parametrize(
    "body", [b'{"error": "Unauthorized"}', b"<html>Sign in</html>"], ids=["json", "html"]
)
def test_a_401_without_tensorzeros_words_is_no_refusal(body: bytes) -> None:
    """A proxy in front of the gateway that asks for its own sign-in answers 401 to every
    key: counted as refused, every key would look off, whatever the gateway does."""
    with plain_gateway(body=body) as url:
        report = gateway_probe.probe([tokens.generate() for _ in range(3)], [True] * 3, url)
    assert [a.verdict for a in report.answers] == [Verdict.NO_ANSWER] * 3
    assert "without TensorZero's authentication error" in report.answers[0].text
    assert not report.worth_asking_again  # the same again: the URL or the proxy to fix


def test_the_page_does_not_ask_for_another_check_that_cannot_help(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    dead = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=dead.api_key.public_id)
    with plain_gateway(status=302) as url:
        settings.GATEWAY_URL, settings.GATEWAY_URL_SET = url, True
        html = admin_client.post(
            "/api-keys/leaked", {"text": dead.secret, "probe": "on"}
        ).content.decode()
    assert "1 of 1 key not checked</strong>" in html
    assert "a redirect, which is not followed" in html
    assert "Press Find keys again" not in html
    assert _refused_field(html) == ""


def _refused_field(html: str) -> str:
    """The value the next check sends back: the keys refused so far, signed."""
    match = re.search(
        r'<input type="hidden" name="refused" form="leak-form" value="([^"]+)">', html
    )
    return match.group(1) if match else ""


def test_finding_keys_again_goes_on_with_the_keys_left_unchecked(
    admin_client, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(gateway_probe, "WORKERS", 1)  # the made-up key, then each in order
    keys = [service.create_key(actor="t") for _ in range(4)]
    for key in keys:
        service.disable_key(actor="t", public_id=key.api_key.public_id)
    ids = [key.api_key.public_id for key in keys]
    text = " ".join(key.secret for key in keys)
    # The made-up key and two keys get an answer; then the gateway falls silent.
    with stand_in_gateway(database_url(), answers=3) as gateway:
        settings.GATEWAY_URL, settings.GATEWAY_URL_SET = gateway.url, True
        first = admin_client.post("/api-keys/leaked", {"text": text, "probe": "on"}).content
    assert "2 of 4 keys not checked</strong>" in first.decode()
    token = _refused_field(first.decode())
    # Digests and a time, nothing else: neither a key nor its public ID leaves in it.
    carried = signing.loads(token, salt=views.REFUSED_SALT)
    assert sum(len(labels) for labels in carried.values()) == 2
    decoded = json.dumps(carried)
    assert not any(
        k.secret.split("-")[3] in decoded or k.api_key.public_id in decoded for k in keys
    )
    assert not any(key.secret.encode() in first for key in keys)
    with stand_in_gateway(database_url()) as gateway:
        settings.GATEWAY_URL = gateway.url
        second = admin_client.post(
            "/api-keys/leaked", {"text": text, "probe": "on", "refused": token}
        ).content.decode()
    assert gateway.calls[1:] == ids[2:]  # only the two left unchecked were asked
    assert "not checked" not in second
    assert "2 keys that the gateway refused in the check before were not asked again" in second
    assert second.count("refused by the gateway in the check at") == 2
    assert second.count("refused by the gateway (401: API key was disabled") == 2
    assert _refused_field(second) == ""  # all answered: the next check asks every key again


def _carry(secret: str, at: datetime) -> str:
    """A token as the page signs it, naming this key as it is here, refused at `at`."""
    (found,) = leaks.classify(leaks.extract(secret))
    label = views._carry_label(found)
    return signing.dumps({at.isoformat(): [label]}, salt=views.REFUSED_SALT, compress=True)


def test_a_key_carried_as_refused_is_asked_again_when_it_works_here(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    live = service.create_key(actor="t")
    now = timezone.now()
    with stand_in_gateway(database_url()) as gateway:
        settings.GATEWAY_URL, settings.GATEWAY_URL_SET = gateway.url, True
        pages = [
            admin_client.post(
                "/api-keys/leaked", {"text": live.secret, "probe": "on", "refused": token}
            ).content.decode()
            for token in (
                _carry(live.secret, now),  # active here
                _carry(live.secret, now)[:-2] + "xx",  # altered
            )
        ]
    assert gateway.calls.count(live.api_key.public_id) == 2
    for html in pages:
        assert "accepted by the gateway (HTTP 400): it works there" in html
        assert "not asked again" not in html


def test_a_mistyped_copys_refusal_does_not_stand_for_the_key(
    admin_client, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A copy of a key with another secret is refused whatever the key itself is. The
    key, disabled here, is still let in by a gateway whose cache says it works: the check
    after the one that saw the copy refused must ask the key, and say so loudly. Nor does
    one copy's refusal stand for another copy's."""
    monkeypatch.setattr(gateway_probe, "WORKERS", 1)  # the made-up key, then each in order
    key = service.create_key(actor="t")
    public_id = key.api_key.public_id
    copy, other_copy = (f"sk-t0-{public_id}-{letter * 48}" for letter in "QR")
    other = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=other.api_key.public_id)
    with (
        stand_in_gateway(database_url(), ttl_ms=60_000) as caching,
        stand_in_gateway(database_url(), answers=2) as failing,
    ):
        settings.GATEWAY_URL_SET = True
        # The caching gateway sees the key work, and keeps that for a minute.
        assert gateway_probe.probe([key.secret], [False], caching.url).answers[0].status == 400
        service.disable_key(actor="t", public_id=public_id)
        settings.GATEWAY_URL = failing.url  # the made-up key and the copy; then silence
        first = admin_client.post(
            "/api-keys/leaked", {"text": f"{copy} {other.secret} {other_copy}", "probe": "on"}
        ).content.decode()
        assert "2 of 3 keys not checked" in first
        settings.GATEWAY_URL = caching.url
        html = admin_client.post(
            "/api-keys/leaked",
            {
                "text": f"{copy} {key.secret} {other_copy}",
                "probe": "on",
                "refused": _refused_field(first),
            },
        ).content.decode()
    copy_cell, key_cell, other_copy_cell = re.findall(
        r'<td class="gateway[^"]*">([^<]*)</td>', html
    )
    assert copy_cell.startswith("refused by the gateway in the check at ")
    assert key_cell.startswith("STILL ACCEPTED by the gateway")
    assert other_copy_cell.startswith("refused by the gateway (401: ")  # asked, not carried
    assert "1 key STILL ACCEPTED by the gateway" in html
    assert "1 key that the gateway refused in the check before was not asked again" in html


def test_a_refusal_older_than_an_hour_is_not_carried(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    dead = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=dead.api_key.public_id)
    two_hours_ago = timezone.now() - timedelta(hours=2)
    with stand_in_gateway(database_url()) as gateway:
        settings.GATEWAY_URL, settings.GATEWAY_URL_SET = gateway.url, True
        html = admin_client.post(
            "/api-keys/leaked",
            {
                "text": dead.secret,
                "probe": "on",
                "refused": _carry(dead.secret, two_hours_ago),
            },
        ).content.decode()
    assert dead.api_key.public_id in gateway.calls
    assert "not asked again" not in html


def full_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listener whose backlog is full: a connect to it waits until its timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    return listener, fillers


def timed_probe(url: str, call_timeout: float, keys: int = 1) -> gateway_probe.Report:
    """Probe `url` about made-up keys; the check must end within one call timeout, with
    no verdict."""
    started = time.monotonic()
    report = gateway_probe.probe(
        [tokens.generate() for _ in range(keys)], [True] * keys, url,
        call_timeout=call_timeout, budget=3,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert elapsed < call_timeout + 0.5, (elapsed, report)
    assert {a.verdict for a in report.answers} <= {Verdict.NO_ANSWER, Verdict.NOT_CHECKED}
    return report


def test_a_host_with_two_silent_addresses_costs_one_call_timeout(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    listener, fillers = full_listener()
    port = listener.getsockname()[1]
    address = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))
    real = socket.getaddrinfo
    # A name with two addresses (a record per replica), neither answering.
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: [address, address] if host == "gateway" else real(host, *a, **k),
    )
    try:
        # http.client's connect gives each address the whole timeout: 2 s here.
        timed_probe(f"http://gateway:{port}", call_timeout=1.0)
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_a_silent_first_address_leaves_time_for_the_next(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    listener, fillers = full_listener()
    silent = (socket.AF_INET, socket.SOCK_STREAM, 6, "", listener.getsockname())
    real = socket.getaddrinfo
    try:
        with stand_in_gateway(database_url()) as gateway:
            port = int(gateway.url.rsplit(":", 1)[1])
            answering = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))
            monkeypatch.setattr(
                socket,
                "getaddrinfo",
                lambda host, *a, **k: (
                    [silent, answering] if host == "gateway" else real(host, *a, **k)
                ),
            )
            report = gateway_probe.probe(
                [tokens.generate()], [True], f"http://gateway:{port}", call_timeout=2.0
            )
    finally:
        for sock in [*fillers, listener]:
            sock.close()
    # The silent one is given a second of the two, the next one the rest.
    assert report.answers[0].verdict is Verdict.REFUSED, report


def test_a_slow_connect_then_a_silent_tls_handshake_cost_one_call_timeout() -> None:
    # The first SYN to a full backlog is dropped and sent again after 1 s, by when there
    # is room; then the server never answers the ClientHello. Each step alone is within
    # the socket timeout.
    listener, fillers = full_listener()
    port = listener.getsockname()[1]
    held: list[socket.socket] = []

    def make_room() -> None:
        time.sleep(0.5)
        held.append(listener.accept()[0])

    threading.Thread(target=make_room, daemon=True).start()
    try:
        timed_probe(f"https://127.0.0.1:{port}", call_timeout=1.5)
    finally:
        for sock in [*fillers, *held, listener]:
            sock.close()


def test_a_resolver_that_hangs_costs_one_call_timeout(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = socket.getaddrinfo
    release = threading.Event()

    def hanging(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "gateway":
            release.wait(30)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        report = timed_probe("http://gateway:3000", call_timeout=1.0, keys=4)
    finally:
        release.set()
    assert any("did not answer within 1 s" in a.text for a in report.answers)


def test_a_gateway_host_name_that_cannot_be_looked_up_is_an_error_not_a_crash() -> None:
    # A 64-character label: the resolver's IDNA encoding raises UnicodeError.
    report = gateway_probe.probe([tokens.generate()], [True], f"http://{'a' * 64}.example:3000")
    assert "cannot be used" in report.error


class FarSocket:
    """A socket to a host 0.6 s away: a connect takes one round trip."""

    ROUND_TRIP = 0.6

    def __init__(self, *args: object) -> None:
        self.timeout: float | None = None

    def settimeout(self, value: float) -> None:
        self.timeout = value

    def connect(self, address: object) -> None:
        if self.timeout is not None and self.timeout < self.ROUND_TRIP:
            time.sleep(self.timeout)
            raise TimeoutError("timed out")
        time.sleep(self.ROUND_TRIP)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("addresses", [1, 2, 8])
def test_a_far_gateway_behind_several_addresses_is_reached(monkeypatch, addresses: int) -> None:  # type: ignore[no-untyped-def]
    # A load balancer's name (up to 8 A and AAAA records), each answering in 0.6 s: an
    # equal share of 2 s would give each 0.25 s, and none would ever connect.
    gateway = gateway_probe._Gateway("http://gateway:3000", call_timeout=2.0)
    record = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 3000))
    gateway._addresses = [record] * addresses
    monkeypatch.setattr(gateway_probe.socket, "socket", FarSocket)
    deadline = gateway_probe._CallDeadline(2.0)
    try:
        assert isinstance(gateway._connect(deadline), FarSocket)
    finally:
        deadline.finish()
