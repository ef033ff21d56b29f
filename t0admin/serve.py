"""`make run` and the Docker image: prepare the database, then serve with gunicorn.

With TENSORZERO_POSTGRES_URL unset, an embedded PostgreSQL is started in the data dir
first and stopped after gunicorn, on Ctrl-C or SIGTERM alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType
from typing import Any

from t0admin import embedded, hints


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


def align_gunicorn_trust(env: dict[str, str]) -> None:
    """Gunicorn sets the https scheme from X-Forwarded-Proto on its own, for the addresses
    in FORWARDED_ALLOW_IPS: make those the proxies t0admin trusts, and no others."""
    trusted = env.get("T0ADMIN_TRUSTED_PROXIES", "").strip() or "127.0.0.0/8,::1"
    env["FORWARDED_ALLOW_IPS"] = trusted


def _gunicorn_command(bind: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "t0admin.wsgi:application",
        "--bind",
        bind,
        "--workers",
        os.environ.get("T0ADMIN_WORKERS", "2"),
        "--threads",
        os.environ.get("T0ADMIN_THREADS", "4"),
        "--access-logfile",
        "-",
        "--graceful-timeout",
        "10",
        # Several t0admin servers may run on one machine (tests, staging): a shared
        # control socket in $HOME would collide, and nothing here uses it.
        "--no-control-socket",
    ]


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
    env = dict(os.environ)
    server: Any = None
    gunicorn: subprocess.Popen[bytes] | None = None
    # Both, explicitly: a shell that starts us in the background leaves SIGINT ignored,
    # and Docker stops containers with SIGTERM.
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupt)
    try:
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
        align_gunicorn_trust(env)
        try:
            _prepare(env)
        except (ImproperlyConfigured, CommandError) as error:
            # A start-up failure the user can fix deserves one clear line.
            print(f"t0admin: {error}", file=sys.stderr)
            return 2
        print(
            f"t0admin: serving {hints.where_served(bind)}\n"
            f"t0admin: data in {data}"
            + (" (embedded PostgreSQL)" if server is not None else "")
            + "\nt0admin: sign in with your t0admin user; to reset a password: "
            f"{hints.manage_py()} changepassword USER\nt0admin: {hints.stop_hint()} to stop",
            flush=True,
        )
        gunicorn = subprocess.Popen(_gunicorn_command(bind), env=env)  # noqa: S603
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


if __name__ == "__main__":
    sys.exit(main())
