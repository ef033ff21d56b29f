"""What an earlier `make run` may have left behind, found through pid files in the data
dir (never by process name), and what holds a port when something does.

No Django here: `t0admin.serve` uses it before Django is configured.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

# A pid file written by `make run` itself, one written by gunicorn (--pid).
SERVE_PID = "serve.pid"
GUNICORN_PID = "gunicorn.pid"


def owner(pidfile: Path) -> psutil.Process | None:
    """The live process that wrote `pidfile`, or None.

    A pid is reused once its process is gone: a process counts only if it started
    before the file was last written, which the one that wrote it did.
    """
    try:
        pid = int(pidfile.read_text().split()[0])
        written = pidfile.stat().st_mtime
        process = psutil.Process(pid)
        started = process.create_time()
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    if pid == os.getpid() or started > written + 1 or not _running(process):
        return None
    return process


def write_pid(pidfile: Path) -> None:
    pidfile.write_text(f"{os.getpid()}\n")


def remove_pid(pidfile: Path) -> None:
    """Remove `pidfile` if this process wrote it."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        if int(pidfile.read_text().split()[0]) == os.getpid():
            pidfile.unlink()


def stop(process: psutil.Process, timeout: float = 20) -> None:
    """SIGTERM (gunicorn finishes its requests), then SIGKILL if it will not go."""
    for send, wait in ((process.terminate, timeout), (process.kill, 5.0)):
        with contextlib.suppress(psutil.NoSuchProcess):
            send()
        deadline = time.monotonic() + wait
        while _running(process) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _running(process):
            return


def _running(process: psutil.Process) -> bool:
    # A zombie has ended; whoever started it has yet to collect its exit status.
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def port_problem(bind: str) -> str | None:
    """Why gunicorn could not listen on `bind` (host:port), naming the holder; or None."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104  gunicorn's reading of ":4000"
    if not port.isdigit():
        return None  # a Unix socket, or a form gunicorn will judge itself
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As gunicorn binds: a port in TIME_WAIT after a clean stop is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return f"cannot listen on {bind}: {error.strerror}"
        else:
            return None
    return (
        f"{bind} is in use by {holder(int(port))}; stop it, or set T0ADMIN_BIND to another address"
    )


def holder(port: int) -> str:
    """The process listening on `port`, in words."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    break
                with contextlib.suppress(psutil.Error):
                    command = " ".join(psutil.Process(conn.pid).cmdline())
                    return f"pid {conn.pid} ({command[:200]})"
                return f"pid {conn.pid}"
    return "a process this user cannot see (another user's, or in another container)"


def die_with_parent() -> Callable[[], None]:
    """A preexec_fn: on Linux the child gets SIGTERM when this process dies, even by
    SIGKILL, so that gunicorn never outlives `make run`. Elsewhere it does nothing, and
    the next run finds the leftover through its pid file instead."""
    parent = os.getpid()

    def arrange() -> None:
        if sys.platform != "linux":
            return
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange
