"""A write reads the key it changes with the row locked (keys.service.get_key(lock=True)).

Another writer holds the row in PostgreSQL until the app's write is waiting for it, so the
race happens every time. Found by a probe: three admins saving a description at once each
recorded the text from before all three as the one they replaced, and a disable that
waited for a lock was stamped with the time it started waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from keys import service
from keys.models import ApiKey, AuditEvent
from tests.conftest import gateway_accepts
from tests.locks import wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)


def while_locked(locker: psycopg.Connection, write: Callable[[], object], hold: float = 0) -> None:
    """Run `write` in a thread of its own, let it wait for the locker's lock, hold the lock
    `hold` seconds more, then commit the locker's transaction and wait for the write."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as error:  # noqa: BLE001  reported below, in the test's thread
            failures.append(error)
        finally:
            connections.close_all()

    writer = threading.Thread(target=run)
    writer.start()
    try:
        wait_until_blocked(locker)
        time.sleep(hold)
    finally:
        locker.commit()
        writer.join(30)
    assert not writer.is_alive(), "the write never finished"
    assert not failures, failures


def test_an_edit_records_the_text_it_replaced_when_another_change_came_first(
    locker: psycopg.Connection,
) -> None:
    public_id = service.create_key(actor="alice", description="orig").api_key.public_id
    # Another change to the description, not yet committed when alice saves hers.
    locker.execute(
        "UPDATE public.tensorzero_auth_api_key SET description = %s WHERE public_id = %s",
        ["B", public_id],
    )
    while_locked(
        locker,
        lambda: service.set_description(actor="alice", public_id=public_id, description="A"),
    )
    assert ApiKey.objects.get(public_id=public_id).description == "A"
    event = AuditEvent.objects.get(action=AuditEvent.Action.DESCRIBE)
    assert event.detail == {"before": "B", "after": "A"}


def test_concurrent_edits_leave_an_unbroken_history() -> None:
    public_id = service.create_key(actor="alice", description="orig").api_key.public_id
    barrier = threading.Barrier(3)

    def edit(text: str) -> None:
        barrier.wait()
        try:
            service.set_description(actor=text, public_id=public_id, description=text)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=edit, args=(text,)) for text in "ABC"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    history = [
        event.detail
        for event in AuditEvent.objects.filter(action=AuditEvent.Action.DESCRIBE).order_by("id")
    ]
    assert len(history) == 3
    assert history[0]["before"] == "orig"
    for earlier, later in zip(history, history[1:], strict=False):
        assert later["before"] == earlier["after"], history
    assert ApiKey.objects.get(public_id=public_id).description == history[-1]["after"]


def test_saving_an_unchanged_description_records_nothing() -> None:
    public_id = service.create_key(actor="alice", description="same").api_key.public_id
    for _ in range(2):
        key = service.set_description(actor="alice", public_id=public_id, description="same")
        assert key.description == "same"
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DESCRIBE).exists()


def test_a_disable_that_waited_for_a_lock_is_stamped_when_it_took_effect(
    locker: psycopg.Connection,
) -> None:
    public_id = service.create_key(actor="alice").api_key.public_id
    locker.execute(
        "SELECT 1 FROM public.tensorzero_auth_api_key WHERE public_id = %s FOR UPDATE", [public_id]
    )
    waited_from = timezone.now()
    while_locked(locker, lambda: service.disable_key(actor="alice", public_id=public_id), 1.0)
    disabled_at = ApiKey.objects.get(public_id=public_id).disabled_at
    assert disabled_at is not None
    # Held a second after the disable began waiting: stamped after that, not when it began.
    assert disabled_at - waited_from > timedelta(seconds=0.9), disabled_at - waited_from


@pytest.fixture
def impatient(db: None) -> Iterator[Client]:
    """A signed-in admin whose requests wait 0.3 s for a lock (not the 3 s of settings),
    set on this thread's connection, which the test client's requests use; reset after."""
    admin = User.objects.create_superuser("impatient", password="unused-password-123")
    client = Client(raise_request_exception=False)  # a view's error: the 5xx page
    client.force_login(admin)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '300ms'")
    try:
        yield client
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
            cursor.execute("RESET statement_timeout")


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_write_that_cannot_get_its_lock_says_the_database_is_busy(
    impatient: Client, locker: psycopg.Connection, htmx: bool
) -> None:
    """Found by a probe: a lock timeout was answered "The database cannot be reached"."""
    created = service.create_key(actor="alice")
    public_id = created.api_key.public_id
    locker.execute(
        "SELECT 1 FROM public.tensorzero_auth_api_key WHERE public_id = %s FOR UPDATE", [public_id]
    )
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    answer = impatient.post(f"/api-keys/{public_id}/disable", **headers)
    locker.rollback()
    body = answer.content.decode()
    assert answer.status_code == 503 and answer["Retry-After"] == "5"
    assert "The database is busy" in body and "Another change held" in body, body
    assert "cannot be reached" not in body and "TENSORZERO_POSTGRES_URL" not in body
    assert "Nothing was changed." in body
    assert (answer.get("HX-Retarget") == "#modal-body") is htmx
    assert gateway_accepts(created.secret)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DISABLE).exists()


def test_a_page_past_the_statement_timeout_says_the_database_is_busy(
    impatient: Client, locker: psycopg.Connection
) -> None:
    service.create_key(actor="alice")
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = 0")  # the statement timeout is what ends the wait
        cursor.execute("SET statement_timeout = '300ms'")
    locker.execute("LOCK TABLE public.tensorzero_auth_api_key IN ACCESS EXCLUSIVE MODE")
    answer = impatient.get("/api-keys")
    locker.rollback()
    body = answer.content.decode()
    assert answer.status_code == 503
    assert "The database is busy" in body and "did not finish this in the time" in body, body
    assert impatient.get("/api-keys").status_code == 200  # once the lock is gone
