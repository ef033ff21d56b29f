"""The command-line tools, like the gateway's own: for scripts first."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from keys import service
from keys.models import ApiKey, AuditEvent
from tests.conftest import gateway_accepts

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_api_key_prints_only_the_key() -> None:
    output = run("create_api_key", "--description", "ci runner")
    assert output.count("\n") == 1
    key = output.strip()
    assert gateway_accepts(key)
    assert ApiKey.objects.get().description == "ci runner"
    assert AuditEvent.objects.get().actor.startswith("cli")


def test_create_api_key_with_expiration() -> None:
    run("create_api_key", "--expiration", "2031-01-02T03:04:05Z")
    assert ApiKey.objects.get().expires_at.isoformat() == "2031-01-02T03:04:05+00:00"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("expiration", "message"),
    [
        ("2001-01-01T00:00:00Z", "Expiration must be in the future."),
        ("next week", "not an RFC 3339 time"),
        ("2031-01-01T00:00:00", "needs a time zone offset"),
    ],
)
def test_create_api_key_refuses_bad_expiration(expiration: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("create_api_key", "--expiration", expiration)
    assert ApiKey.objects.count() == 0


def test_disable_api_key_now_and_again_both_succeed() -> None:
    public_id = service.create_key(actor="t").api_key.public_id
    assert f"Disabled API key {public_id}." in run("disable_api_key", public_id)
    assert "already disabled" in run("disable_api_key", public_id)


def test_disable_api_key_unknown_fails_with_a_message() -> None:
    with pytest.raises(CommandError, match="No API key has the public ID"):
        run("disable_api_key", "nosuchkey123")


def test_list_api_keys_json() -> None:
    created = service.create_key(actor="t", description="one")
    service.disable_key(actor="t", public_id=created.api_key.public_id)
    rows = json.loads(run("list_api_keys", "--json"))
    assert [(r["public_id"], r["status"], r["description"]) for r in rows] == [
        (created.api_key.public_id, "disabled", "one")
    ]
    assert created.secret not in json.dumps(rows)


def test_list_api_keys_table() -> None:
    created = service.create_key(actor="t")
    output = run("list_api_keys")
    assert output.splitlines()[0].startswith("PUBLIC ID")
    assert created.api_key.public_id in output and "active" in output


def test_disable_api_key_exit_status_from_the_shell(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Exit 1 with a message for an unknown key, as the issue asks of scripts."""
    from tests.conftest import manage
    from tests.servers import test_database_url

    result = manage(test_database_url(), "disable_api_key", "nosuchkey123")
    assert result.returncode == 1
    assert "No API key has the public ID nosuchkey123" in result.stderr


def test_create_api_key_refuses_an_expiration_past_a_hundred_years() -> None:
    with pytest.raises(CommandError, match="within 100 years"):
        run("create_api_key", "--expiration", "9999-12-31T23:59:59-14:00")
    assert ApiKey.objects.count() == 0


def test_list_api_keys_survives_an_infinite_expiry() -> None:
    from django.db import connection

    created = service.create_key(actor="t")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE public.tensorzero_auth_api_key SET expires_at = 'infinity'")
    rows = json.loads(run("list_api_keys", "--json"))
    assert rows[0]["public_id"] == created.api_key.public_id
    assert rows[0]["expires_at"].startswith("9999-12-30")


def test_models_match_their_migrations() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_list_api_keys_escapes_control_characters_another_tool_stored() -> None:
    from django.db import connection

    service.create_key(actor="t")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE public.tensorzero_auth_api_key SET description = 'red\x1b[31m'")
    output = run("list_api_keys")
    assert "\x1b" not in output and "red\\x1b[31m" in output


def test_commands_keep_stderr_empty_on_success(scratch_db: str) -> None:
    """Scripts and cron mails see a command's output, never a library's INFO line."""
    from tests.conftest import manage

    def quiet(*args: str) -> str:
        result = manage(scratch_db, *args)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", f"manage.py {' '.join(args)} wrote to stderr"
        return result.stdout

    quiet("migrate", "--noinput")
    assert "created the first user" in quiet("ensure_first_admin")
    quiet("grant", "viewer", "admin")
    quiet("check")
    output = quiet("create_api_key", "--description", "cron")
    assert output.count("\n") == 1 and re.fullmatch(r"sk-t0-\w{12}-\w{48}\n", output)
    public_id = output.split("-")[2]
    assert public_id in quiet("list_api_keys")
    assert f"Disabled API key {public_id}." in quiet("disable_api_key", public_id)
    quiet("ensure_gateway_schema")
