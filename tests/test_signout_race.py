"""Another tab signs the user out while a create or a rotation is in flight (issue 9).

The write is held on a real lock in PostgreSQL until the sign-out has finished, so the race
happens every time: the write then commits after its session is gone. Whatever the session
does, the write's own answer must carry its result (the secret), and the sign-out stands.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from keys import roles, service
from keys.models import ApiKey, Session
from tests.conftest import gateway_accepts
from tests.locks import wait_until_blocked
from tests.webclient import KEY_RE, Response, WebClient

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def signed_in(live_server_url: str) -> Callable[[], WebClient]:
    user = User.objects.create_user("racer", password=PASSWORD)
    roles.set_role(user, roles.ADMINS)

    def sign_in() -> WebClient:
        browser = WebClient(live_server_url)
        browser.sign_in("racer", PASSWORD)
        return browser

    return sign_in


def race(browser: WebClient, locker: psycopg.Connection, send: Callable[[], Response]) -> Response:
    """Send the write, let it block on the locker's lock, sign out meanwhile from another
    tab, then release the lock: the write commits after its session was deleted."""
    answers: list[Response] = []
    writer = threading.Thread(target=lambda: answers.append(send()))
    writer.start()
    try:
        wait_until_blocked(locker)
        signed_out = browser.post("/sign-out")
        assert signed_out.status == 302
    finally:
        locker.rollback()  # releases the lock
        writer.join(30)
    assert answers, "the write never answered"
    return answers[0]


def due_for_refresh(browser: WebClient) -> None:
    """Make the session old enough that this request would save it again (idle expiry)."""
    Session.objects.filter(session_key=browser.cookies["sessionid"]).update(
        expire_date=timezone.now() + timedelta(minutes=5)
    )


def assert_shows_working_key(answer: Response) -> ApiKey:
    assert answer.status == 200, (answer.status, answer.body[:300])
    shown = KEY_RE.search(answer.body)
    assert shown, answer.body[:500]
    assert gateway_accepts(shown.group(0))
    return ApiKey.objects.get(public_id=shown.group(0).split("-")[2])


@pytest.mark.parametrize("refresh", [False, True], ids=["fresh-session", "session-due-to-refresh"])
def test_create_racing_sign_out_shows_its_key(
    signed_in: Callable[[], WebClient], locker: psycopg.Connection, refresh: bool
) -> None:
    browser = signed_in()
    if refresh:
        due_for_refresh(browser)
    locker.execute("LOCK TABLE public.tensorzero_auth_api_key IN SHARE MODE")
    form = browser.create_form("raced")
    answer = race(browser, locker, lambda: browser.post("/api-keys/new", form))
    assert_shows_working_key(answer)
    assert ApiKey.objects.count() == 1
    # The sign-out stands: the write did not bring the session back.
    assert browser.get("/api-keys").status == 302


@pytest.mark.parametrize("refresh", [False, True], ids=["fresh-session", "session-due-to-refresh"])
def test_rotation_racing_sign_out_shows_the_replacement(
    signed_in: Callable[[], WebClient], locker: psycopg.Connection, refresh: bool
) -> None:
    old = service.create_key(actor="t", description="rotated").api_key
    browser = signed_in()
    if refresh:
        due_for_refresh(browser)
    locker.execute(
        "SELECT 1 FROM public.tensorzero_auth_api_key WHERE public_id = %s FOR UPDATE",
        [old.public_id],
    )
    form = {"form_token": browser.create_form()["form_token"], "grace": "now"}
    answer = race(browser, locker, lambda: browser.post(f"/api-keys/{old.public_id}/rotate", form))
    replacement = assert_shows_working_key(answer)
    assert replacement.public_id != old.public_id
    old.refresh_from_db()
    assert old.disabled_at is not None
    assert browser.get("/api-keys").status == 302
