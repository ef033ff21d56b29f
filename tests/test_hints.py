"""Start messages name the command that works where they are read."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from t0admin import hints
from tests.conftest import ROOT


@pytest.fixture
def in_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run`: the checkout's venv python, a PATH without it, run from the checkout."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "executable", str(ROOT / ".venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("T0ADMIN_CONTAINER", raising=False)


@pytest.mark.usefixtures("in_checkout")
def test_make_run_names_the_checkouts_venv() -> None:
    assert hints.manage_py() == ".venv/bin/python manage.py"
    assert hints.stop_hint() == "press Ctrl-C"
    assert hints.where_served("127.0.0.1:4000") == "http://localhost:4000/api-keys"


def test_the_image_names_python_on_path_through_docker_exec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the Dockerfile sets it up: /venv/bin first on PATH, /app the working folder."""
    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(venv_python))
    monkeypatch.setenv("PATH", f"{venv_python.parent}{os.pathsep}/usr/bin")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("T0ADMIN_CONTAINER", "1")
    assert hints.manage_py() == "docker exec -it CONTAINER python manage.py"
    assert hints.stop_hint() == "docker stop CONTAINER"
    assert "port 4000 of the container" in hints.where_served("0.0.0.0:4000")


def test_started_from_another_folder_gets_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_checkout: None
) -> None:
    monkeypatch.chdir(tmp_path)
    assert hints.manage_py() == f"{ROOT}/.venv/bin/python {ROOT}/manage.py"
