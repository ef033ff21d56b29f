"""A PostgreSQL server of the test's own (Debian's postgresql-15), to freeze and thaw.

The shared test server must never be stopped under the other tests; this one lives in a
temporary directory for one test module. As root it runs as the `postgres` user, as
Debian's own clusters do (PostgreSQL refuses to run as root).
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

import psutil
import psycopg

from tests.conftest import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Server:
    directory: Path
    port: int

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def processes(self) -> list[psutil.Process]:
        """The postmaster (from its pid file, never by name) and every process it forked."""
        pid = int((self.directory / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        """SIGSTOP to the whole server: it keeps its sockets, the kernel keeps accepting
        connections and acknowledging bytes, and nothing answers."""
        for process in self.processes():
            process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        for process in self.processes():
            process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def server() -> Iterator[Server]:
    # Not under pytest's tmp_path: its parent is private to root, and postgres must enter.
    directory = Path(tempfile.mkdtemp(prefix="t0admin-pg15-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(directory, user.pw_uid, user.pw_gid)
    data = directory / "data"
    port = free_port()
    subprocess.run(
        _as_postgres([str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    process = subprocess.Popen(
        _as_postgres(
            [
                str(BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(directory),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "log", "wb"),  # noqa: SIM115  closed with the process
    )
    found = Server(data, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (directory / "log").read_text()
            try:
                psycopg.connect(found.url(), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, (directory / "log").read_text()
                time.sleep(0.2)
        yield found
    finally:
        with contextlib.suppress(Exception):
            found.thaw()  # a stopped server ignores the stop request
            # SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave.
            found.processes()[0].send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)
