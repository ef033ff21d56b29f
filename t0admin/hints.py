"""Start messages name commands the reader can paste where they read them.

`make run` prints to the terminal of a checkout; the image prints to `docker logs`, read
outside the container, where the venv is /venv on PATH and the command needs docker exec.
Nothing here imports Django: `t0admin.serve` prints before Django is configured.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"


def in_container() -> bool:
    # Set by the Dockerfile. Marker files (/.dockerenv, /run/.containerenv) would not do:
    # some hosts are themselves built from images and carry them (this one does).
    return os.environ.get("T0ADMIN_CONTAINER") == "1"


def manage_py() -> str:
    """How the reader runs manage.py with the interpreter serving them."""
    python = sys.executable
    if shutil.which("python") == python:
        # The image's /venv (on PATH), or a venv the reader has activated.
        command = f"python {_relative(MANAGE_PY)}"
    else:
        command = f"{_relative(Path(python))} {_relative(MANAGE_PY)}"
    if in_container():
        return f"docker exec -it CONTAINER {command}"
    return command


def where_served(bind: str) -> str:
    host, _, port = bind.rpartition(":")
    if in_container():
        # Only the container's port is known here, not the one published for it.
        return f"/api-keys on port {port} of the container (publish it: -p 127.0.0.1:{port}:{port})"
    shown = "localhost" if host in {"127.0.0.1", "0.0.0.0", "[::]", "[::1]", ""} else host  # noqa: S104
    return f"http://{shown}:{port}/api-keys"


def stop_hint() -> str:
    return "docker stop CONTAINER" if in_container() else "press Ctrl-C"


def _relative(path: Path) -> str:
    """Short from the current folder (a checkout's `.venv/bin/python`), else absolute."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else relative
