"""The Dockerfile's own commands, run directly: quick, in every `make test`.

tests/test_image.py builds and runs the image itself (in CI, or when asked).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, free_port

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instruction(name: str, containing: str) -> str:
    """The text of the first Dockerfile instruction NAME that mentions CONTAINING."""
    joined = DOCKERFILE.replace("\\\n", " ")
    for line in joined.splitlines():
        if line.startswith(name + " ") and containing in line:
            return line[len(name) + 1 :].strip()
    raise AssertionError(f"no {name} with {containing!r} in the Dockerfile")


def test_collectstatic_as_the_image_builds_it(tmp_path: Path) -> None:
    command = instruction("RUN", "collectstatic")
    command = command.replace("/app/staticfiles", str(tmp_path / "static"))
    command = command.replace("/venv/bin/python", shlex.quote(sys.executable))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENSORZERO_", "DJANGO_"))}
    # The image's data dir is /data, a volume: the build must leave no folder for it.
    env["T0ADMIN_DATA_DIR"] = str(tmp_path / "data")
    # The RUN line is shell syntax (VAR=value prefixes): run it as Docker does.
    result = subprocess.run(  # noqa: S602
        command,
        shell=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data").exists()
    collected = tmp_path / "static"
    manifest = json.loads((collected / "staticfiles.json").read_text())["paths"]
    for name in ["vendor/htmx.min.js", "css/t0admin.css", "admin/css/base.css"]:
        hashed = collected / manifest[name]
        assert hashed.name != Path(name).name
        # whitenoise compressed it both ways (brotli because it is installed)
        for compressed in (hashed.name + ".gz", hashed.name + ".br"):
            assert (hashed.parent / compressed).is_file(), compressed


def test_image_runs_as_non_root_and_serves_on_port_4000() -> None:
    assert re.search(r"^USER t0admin$", DOCKERFILE, re.M)
    assert "T0ADMIN_BIND=0.0.0.0:4000" in DOCKERFILE
    assert json.loads(instruction("CMD", "t0admin.serve")) == ["python", "-m", "t0admin.serve"]


def healthcheck_argv() -> list[str]:
    text = instruction("HEALTHCHECK", "healthz")
    return list(json.loads(text[text.index("CMD") + 3 :].strip()))


def run_healthcheck(port: int) -> int:
    argv = healthcheck_argv()
    argv[0] = sys.executable
    argv[-1] = argv[-1].replace("127.0.0.1:4000", f"127.0.0.1:{port}")
    return subprocess.run(argv, capture_output=True, timeout=10).returncode


def test_healthcheck_passes_against_a_running_gunicorn() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "t0admin.wsgi:application"]
        + ["--bind", f"127.0.0.1:{port}", "--no-control-socket"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SECRET_KEY": "x" * 50,
            "TENSORZERO_POSTGRES_URL": "postgresql://unused@127.0.0.1:1/unused",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while (code := run_healthcheck(port)) != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(10)
    assert code == 0


def test_healthcheck_fails_when_nothing_answers() -> None:
    assert run_healthcheck(free_port()) != 0
