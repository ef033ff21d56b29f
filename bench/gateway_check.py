"""How many keys the leak page's gateway check reaches, and in how many checks.

A stand-in gateway runs in a process of its own (so that it does not share the client's
interpreter lock) and answers every `POST /inference` with the gateway's 401. It plays a
gateway a round trip away: each request waits one round trip before its answer, and each
new connection one more (TCP), and one more again under TLS (the TLS 1.3 handshake). It
writes each answer in one piece, as the gateway's HTTP server does. The check is keys.gateway_probe.probe, as the page
calls it (8 calls at a time, at most 2 s a call and 12 s in all); "checks to reach all"
repeats it as "Find keys again" does: the keys refused so far are not asked again.

"Closes each connection" makes the stand-in end every connection after one answer: each
call then pays a connect (and under TLS a handshake), which is what every call cost
before the checker kept its connections (2026-12-03).

    python bench/gateway_check.py [--keys 2000]

No database: the stand-in refuses every key, as the gateway refuses disabled ones. The
figures replace this script's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from paging import machine_basics  # noqa: E402  bench/ is this script's directory
from results import write_section  # noqa: E402

SERVER = r"""
import json, ssl, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

rtt, close, cert = float(sys.argv[1]), sys.argv[2] == "close", sys.argv[3]
body = json.dumps({"error": "TensorZero authentication error: API key was disabled"}).encode()
context = None
if cert:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # the head and the body leave in one write

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(rtt)  # the request's round trip
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def finish_request(self, request, client_address):
        # In the connection's own thread: a new connection costs a round trip (TCP),
        # and one more for the TLS 1.3 handshake.
        time.sleep(rtt)
        if context is not None:
            request = context.wrap_socket(request, server_side=True)
            time.sleep(rtt)
        super().finish_request(request, client_address)


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def certificate(directory: str) -> str:
    """A self-signed certificate for 127.0.0.1 (key and certificate in one file)."""
    path = os.path.join(directory, "gateway.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", path, "-out", path + ".crt"],
        check=True, capture_output=True,
    )  # fmt: skip
    with open(path, "a", encoding="ascii") as pem, open(path + ".crt", encoding="ascii") as crt:
        pem.write(crt.read())
    return path


def run_checks(url: str, keys: list[str]) -> tuple[int, float, int, float]:
    """First check: refused, seconds. Then checks until every key is refused, and their
    total seconds (at most 10 checks)."""
    from keys import gateway_probe

    left = keys
    first_refused, first_seconds, checks, total = 0, 0.0, 0, 0.0
    while left and checks < 10:
        report = gateway_probe.probe(left, [True] * len(left), url)
        refused = [a.verdict is gateway_probe.Verdict.REFUSED for a in report.answers]
        if not checks:
            first_refused, first_seconds = sum(refused), report.seconds
        checks += 1
        total += report.seconds
        left = [key for key, done in zip(left, refused, strict=True) if not done]
    return first_refused, first_seconds, checks if not left else -checks, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    from keys import tokens

    keys = [tokens.generate() for _ in range(args.keys)]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        cert = certificate(directory)
        os.environ["SSL_CERT_FILE"] = cert + ".crt"  # ssl.create_default_context trusts it
        for scheme in ("http", "https"):
            for delay in (0.0, 0.01, 0.05):
                for mode in ("keep", "close"):
                    log(f"{scheme}, round trip {delay * 1000:g} ms, {mode}")
                    server = subprocess.Popen(
                        [sys.executable, "-c", SERVER, str(delay), mode,
                         cert if scheme == "https" else ""],
                        stdout=subprocess.PIPE, text=True,
                    )  # fmt: skip
                    try:
                        assert server.stdout is not None
                        port = int(server.stdout.readline())
                        first, seconds, checks, total = run_checks(
                            f"{scheme}://127.0.0.1:{port}", keys
                        )
                    finally:
                        server.terminate()
                        server.wait(10)
                    rows.append((scheme, delay, mode, first, seconds, checks, total))
    info = machine_basics()
    lines = [
        "# Gateway check benchmark (`bench/gateway_check.py`)",
        "",
        f"{args.keys:,} keys, every one refused by a local stand-in gateway (see the "
        "script's docstring); one check is what the leak page runs (12 s at most).",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "| gateway | round trip | connections | refused in the first check | its s "
        "| checks to reach all | their s |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for scheme, delay, mode, first, seconds, checks, total in rows:
        kept = "kept open" if mode == "keep" else "closed after each answer"
        reach = str(checks) if checks > 0 else f"not in {-checks}"
        lines.append(
            f"| {scheme} | {delay * 1000:g} ms | {kept} | {first:,} | {seconds:.1f} "
            f"| {reach} | {total:.1f} |"
        )
    lines += [
        "",
        "Reading: a gateway one round trip away answers a kept connection in one round trip, "
        "and a new one in two (three under TLS), so keeping the connections open is what "
        "lets one check reach more keys; under TLS the handshake's work counts even at 0 ms. "
        "Before 2026-12-03 every call paid a new connection (the closed rows' first check) "
        "and every check asked the same keys first, so the keys past what one check reached "
        "were never asked; now each Find keys again goes on with the rest.",
    ]
    section = "\n".join(lines)
    write_section(args.results, "bench/gateway_check.py", section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
