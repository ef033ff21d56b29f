"""`make run` and the Docker image: prepare the database, then serve with gunicorn.

With TENSORZERO_POSTGRES_URL unset, an embedded PostgreSQL is started in the data dir
first and stopped after gunicorn, on Ctrl-C or SIGTERM alike. A run killed outright
(kill -9) takes gunicorn with it (Linux); whatever it still leaves, the next run finds
through the pid files in the data dir (t0admin.leftovers) and stops or reuses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from types import FrameType
from typing import Any

from t0admin import embedded, hints, leftovers


def _prepare(env: dict[str, str]) -> None:
    """Migrate (which creates or verifies the gateway's table) in this process."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "t0admin.settings")
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("ensure_first_admin")
    connections.close_all()


def gunicorn_command(*extra: str) -> list[str]:
    """Gunicorn with t0admin's one configuration (t0admin/gunicorn_conf.py)."""
    return [sys.executable, "-m", "gunicorn", "-c", "python:t0admin.gunicorn_conf", *extra]


# SIGHUP too: closing the terminal that runs `make run` must stop PostgreSQL as well.
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _ignore_stop_signals() -> None:
    """Once stopping, more Ctrl-C must not cut the stop short (and leave PostgreSQL)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def main() -> int:
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import CommandError

    bind = os.environ.get("T0ADMIN_BIND", "").strip() or "127.0.0.1:4000"
    data = embedded.data_dir()
    # Made here, at start-up (the settings only name it). Where it cannot be made, the
    # embedded PostgreSQL says so if it is needed; an external database needs no data dir.
    with contextlib.suppress(OSError):
        data.mkdir(parents=True, exist_ok=True)
    running = leftovers.owner(data / leftovers.SERVE_PID)
    if running is not None:
        print(
            f"t0admin: another t0admin (pid {running.pid}) is serving from {data}; stop it "
            f"first (kill {running.pid}), or give this one another T0ADMIN_DATA_DIR",
            file=sys.stderr,
        )
        return 2
    # Pid files let the next run find what a run killed outright (kill -9) left behind.
    # A read-only data dir (an image with an external database) simply goes without.
    pid_files = os.access(data, os.W_OK)
    if pid_files:
        leftovers.write_pid(data / leftovers.SERVE_PID)
    env = dict(os.environ)
    server: Any = None
    gunicorn: subprocess.Popen[bytes] | None = None
    # Both, explicitly: a shell that starts us in the background leaves SIGINT ignored,
    # and Docker stops containers with SIGTERM.
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupt)
    try:
        stale = leftovers.owner(data / leftovers.GUNICORN_PID)
        if stale is not None:
            print(
                f"t0admin: stopping gunicorn (pid {stale.pid}) left by an earlier run", flush=True
            )
            leftovers.stop(stale)
        if not env.get("TENSORZERO_POSTGRES_URL", "").strip():
            print(f"t0admin: starting the embedded PostgreSQL in {data / 'postgres'}", flush=True)
            # Held back while the server starts, so that `server` is set whenever a stop
            # arrives and the finally below can stop what was started.
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                server = embedded.start(data)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            env["TENSORZERO_POSTGRES_URL"] = embedded.url(server)
            if not env.get("DJANGO_SECRET_KEY"):
                env["DJANGO_SECRET_KEY"] = embedded.secret_key(data)
        try:
            _prepare(env)
        except (ImproperlyConfigured, CommandError) as error:
            # A start-up failure the user can fix deserves one clear line.
            print(f"t0admin: {error}", file=sys.stderr)
            return 2
        problem = leftovers.port_problem(bind)
        if problem is not None:
            print(f"t0admin: {problem}", file=sys.stderr)
            return 2
        print(
            f"t0admin: serving {hints.where_served(bind)}\n"
            f"t0admin: data in {data}"
            + (" (embedded PostgreSQL)" if server is not None else "")
            + "\nt0admin: sign in with your t0admin user; to reset a password: "
            f"{hints.manage_py()} changepassword USER\nt0admin: {hints.stop_hint()} to stop",
            flush=True,
        )
        pid_file = ["--pid", str(data / leftovers.GUNICORN_PID)] if pid_files else []
        gunicorn = subprocess.Popen(  # noqa: S603
            gunicorn_command(*pid_file),
            env=env,
            preexec_fn=leftovers.die_with_parent(),  # noqa: PLW1509  no threads here yet
        )
        return gunicorn.wait()
    except KeyboardInterrupt:
        _ignore_stop_signals()
        print("\nt0admin: stopping", flush=True)
        if gunicorn is not None and gunicorn.poll() is None:
            gunicorn.send_signal(signal.SIGTERM)
            try:
                gunicorn.wait(timeout=20)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
                gunicorn.wait()
        return 0
    finally:
        _ignore_stop_signals()
        if server is not None:
            embedded.stop(server)
            print("t0admin: embedded PostgreSQL stopped", flush=True)
        leftovers.remove_pid(data / leftovers.SERVE_PID)


if __name__ == "__main__":
    sys.exit(main())
