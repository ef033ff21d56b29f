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

from t0admin import embedded


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


def main() -> int:
    from django.core.exceptions import ImproperlyConfigured

    bind = os.environ.get("T0ADMIN_BIND", "").strip() or "127.0.0.1:4000"
    data = embedded.data_dir()
    env = dict(os.environ)
    server: Any = None
    if not env.get("TENSORZERO_POSTGRES_URL", "").strip():
        print(f"t0admin: starting the embedded PostgreSQL in {data / 'postgres'}", flush=True)
        server = embedded.start(data)
        env["TENSORZERO_POSTGRES_URL"] = embedded.url(server)
        if not env.get("DJANGO_SECRET_KEY"):
            env["DJANGO_SECRET_KEY"] = embedded.secret_key(data)

    align_gunicorn_trust(env)
    gunicorn: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Both, explicitly: a shell that starts us in the background leaves SIGINT ignored,
    # and Docker stops containers with SIGTERM.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        try:
            _prepare(env)
        except ImproperlyConfigured as error:
            print(f"t0admin: {error}", file=sys.stderr)
            return 2
        except Exception as error:  # noqa: BLE001  a start-up failure deserves one clear line
            from django.core.management import CommandError

            if isinstance(error, CommandError):
                print(f"t0admin: {error}", file=sys.stderr)
                return 2
            raise
        host, _, port = bind.rpartition(":")
        shown = "localhost" if host in {"127.0.0.1", "0.0.0.0", "[::]", "[::1]", ""} else host  # noqa: S104
        print(
            f"t0admin: serving http://{shown}:{port}/api-keys\n"
            f"t0admin: data in {data}"
            + (" (embedded PostgreSQL)" if server is not None else "")
            + "\nt0admin: sign in with your t0admin user; to reset a password: "
            ".venv/bin/python manage.py changepassword USER" + "\nt0admin: press Ctrl-C to stop",
            flush=True,
        )
        gunicorn = subprocess.Popen(_gunicorn_command(bind), env=env)  # noqa: S603
        return gunicorn.wait()
    except KeyboardInterrupt:
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
        if server is not None:
            embedded.stop(server)
            print("t0admin: embedded PostgreSQL stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
