"""/healthz answers while the process lives; /readyz only when the database is usable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.db import connection
from django.test import Client

from tests.conftest import ROOT, manage_env


def test_healthz_answers_json_without_database(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ready_when_schema_verified(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_with_reason_when_table_lacks_expires_at(client: Client) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE public.tensorzero_auth_api_key RENAME COLUMN expires_at TO x")
    try:
        response = client.get("/readyz")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE public.tensorzero_auth_api_key RENAME COLUMN x TO expires_at"
            )
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "--run-postgres-migrations" in response.json()["reason"]


def without_database(script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` with Django set up against a PostgreSQL that does not answer."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + script],
        cwd=ROOT,
        env=manage_env(
            "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2",
            DJANGO_SETTINGS_MODULE="t0admin.settings",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_readyz_is_503_when_database_unreachable() -> None:
    result = without_database(
        "import json; from django.test import Client; "
        "r = Client(HTTP_HOST='localhost').get('/readyz'); print(r.status_code, json.dumps(r.json()))"
    )
    status, _, body = result.stdout.strip().partition(" ")
    assert status == "503", result.stderr
    assert json.loads(body)["reason"].startswith("database unreachable")


def test_pages_answer_503_with_a_clear_page_when_database_unreachable() -> None:
    result = without_database(
        "from django.test import Client; "
        "c = Client(HTTP_HOST='localhost', raise_request_exception=False); "
        # A session cookie makes the session middleware go to the database first.
        "c.cookies['sessionid'] = 'x' * 32; r = c.get('/api-keys'); "
        "print(r.status_code); print(r.content.decode())"
    )
    status, _, body = result.stdout.partition("\n")
    assert status == "503", result.stderr
    assert "The database cannot be reached" in body
    assert "Traceback" not in body


def test_probes_by_address_pass_whatever_the_allowed_hosts(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ALLOWED_HOSTS = ["keys.example.com"]
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:4000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    # Everything else still checks the host.
    assert client.get("/api-keys", HTTP_HOST="10.1.2.3:4000").status_code == 400


def test_readyz_does_not_tell_strangers_where_the_database_is() -> None:
    result = without_database(
        "from django.test import Client; "
        "print(Client(HTTP_HOST='localhost').get('/readyz').content.decode())"
    )
    assert "127.0.0.1" not in result.stdout and "port" not in result.stdout
    assert "database unreachable" in result.stdout


def test_health_answers_carry_the_security_headers(client: Client) -> None:
    response = client.get("/healthz")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "script-src 'self'" in response["Content-Security-Policy"]
