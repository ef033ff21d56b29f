"""Configuration from the environment: clear refusals instead of tracebacks."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT, manage_env


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    full = manage_env("postgresql://nobody@127.0.0.1:1/none")
    full.pop("DJANGO_SECRET_KEY")
    full.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_external_database_without_secret_key_is_refused_in_one_line() -> None:
    result = run_check()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "t0admin: DJANGO_SECRET_KEY must be set when TENSORZERO_POSTGRES_URL is set and "
        "DJANGO_DEBUG is off."
    ]


def test_external_database_with_secret_key_starts() -> None:
    result = run_check(DJANGO_SECRET_KEY="s" * 50)
    assert result.returncode == 0, result.stderr


def test_malformed_flag_is_refused_with_its_name() -> None:
    result = run_check(DJANGO_SECRET_KEY="s" * 50, TENSORZERO_UI_READ_ONLY="maybe")
    assert result.returncode != 0
    assert "TENSORZERO_UI_READ_ONLY must be 1 or 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_embedded_secret_key_is_generated_once_and_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from t0admin import embedded

    first = embedded.secret_key(tmp_path)
    assert len(first) >= 50
    assert embedded.secret_key(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_ui_url_and_usage_settings_are_checked() -> None:
    bad_url = run_check(DJANGO_SECRET_KEY="s" * 50, TENSORZERO_UI_URL="javascript:alert(1)")
    assert bad_url.returncode != 0
    assert "TENSORZERO_UI_URL must be an http(s) URL" in bad_url.stderr
    bad_age = run_check(DJANGO_SECRET_KEY="s" * 50, T0ADMIN_USAGE_MAX_AGE_SECONDS="soon")
    assert "T0ADMIN_USAGE_MAX_AGE_SECONDS must be a whole number above 0" in bad_age.stderr
    assert "Traceback" not in bad_url.stderr + bad_age.stderr
