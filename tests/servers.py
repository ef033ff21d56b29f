"""Real servers for tests: gunicorn serving the test database, and Debian's Chromium.

Both are used by the page tests and the proxy tests; nothing here is a stand-in.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from t0admin.serve import gunicorn_command
from tests.conftest import ROOT, free_port

CHROMIUM = "/usr/bin/chromium"
# Flags this closed network needs: no background connections, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: str

    def output(self) -> str:
        with open(self.log) as handle:
            return handle.read()


def test_database_url() -> str:
    """The database pytest-django created for this run, as a libpq string."""
    from django.conf import settings
    from django.db import connection
    from psycopg.conninfo import make_conninfo

    return make_conninfo(settings.DATABASE_URL, dbname=connection.settings_dict["NAME"])


@contextlib.contextmanager
def gunicorn(
    database_url: str, env: dict[str, str] | None = None, bind_host: str = "127.0.0.1"
) -> Iterator[Server]:
    """A real gunicorn with the real app, on a free loopback port; stopped afterwards."""
    from django.conf import settings

    port = free_port()
    log = f"/tmp/t0admin-gunicorn-{port}.log"  # noqa: S108  one per port, read by the test
    full_env = {
        **os.environ,
        "TENSORZERO_POSTGRES_URL": database_url,
        # The test process's own key, so that sessions it signs are valid there too.
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "T0ADMIN_ALLOWED_HOSTS": "localhost,127.0.0.1",
        **(env or {}),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            gunicorn_command("--bind", f"{bind_host}:{port}"),
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://{bind_host}:{port}", port, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, server.output()
            try:
                with urllib.request.urlopen(server.url + "/healthz", timeout=5):
                    break
            # Refused, unreachable or (on a busy machine) too slow: all OSErrors, all one
            # more try until the deadline.
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(log)


def launch(browser_type: Any, back_forward_cache: bool = False) -> Any:
    """Debian's Chromium from a Playwright browser type; never a downloaded one. Playwright
    turns the back/forward cache off; `back_forward_cache` keeps it on, as a user's
    browser has it."""
    return browser_type.launch(
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-back-forward-cache"] if back_forward_cache else None,
    )


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A Playwright browser on Debian's Chromium. One Playwright per thread: a test that
    needs another browser launches it from this one's (`browser.browser_type`)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls a test makes
    # between browser steps are still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = launch(playwright.chromium)
        try:
            yield browser
        finally:
            browser.close()
