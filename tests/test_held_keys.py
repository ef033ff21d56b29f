"""A bulk disable goes on when another transaction holds one of its keys.

Found by a review of the leak response: "Disable all" locked every key in one statement,
so one key that another transaction held longer than the lock timeout (another admin's
long bulk disable, an operator's open transaction in psql) made the whole response fail
with "the database is busy, nothing changed", again on every retry. Now every key nobody
holds is disabled, and the held ones are named as NOT disabled, on every screen that
disables in bulk and in find_leaked_keys.

The app's connection waits 0.3 s for a lock here (settings say 3 s); the test's own
connection (`locker`) holds the row.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from keys import service, tokens
from keys.models import ApiKey, AuditEvent
from tests.conftest import gateway_accepts

pytestmark = pytest.mark.django_db(transaction=True)


def pid(key: str) -> str:
    return tokens.extract(key).public_id  # type: ignore[union-attr]


@pytest.fixture(autouse=True, params=[service.SLICE, 1], ids=["one slice", "slices of 1"])
def _slices(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case with the keys in one statement, and with a statement per key."""
    monkeypatch.setattr(service, "SLICE", request.param)


@pytest.fixture
def impatient_connection(db: None) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '300ms'")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def hold(locker: psycopg.Connection, public_id: str) -> None:
    locker.execute(
        "SELECT 1 FROM public.tensorzero_auth_api_key WHERE public_id = %s FOR UPDATE", [public_id]
    )


def disable_held(locker: psycopg.Connection, public_id: str) -> None:
    """The holder is itself disabling the key (another admin's bulk disable)."""
    locker.execute(
        "UPDATE public.tensorzero_auth_api_key SET disabled_at = now() WHERE public_id = %s",
        [public_id],
    )


@contextmanager
def before_query(matches: Callable[[str], bool], then: Callable[[], object]) -> Iterator[None]:
    """Run `then` once, just before the app's first query that `matches`: another
    transaction's commit lands exactly between two of the app's statements."""
    done = threading.Event()

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if not done.is_set() and matches(sql):
            done.set()
            then()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield
    assert done.is_set(), "the query never came"


def rechecks(sql: str) -> bool:  # service.still_active's read
    return "IS NULL" in sql and "FOR UPDATE" not in sql


def classifies(sql: str) -> bool:  # leaks.classify's read
    return "ANY(" in sql and '"expired"' in sql


@pytest.fixture
def three() -> list[str]:
    return [service.create_key(actor="t").secret for _ in range(3)]


def test_the_keys_nobody_holds_are_disabled_and_the_held_one_is_named(
    impatient_connection: None, locker: psycopg.Connection, three: list[str]
) -> None:
    a, b, c = three
    hold(locker, pid(b))
    result = service.disable_keys(actor="alice", public_ids=[pid(k) for k in three])
    assert set(result.disabled) == {pid(a), pid(c)}
    assert result.held == [pid(b)] and not result.already and not result.unknown
    assert result.outcome(pid(b)) == (service.HELD, None)
    assert not result.is_off(pid(b)) and result.is_off(pid(a))
    assert not gateway_accepts(a) and not gateway_accepts(c)
    assert gateway_accepts(b)
    audited = AuditEvent.objects.filter(action=AuditEvent.Action.DISABLE)
    assert sorted(e.public_id for e in audited) == sorted([pid(a), pid(c)])

    locker.rollback()  # the other transaction ends: asking again disables the rest
    again = service.disable_keys(actor="alice", public_ids=[pid(k) for k in three])
    assert list(again.disabled) == [pid(b)] and set(again.already) == {pid(a), pid(c)}
    assert not again.held and not gateway_accepts(b)


def test_a_held_key_that_was_disabled_before_counts_as_disabled(
    impatient_connection: None, locker: psycopg.Connection, three: list[str]
) -> None:
    a, b, _ = three
    service.disable_key(actor="t", public_id=pid(b))
    hold(locker, pid(b))
    result = service.disable_keys(actor="alice", public_ids=[pid(a), pid(b)])
    locker.rollback()
    assert list(result.disabled) == [pid(a)] and list(result.already) == [pid(b)]
    assert not result.held and result.is_off(pid(b))


def test_waits_that_add_up_past_the_statement_timeout_end_the_same_way(
    locker: psycopg.Connection, three: list[str], request: pytest.FixtureRequest
) -> None:
    """Found by a review: the first pass waited 0.25 s for one key (held briefly) and then
    for another (held long). Each wait was under the lock timeout, but together they
    passed the statement timeout, which ended the statement with another error, and the
    disable failed as a whole."""
    from tests.servers import test_database_url

    a, b, c = three
    briefly = psycopg.connect(test_database_url())
    request.addfinalizer(briefly.close)
    hold(briefly, pid(a))
    hold(locker, pid(b))
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '300ms'")
        cursor.execute("SET statement_timeout = '500ms'")
    letting_go = threading.Timer(0.25, briefly.rollback)
    letting_go.start()
    try:
        result = service.disable_keys(actor="alice", public_ids=[pid(k) for k in three])
    finally:
        letting_go.join()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
            cursor.execute("RESET statement_timeout")
    assert set(result.disabled) == {pid(a), pid(c)} and result.held == [pid(b)]


def test_a_held_key_its_holder_disables_meanwhile_is_reported_as_such(
    impatient_connection: None, locker: psycopg.Connection, three: list[str]
) -> None:
    a, b, _ = three
    disable_held(locker, pid(b))
    with before_query(rechecks, locker.commit):
        result = service.disable_keys(actor="alice", public_ids=[pid(a), pid(b)])
    assert list(result.disabled) == [pid(a)] and not result.held
    assert result.meanwhile == [pid(b)] and result.is_off(pid(b))
    assert result.outcome(pid(b)) == (service.MEANWHILE, None)
    # Not this call's doing: its audit records name only what it disabled.
    mine = AuditEvent.objects.filter(action=AuditEvent.Action.DISABLE, actor="alice")
    assert [e.public_id for e in mine] == [pid(a)]


def test_a_disable_that_committed_stands_when_reading_the_held_keys_again_fails(
    impatient_connection: None, locker: psycopg.Connection, three: list[str]
) -> None:
    """The connection is lost after the COMMIT, before the held keys are read again: what
    was disabled is still reported as such, and the held key still as not disabled."""
    a, b, _ = three
    hold(locker, pid(b))
    with before_query(rechecks, lambda: connection.connection.close()):
        result = service.disable_keys(actor="alice", public_ids=[pid(a), pid(b)])
    connection.close()  # as at the end of a request: the next one connects again
    locker.rollback()
    assert list(result.disabled) == [pid(a)] and result.held == [pid(b)]
    assert not gateway_accepts(a)


def test_a_lock_timeout_with_nothing_held_any_more_is_not_mistaken(
    impatient_connection: None, three: list[str]
) -> None:
    """Without a held key the first, waiting statement does it all."""
    result = service.disable_keys(actor="alice", public_ids=[pid(k) for k in three])
    assert len(result.disabled) == 3 and not result.held


@pytest.fixture
def admin(impatient_connection: None, admin_client: Client) -> Client:
    return admin_client


def test_disable_all_on_the_leak_page_names_the_held_key_and_offers_it_again(
    admin: Client, locker: psycopg.Connection, three: list[str]
) -> None:
    a, b, c = three
    text = f"log: {a}\n{b}\n{c}\n"
    checked = admin.post("/api-keys/leaked", {"text": text}).content.decode()
    token = re.search(r'name="token" value="([^"]+)"', checked)
    assert token
    hold(locker, pid(b))
    done = admin.post(
        "/api-keys/leaked/disable",
        {"token": token.group(1), "confirmed": "yes", "text": text},
        HTTP_HX_REQUEST="true",
    )
    html = done.content.decode()
    assert done.status_code == 200, html
    assert "2 keys disabled" in html
    assert "1 key NOT disabled:</strong> another change held it" in html
    rows = re.findall(r'<tr class="leak-([a-z_]+)" data-public-id="(\w+)"', html)
    assert rows == [("disabled", pid(a)), ("active", pid(b)), ("disabled", pid(c))]
    assert f"({service.HELD})" in html
    assert "Disable all 1 active" in html  # with a fresh confirmation, for the held key
    assert gateway_accepts(b) and not gateway_accepts(a)

    locker.rollback()
    token = re.search(r'name="token" value="([^"]+)"', html)
    assert token
    again = admin.post(
        "/api-keys/leaked/disable", {"token": token.group(1), "confirmed": "yes", "text": text}
    ).content.decode()
    assert "1 key disabled" in again and "NOT disabled" not in again
    assert not gateway_accepts(b)
    disables = AuditEvent.objects.filter(action=AuditEvent.Action.DISABLE)
    incidents = set(disables.values_list("incident", flat=True))
    assert len(incidents) == 1  # the second try is part of the same incident


def test_the_leak_page_reads_a_held_key_again_before_calling_it_not_disabled(
    admin: Client, locker: psycopg.Connection, three: list[str]
) -> None:
    """Found by a review: the holder disabled the key after Disable all had found it held,
    and the page showed it disabled next to "NOT disabled: disable all again"."""
    a, b, _ = three
    text = f"{a}\n{b}\n"
    checked = admin.post("/api-keys/leaked", {"text": text}).content.decode()
    token = re.search(r'name="token" value="([^"]+)"', checked)
    assert token
    disable_held(locker, pid(b))
    with before_query(classifies, locker.commit):  # between the disable and the page
        html = admin.post(
            "/api-keys/leaked/disable",
            {"token": token.group(1), "confirmed": "yes", "text": text},
            HTTP_HX_REQUEST="true",
        ).content.decode()
    rows = re.findall(r'<tr class="leak-([a-z_]+)" data-public-id="(\w+)"', html)
    assert rows == [("disabled", pid(a)), ("disabled", pid(b))]
    assert f"({service.MEANWHILE})" in html
    assert "NOT disabled" not in html and "Disable all" not in html


def test_disable_selected_names_the_held_key(
    admin: Client, locker: psycopg.Connection, three: list[str]
) -> None:
    a, b, c = three
    hold(locker, pid(b))
    answer = admin.post(
        "/api-keys/disable-selected",
        {"public_id": [pid(k) for k in three], "confirmed": "yes"},
        HTTP_HX_REQUEST="true",
    )
    locker.rollback()
    body = answer.content.decode()
    assert answer.status_code == 200, body
    assert f"2 API keys disabled ({pid(a)}, {pid(c)})" in body
    assert f"NOT disabled: {pid(b)}. Another change held it" in body
    assert ApiKey.objects.get(public_id=pid(b)).disabled_at is None


def test_disable_selected_without_javascript_warns_on_the_list(
    admin: Client, locker: psycopg.Connection, three: list[str]
) -> None:
    hold(locker, pid(three[1]))
    answer = admin.post(
        "/api-keys/disable-selected",
        {"public_id": [pid(k) for k in three], "confirmed": "yes"},
        follow=True,
    )
    locker.rollback()
    body = answer.content.decode()
    assert re.search(r'<p class="message warning">[^<]*NOT disabled: ' + pid(three[1]), body)


def disable_leaked(paste: Path) -> tuple[int, dict[str, dict[str, str]], str]:
    """find_leaked_keys --disable --json: exit status, the keys by public ID, stderr."""
    out, err = StringIO(), StringIO()
    try:
        call_command("find_leaked_keys", "--disable", "--json", str(paste), stdout=out, stderr=err)
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    keys = {k["public_id"]: k for k in json.loads(out.getvalue())["keys"]}
    return code, keys, err.getvalue()


def test_find_leaked_keys_disables_the_rest_warns_and_exits_1(
    impatient_connection: None, locker: psycopg.Connection, three: list[str], tmp_path: Path
) -> None:
    a, b, c = three
    paste = tmp_path / "paste.txt"
    paste.write_text(f"{a} {b} {c}\n")
    hold(locker, pid(b))
    code, keys, err = disable_leaked(paste)
    locker.rollback()
    assert code == 1  # a key is still active
    assert f"1 key(s) NOT disabled ({pid(b)}): another change held them" in err
    assert keys[pid(b)]["state"] == "active" and keys[pid(b)]["outcome"] == service.HELD
    assert keys[pid(a)]["outcome"] == "disabled now" == keys[pid(c)]["outcome"]


def test_find_leaked_keys_reads_a_held_key_again_before_warning(
    impatient_connection: None, locker: psycopg.Connection, three: list[str], tmp_path: Path
) -> None:
    a, b, _ = three
    paste = tmp_path / "paste.txt"
    paste.write_text(f"{a} {b}\n")
    disable_held(locker, pid(b))
    seen: list[str] = []

    def second_classify(sql: str) -> bool:
        if classifies(sql):
            seen.append(sql)
        return len(seen) == 2  # the look after --disable

    with before_query(second_classify, locker.commit):
        code, keys, err = disable_leaked(paste)
    assert code == 0 and "NOT disabled" not in err
    assert keys[pid(b)]["state"] == "disabled" and keys[pid(b)]["outcome"] == service.MEANWHILE
    assert keys[pid(a)]["outcome"] == "disabled now"
