"""manage.py find_leaked_keys: any text in, the same classification out, exit 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from keys import gateway_probe, service, tokens
from keys.models import AuditEvent
from tests.conftest import ROOT, gateway_accepts, manage_env
from tests.gateway_stand_in import stand_in_gateway
from tests.servers import test_database_url as database_url

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("find_leaked_keys", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    return code, out.getvalue(), err.getvalue()


def shell(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "find_leaked_keys", *args],
        cwd=ROOT,
        env=manage_env(database_url(), **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def report_file(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A gitleaks JSON report and trufflehog JSON lines, as those tools write them."""
    live = service.create_key(actor="t")
    dead = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=dead.api_key.public_id)
    real = service.create_key(actor="t")
    forged = f"sk-t0-{real.api_key.public_id}-{'Q' * 48}"
    gitleaks = [
        {
            "RuleID": "tensorzero-api-key",
            "Secret": live.secret,
            "Match": f"TENSORZERO_API_KEY={live.secret}",
            "File": "deploy/.env",
            "Commit": "0f3c2a",
        },
        {"RuleID": "tensorzero-api-key", "Secret": forged, "File": "notes.md"},
    ]
    trufflehog = json.dumps({"Raw": dead.secret, "DetectorName": "Custom", "Verified": False})
    path = tmp_path / "gitleaks.json"
    path.write_text(json.dumps(gitleaks, indent=2))
    (tmp_path / "trufflehog.jsonl").write_text(trufflehog + "\n")
    return path, {"live": live.secret, "dead": dead.secret, "real": real.secret, "forged": forged}


def test_lists_the_keys_and_exits_1_while_an_active_one_is_left(report_file) -> None:  # type: ignore[no-untyped-def]
    path, keys = report_file
    code, out, _ = run(str(path), str(path.with_name("trufflehog.jsonl")))
    assert code == 1
    live_pid = tokens.parse(keys["live"]).public_id
    assert f"{live_pid}  active" in out
    assert "not a working key" in out and "the real key is active and not leaked" in out
    assert "disabled" in out
    assert "3 distinct key(s): 1 active, 1 disabled, 1 not a working key." in out
    for secret in keys.values():
        assert tokens.parse(secret).long_key not in out


def test_disable_switches_the_active_ones_off_and_exits_0(report_file) -> None:  # type: ignore[no-untyped-def]
    path, keys = report_file
    code, out, _ = run("--disable", str(path))
    assert code == 0
    assert not gateway_accepts(keys["live"])
    assert gateway_accepts(keys["real"])  # behind the forged string: not leaked
    event = AuditEvent.objects.get(reason="leaked")
    assert event.actor.startswith("cli") and event.incident.startswith("leak-")
    assert f"Incident {event.incident}: disabled 1 key(s)." in out


def test_json_output(report_file) -> None:  # type: ignore[no-untyped-def]
    path, keys = report_file
    code, out, _ = run("--json", "--disable", str(path))
    document = json.loads(out)
    assert code == 0
    assert [k["state"] for k in document["keys"]] == ["disabled", "not_a_working_key"]
    assert document["keys"][0]["outcome"] == "disabled now"
    assert document["active_remaining"] == 0
    assert document["incident"].startswith("leak-")
    assert document["keys"][1]["real_key_state"] == "active"


def test_reads_standard_input_from_a_pipe_with_exit_codes() -> None:
    live = service.create_key(actor="t").secret
    result = shell(stdin=f"log line Bearer {live}\n")
    assert result.returncode == 1, result.stderr
    assert tokens.parse(live).public_id in result.stdout
    result = shell("--disable", "-", stdin=f"log line Bearer {live}\n")
    assert result.returncode == 0, result.stderr
    assert not gateway_accepts(live)


def test_nothing_found_is_exit_0() -> None:
    code, out, _ = run("/dev/null")
    assert code == 0 and "No TensorZero API key found." in out


def test_unreadable_input_and_bad_usage_are_exit_2(tmp_path: Path) -> None:
    missing = shell(str(tmp_path / "nope.log"))
    assert missing.returncode == 2
    assert "Cannot read" in missing.stderr and "No such file" in missing.stderr
    directory = shell(str(tmp_path))
    assert directory.returncode == 2
    assert shell("--no-such-flag").returncode == 2


def test_a_key_cut_by_the_read_size_is_still_found(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from keys.management.commands import find_leaked_keys

    live = service.create_key(actor="t").secret
    monkeypatch.setattr(find_leaked_keys, "CHUNK", 64)
    path = tmp_path / "big.log"
    path.write_text("x" * 40 + " " + live + " " + "y" * 100 + "\n")
    code, out, _ = run(str(path))
    assert code == 1 and tokens.parse(live).public_id in out
    # Also one that a line break cut, as the page finds it.
    path.write_text("From: ops\n> Bearer " + live[:40] + "=\n> " + live[40:] + "\n" + "z" * 99)
    code, out, _ = run("--disable", str(path))
    assert code == 0 and f"{tokens.parse(live).public_id}" in out
    assert not gateway_accepts(live)


def test_probe_asks_the_gateway_and_warns_when_auth_is_off(report_file) -> None:  # type: ignore[no-untyped-def]
    path, keys = report_file
    with stand_in_gateway(database_url()) as gateway:
        result = shell(
            "--disable", "--probe", "--json", str(path), TENSORZERO_GATEWAY_URL=gateway.url
        )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["gateway"]["checked"] and not document["gateway"]["auth_off"]
    verdicts = [k["gateway"]["verdict"] for k in document["keys"]]
    assert verdicts == ["refused", "refused"]
    assert document["keys"][0]["gateway"]["message"].startswith("API key was disabled at: ")

    with stand_in_gateway(database_url(), auth_off=True) as gateway:
        result = shell("--probe", str(path), TENSORZERO_GATEWAY_URL=gateway.url)
    assert result.returncode == 1
    assert "authentication is switched off" in result.stderr


def test_probe_counts_the_keys_a_hanging_gateway_gave_no_verdict_for(report_file) -> None:  # type: ignore[no-untyped-def]
    path, _ = report_file
    with stand_in_gateway(database_url(), hang=True) as gateway:
        result = shell(
            "--disable", "--probe", "--json", str(path), TENSORZERO_GATEWAY_URL=gateway.url
        )
    assert result.returncode == 0, result.stderr  # nothing left active
    assert json.loads(result.stdout)["gateway"]["not_checked"] == 2
    assert "WARNING: 2 of 2 key(s) not checked by the gateway" in result.stderr


def test_probe_seconds_bounds_the_check(tmp_path: Path) -> None:
    key = service.create_key(actor="t")
    path = tmp_path / "leak.txt"
    path.write_text(f"key={key.secret}\n")
    with stand_in_gateway(database_url(), ttl_ms=60_000) as gateway:
        # The gateway caches the key as good for a minute; then it is disabled here. Asked
        # again and again while it should be refused, it would be asked for 4 s (RETRY_FOR).
        assert gateway_probe.probe([key.secret], [False], gateway.url).answers[0].status == 400
        service.disable_key(actor="t", public_id=key.api_key.public_id)
        started = time.monotonic()
        result = shell(
            "--probe", "--probe-seconds", "3", "--json", str(path),
            TENSORZERO_GATEWAY_URL=gateway.url,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["keys"][0]["gateway"]["verdict"] == "not_checked"
    assert "1 of 1 key(s) not checked by the gateway" in result.stderr
    assert "(--probe-seconds 3)" in result.stderr
    assert elapsed < 3 + 5  # the command's own start included
    assert len(gateway.calls) > 2  # it was asked again within the 3 s


@pytest.mark.parametrize("value", ["30", "120"])  # 120: the default, given all the same
def test_probe_seconds_without_probe_is_refused(value: str) -> None:
    with pytest.raises(CommandError, match="--probe-seconds bounds --probe: give both") as error:
        call_command("find_leaked_keys", "--probe-seconds", value, stdout=StringIO())
    assert error.value.returncode == 2


@pytest.mark.parametrize("value", ["2", "nan", "soon", "86401"])
def test_probe_seconds_out_of_range_is_refused(value: str) -> None:
    result = shell("--probe", "--probe-seconds", value, stdin="nothing")
    assert result.returncode == 2
    assert "--probe-seconds: must be a number of seconds from 3 to 86400" in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_disabled_before_the_database_failed_are_reported_disabled(
    report_file, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from django.db import OperationalError

    from keys import leaks

    path, keys = report_file
    real = leaks.classify
    calls: list[int] = []

    def fails_the_second_time(found):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:  # reading the keys again, after the disable committed
            raise OperationalError("server closed the connection unexpectedly")
        return real(found)

    monkeypatch.setattr(leaks, "classify", fails_the_second_time)
    code, out, _ = run("--disable", "--json", str(path))
    assert len(calls) == 2
    assert code == 0
    document = json.loads(out)
    live = keys["live"].split("-")[2]
    (entry,) = [k for k in document["keys"] if k["public_id"] == live]
    assert entry["state"] == "disabled"
    assert document["active_remaining"] == 0


def test_probe_without_a_gateway_says_how_to_enable_it(report_file) -> None:  # type: ignore[no-untyped-def]
    path, _ = report_file
    result = shell("--probe", str(path), TENSORZERO_GATEWAY_URL="")
    assert "TENSORZERO_GATEWAY_URL is not set" in result.stderr


def test_more_keys_than_one_disable_takes_are_disabled_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a probe: a file with more than service.MAX_DISABLE (100,000) active keys
    disabled none of them ("Disable at most 100,000 keys at once", exit 2)."""
    keys = [service.create_key(actor="t").secret for _ in range(3)]
    paste = tmp_path / "many.txt"
    paste.write_text("\n".join(keys))
    monkeypatch.setattr(service, "MAX_DISABLE", 2)
    code, out, _ = run("--disable", str(paste))
    assert code == 0
    assert not any(gateway_accepts(key) for key in keys)
    incidents = set(AuditEvent.objects.filter(reason="leaked").values_list("incident", flat=True))
    assert len(incidents) == 1
    assert f"Incident {incidents.pop()}: disabled 3 key(s)." in out


def test_a_later_part_that_fails_says_what_the_earlier_ones_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection

    keys = [service.create_key(actor="t").secret for _ in range(3)]
    paste = tmp_path / "many.txt"
    paste.write_text("\n".join(keys))
    monkeypatch.setattr(service, "MAX_DISABLE", 1)
    statements: list[str] = []

    def lose_the_connection_in_the_second_part(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if "FOR UPDATE" in sql:
            statements.append(sql)
            if len(statements) == 2:
                connection.connection.close()  # the database goes away for real
        return execute(sql, params, many, context)

    with (
        connection.execute_wrapper(lose_the_connection_in_the_second_part),
        pytest.raises(CommandError) as failed,
    ):
        run("--disable", str(paste))
    connection.close()
    message = str(failed.value)
    assert failed.value.returncode == 3
    assert "1 of the 3 active key(s) were disabled first (incident leak-" in message
    assert "None of the 2 active key(s) after them were disabled." in message
    assert [gateway_accepts(key) for key in keys] == [False, True, True]
