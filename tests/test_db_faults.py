"""Writes whose COMMIT meets a failing database (issue 9): every answer tells the truth.

A real gunicorn talks to a PostgreSQL server of this module's own, through a relay that
can break the link exactly at COMMIT (tests/faults.py); the load tests shut that server
down (`pg_ctl stop -m immediate` and `-m fast`) while creates run.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from keys import service
from tests.conftest import manage
from tests.faults import FaultyLink
from tests.pgserver import PostgresServer, postgres_server, wait_for
from tests.servers import Server, gunicorn
from tests.webclient import KEY_RE, Response, WebClient

pytestmark = pytest.mark.slow

ADMIN, PASSWORD = "admin", "correct horse battery staple 42"
HOUSE_STYLE = '<header class="topbar">'
# How long the relay refuses connections after cutting a COMMIT: longer than t0admin keeps
# asking the database again (service.CONFIRM_SECONDS, 3 s).
STAYS_AWAY = 5.0


@pytest.fixture(scope="module")
def database() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        url = server.url()
        migrated = manage(url, "migrate", "--no-input")
        assert migrated.returncode == 0, migrated.stderr
        made = manage(
            url,
            "createsuperuser",
            "--no-input",
            "--email=admin@example.com",
            DJANGO_SUPERUSER_USERNAME=ADMIN,
            DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        )
        assert made.returncode == 0, made.stderr
        yield server


@pytest.fixture(scope="module")
def link(database: PostgresServer) -> Iterator[FaultyLink]:
    relay = FaultyLink(database.port)
    yield relay
    relay.close()


@pytest.fixture(autouse=True)
def calm_link(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "link" in request.fixturenames:
        request.getfixturevalue("link").calm()


@pytest.fixture(scope="module")
def app(link: FaultyLink) -> Iterator[Server]:
    with gunicorn(link.url()) as server:
        yield server


@pytest.fixture
def browser(app: Server) -> WebClient:
    client = WebClient(app.url)
    client.sign_in(ADMIN, PASSWORD)
    return client


def key_of(database: PostgresServer, form_token: str) -> str | None:
    """The public ID of the key a form's sending created, from the audit record."""
    with psycopg.connect(database.url(), autocommit=True) as connection:
        row = connection.execute(
            "SELECT public_id FROM t0admin.keys_auditevent WHERE form_token = %s", [form_token]
        ).fetchone()
    return row[0] if row else None


def key_works(database: PostgresServer, key: str) -> bool:
    import hashlib

    _, _, public_id, long_key = key.split("-")
    with psycopg.connect(database.url(), autocommit=True) as connection:
        row = connection.execute(
            "SELECT disabled_at IS NULL FROM public.tensorzero_auth_api_key "
            "WHERE public_id = %s AND hash = %s",
            [public_id, hashlib.sha256(long_key.encode()).hexdigest()],
        ).fetchone()
    return bool(row and row[0])


def create_through_fault(
    link: FaultyLink, browser: WebClient, mode: str, refuse_seconds: float = 0.0, **headers: str
) -> tuple[dict[str, str], Response]:
    """Send a create form while the relay is armed; the fault must have struck."""
    form = browser.create_form(mode)
    link.arm(mode, refuse_seconds)
    answer = browser.post("/api-keys/new", form, **headers)
    assert link.tripped.is_set(), (answer.status, answer.body[:2000])
    return form, answer


@pytest.mark.parametrize(
    "mode",
    [
        "lose_answer",
        # The link goes silent after the COMMIT (no reset, no close) while the database
        # answers new connections: the wait ends in silence, which must not keep
        # t0admin from asking again.
        "stall",
    ],
)
def test_commit_whose_answer_was_lost_still_shows_the_key(
    link: FaultyLink, database: PostgresServer, browser: WebClient, mode: str
) -> None:
    form, answer = create_through_fault(link, browser, mode)
    # It committed: the database, asked again, says so, and the secret is shown.
    assert answer.status == 200, answer.body
    shown = KEY_RE.search(answer.body)
    assert shown
    assert key_works(database, shown.group(0))
    assert key_of(database, form["form_token"]) == shown.group(0).split("-")[2]


def test_rotation_whose_commit_answer_was_lost_still_shows_the_replacement(
    link: FaultyLink, database: PostgresServer, browser: WebClient
) -> None:
    created = browser.post("/api-keys/new", browser.create_form("to rotate"))
    shown = KEY_RE.search(created.body)
    assert shown
    old = shown.group(0)
    form = {"form_token": browser.create_form()["form_token"], "grace": "now"}
    link.arm("lose_answer")
    answer = browser.post(f"/api-keys/{old.split('-')[2]}/rotate", form)
    assert link.tripped.is_set()
    assert answer.status == 200, answer.body
    replacement = KEY_RE.search(answer.body)
    assert replacement and replacement.group(0) != old
    # The old key is disabled, and the client has the working replacement in hand.
    assert not key_works(database, old)
    assert key_works(database, replacement.group(0))


def test_commit_of_unknown_outcome_says_so_and_the_same_form_names_the_key(
    link: FaultyLink, database: PostgresServer, browser: WebClient
) -> None:
    # The answer is lost and the database stays away longer than t0admin asks again.
    form, answer = create_through_fault(link, browser, "lose_answer", STAYS_AWAY)
    assert answer.status == 503
    assert "Nothing was changed" not in answer.body
    assert "Not known whether this was saved" in answer.body
    assert "audit trail" in answer.body
    assert HOUSE_STYLE in answer.body
    created = key_of(database, form["form_token"])
    assert created is not None  # it did commit
    assert f"creating key {created}" in answer.body
    # Once the database is back, the same form again creates nothing and names the key.
    time.sleep(STAYS_AWAY)
    again = browser.post("/api-keys/new", form)
    assert again.status == 409, again.body
    assert created in again.body
    assert service.CONFIRM_SECONDS < STAYS_AWAY


def test_disable_all_of_unknown_outcome_names_the_keys_and_the_safe_retry(
    link: FaultyLink, database: PostgresServer, browser: WebClient
) -> None:
    keys = [manage(database.url(), "create_api_key").stdout.strip() for _ in range(2)]
    text = "\n".join(keys)
    checked = browser.post("/api-keys/leaked", {"text": text})
    token = re.search(r'name="token" value="([^"]+)"', checked.body)
    assert token
    link.arm("lose_answer", STAYS_AWAY)
    answer = browser.post(
        "/api-keys/leaked/disable", {"token": token.group(1), "confirmed": "yes", "text": text}
    )
    assert link.tripped.is_set()
    assert answer.status == 503
    assert "Not known whether this was saved" in answer.body
    for key in keys:
        assert key.split("-")[2] in answer.body  # which keys, by public ID
        assert key.split("-")[3] not in answer.body
    assert "a key disabled or a description saved once is not changed twice" in answer.body
    assert "created a key" not in answer.body


def test_disable_all_whose_commit_answer_was_lost_says_what_it_disabled(
    link: FaultyLink, database: PostgresServer, browser: WebClient
) -> None:
    """Asked again, the bulk disable looks for its own audit record: the keys being
    disabled could be another disable's doing."""
    keys = [manage(database.url(), "create_api_key").stdout.strip() for _ in range(2)]
    text = "\n".join(keys)
    checked = browser.post("/api-keys/leaked", {"text": text})
    token = re.search(r'name="token" value="([^"]+)"', checked.body)
    assert token
    link.arm("lose_answer")
    answer = browser.post(
        "/api-keys/leaked/disable", {"token": token.group(1), "confirmed": "yes", "text": text}
    )
    assert link.tripped.is_set()
    assert answer.status == 200, answer.body[:2000]
    assert "2 keys disabled" in answer.body
    assert not any(key_works(database, key) for key in keys)


def test_commit_that_never_reached_the_database_says_nothing_changed(
    link: FaultyLink, database: PostgresServer, browser: WebClient
) -> None:
    form, answer = create_through_fault(link, browser, "drop")
    assert answer.status == 503
    assert "Nothing was changed" in answer.body
    assert key_of(database, form["form_token"]) is None
    # And the form still works: sent again, it creates the key.
    again = browser.post("/api-keys/new", form)
    assert again.status == 200
    assert key_of(database, form["form_token"]) is not None


def test_htmx_sees_the_unknown_outcome_in_the_dialog(
    link: FaultyLink, database: PostgresServer, browser: WebClient
) -> None:
    _, answer = create_through_fault(
        link, browser, "lose_answer", STAYS_AWAY, **{"HX-Request": "true"}
    )
    assert answer.status == 503
    assert answer.headers["hx-retarget"] == "#modal-body"
    assert "Not known whether this was saved" in answer.body
    assert "<html" not in answer.body


def test_the_command_line_says_the_outcome_is_unknown_without_a_traceback(
    link: FaultyLink, database: PostgresServer
) -> None:
    link.arm("lose_answer", refuse_seconds=STAYS_AWAY)
    result = manage(link.url(), "create_api_key", "--description", "from a script")
    assert link.tripped.is_set()
    assert result.returncode == 3
    assert "Not known whether the key was saved" in result.stderr
    assert "Traceback" not in result.stderr
    assert not KEY_RE.search(result.stdout)


@pytest.mark.parametrize(
    ("mode", "words", "disabled"),
    [
        ("lose_answer", "Not known whether the 2 active key(s) were disabled", True),
        ("drop", "None of the 2 active key(s) were disabled.", False),
    ],
)
def test_find_leaked_keys_says_what_a_broken_commit_did(
    link: FaultyLink,
    database: PostgresServer,
    tmp_path: Path,
    mode: str,
    words: str,
    disabled: bool,
) -> None:
    keys = [manage(database.url(), "create_api_key").stdout.strip() for _ in range(2)]
    leak = tmp_path / "leak.txt"
    leak.write_text("\n".join(keys))
    link.arm(mode, refuse_seconds=STAYS_AWAY if mode == "lose_answer" else 0.0)
    result = manage(link.url(), "find_leaked_keys", "--disable", str(leak))
    assert link.tripped.is_set()
    assert result.returncode == 3, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert [key_works(database, key) for key in keys] == [not disabled] * 2


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (["create_api_key"], "No key was created."),
        (["disable_api_key", "AAAAAAAAAAAA"], "The key was not disabled: run this again."),
        (["list_api_keys"], "The list is missing keys, or all of them."),
        (["find_leaked_keys", "--disable", "-"], "Nothing was disabled."),
    ],
)
def test_key_commands_without_a_database_say_so_in_words(command: list[str], words: str) -> None:
    from tests.conftest import free_port

    result = manage(
        f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=2",
        *command,
        stdin=f"sk-t0-AAAAAAAAAAAA-{'a' * 48}",
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("CommandError: The database failed: "), result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


# --- the database shut down while creates run -------------------------------------------


@dataclass
class Sent:
    form: dict[str, str]
    answer: Response | None = None
    error: str = ""


def hammer(browser: WebClient, stop: threading.Event, sent: list[Sent]) -> None:
    while not stop.is_set():
        item = Sent(browser.create_form("under load"))
        try:
            item.answer = browser.post("/api-keys/new", item.form)
        except OSError as error:
            item.error = repr(error)
        sent.append(item)


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_database_shut_down_under_load_every_answer_is_true(
    mode: str, database: PostgresServer, app: Server, browser: WebClient
) -> None:
    stop = threading.Event()
    sent: list[Sent] = []
    threads = [
        threading.Thread(target=hammer, args=(browser, stop, sent), daemon=True) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        database.stop(mode)
        time.sleep(1.5)
        database.start()
        wait_for(database.url())
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    answers = [item for item in sent if item.answer is not None]
    assert len(answers) > 20, [item.error for item in sent][:5]
    assert any(item.answer.status == 503 for item in answers if item.answer)  # the outage
    assert any(item.answer.status == 200 for item in answers if item.answer)
    for item in answers:
        answer = item.answer
        assert answer is not None
        created = key_of(database, item.form["form_token"])
        assert HOUSE_STYLE in answer.body, (answer.status, answer.body[:300])
        if answer.status == 200:
            shown = KEY_RE.search(answer.body)
            assert shown and key_works(database, shown.group(0))
        elif "Nothing was changed" in answer.body:
            assert created is None, f"said nothing changed, but key {created} was created"
        elif "Not known whether this was saved" in answer.body:
            resent = browser.post("/api-keys/new", item.form)
            assert resent.status == (409 if created else 200)
        else:
            raise AssertionError((answer.status, answer.body[:500]))


def test_no_answer_is_a_bare_django_page(app: Server, browser: WebClient) -> None:
    stranger = WebClient(app.url)
    cases = {
        "unknown page": browser.get("/no-such-page"),
        "unknown host": browser.get("/api-keys", Host="evil.example"),
        "wrong method": browser.get("/api-keys/find"),
        "form without its CSRF token": stranger.post(
            "/sign-in", {"username": "x", "password": "y"}, **{"X-CSRFToken": "wrong"}
        ),
    }
    for case, answer in cases.items():
        assert answer.status in {400, 403, 404, 405}, case
        assert HOUSE_STYLE in answer.body, (case, answer.body[:300])
        assert not re.search(r"<h1>(Bad Request|Not Found|Forbidden)", answer.body), case


# --- the log through an outage ----------------------------------------------------------

TRACEBACK = "Traceback (most recent call last):"


def tracebacks(log: str) -> list[str]:
    """Each traceback's signature: its innermost frame and the exception type."""
    found = []
    for block in log.split(TRACEBACK)[1:]:
        lines = [line for line in block.splitlines() if line.strip()]
        frames = [line.strip() for line in lines if line.strip().startswith("File ")]
        ending = next((line for line in lines if not line.startswith(" ")), "")
        found.append(f"{frames[-1] if frames else ''} {ending.split(':')[0]}")
    return found


def test_an_outage_logs_one_line_per_failed_request_and_few_tracebacks(
    database: PostgresServer,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    # A data dir of its own: the minute's tracebacks are counted there, across workers.
    with gunicorn(database.url(), env={"T0ADMIN_DATA_DIR": str(tmp_path)}) as server:
        browser = WebClient(server.url)
        browser.sign_in(ADMIN, PASSWORD)
        assert browser.get("/api-keys").status == 200
        start = len(server.output().encode())
        answers: list[Response] = []
        database.stop("fast")
        try:

            def load(index: int) -> None:
                for n in range(25):
                    if (index + n) % 2:
                        answers.append(browser.get("/api-keys"))
                    else:
                        answers.append(browser.post("/api-keys/new", browser.create_form()))

            threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            database.start()
        log = server.output().encode()[start:].decode()
    failed = [answer for answer in answers if answer.status >= 500]
    assert len(failed) == 100, [answer.status for answer in answers]
    per_request = len(log.encode()) / len(failed)
    assert per_request < 2048, f"{per_request:.0f} bytes of log per failed request"
    # One line per failed request, saying why.
    lines = [
        line for line in log.splitlines() if "ERROR django.request Service Unavailable" in line
    ]
    assert len(lines) == len(failed), log[-3000:]
    assert all("[OperationalError: " in line for line in lines), lines[:3]
    # A traceback for the first of each distinct error, none for the rest.
    signatures = tracebacks(log)
    assert signatures, log[:3000]
    assert len(signatures) == len(set(signatures)), signatures
