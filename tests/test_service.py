"""keys.service against a real PostgreSQL: exactly what the gateway reads."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from keys import service, tokens
from keys.models import ApiKey, AuditEvent
from tests.conftest import gateway_accepts

pytestmark = pytest.mark.django_db


def at_once(count: int, call: Callable[[], None], expected: type[Exception]) -> list[str]:
    """Run `call` from `count` threads released together; "ok" or "refused" for each."""
    barrier = threading.Barrier(count)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        try:
            call()
            outcomes.append("ok")
        except expected:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(outcomes)


def test_created_key_is_stored_as_the_gateway_expects() -> None:
    created = service.create_key(actor="alice", description="Billing")
    row = ApiKey.objects.get(public_id=created.api_key.public_id)
    public_id, long_key = created.secret.split("-")[2:]
    assert row.public_id == public_id
    assert row.hash == tokens.hash_long_key(long_key)
    assert (row.organization, row.workspace) == ("default", "default")
    assert row.description == "Billing"
    assert row.expires_at is None and row.disabled_at is None
    assert abs(row.created_at - timezone.now()) < timedelta(seconds=5)
    assert row.updated_at == row.created_at


def test_new_key_is_accepted_by_the_gateways_lookup() -> None:
    created = service.create_key(actor="alice")
    assert gateway_accepts(created.secret)


def test_disabled_key_is_refused_by_the_gateways_lookup() -> None:
    created = service.create_key(actor="alice")
    service.disable_key(actor="alice", public_id=created.api_key.public_id)
    assert not gateway_accepts(created.secret)


def test_expired_key_is_refused_by_the_gateways_lookup() -> None:
    created = service.create_key(actor="alice", expires_at=timezone.now() + timedelta(hours=1))
    assert gateway_accepts(created.secret)
    ApiKey.objects.filter(pk=created.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert not gateway_accepts(created.secret)


def test_wrong_secret_for_a_real_public_id_is_refused() -> None:
    created = service.create_key(actor="alice")
    forged = created.secret[:-1] + ("A" if created.secret[-1] != "A" else "B")
    assert not gateway_accepts(forged)


def test_past_expiration_is_refused_and_nothing_written() -> None:
    with pytest.raises(service.ServiceError, match="Expiration must be in the future."):
        service.create_key(actor="alice", expires_at=timezone.now() - timedelta(minutes=1))
    assert ApiKey.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_empty_description_is_stored_as_null() -> None:
    created = service.create_key(actor="alice", description="   ")
    assert ApiKey.objects.get(pk=created.api_key.pk).description is None


@pytest.mark.parametrize(
    ("description", "message"),
    [("x" * 256, "at most 255"), ("a\x00b", "NUL")],
)
def test_bad_description_is_refused(description: str, message: str) -> None:
    with pytest.raises(service.ServiceError, match=message):
        service.create_key(actor="alice", description=description)
    assert ApiKey.objects.count() == 0


def test_disable_keeps_the_first_time_and_second_is_a_no_op() -> None:
    created = service.create_key(actor="alice")
    key, changed = service.disable_key(actor="alice", public_id=created.api_key.public_id)
    assert changed and key.disabled_at is not None
    first = key.disabled_at
    key, changed = service.disable_key(actor="bob", public_id=created.api_key.public_id)
    assert not changed
    assert key.disabled_at == first
    assert AuditEvent.objects.filter(action="disable").count() == 1


def make_old(api_key: ApiKey) -> None:
    """Backdate updated_at, so that a write's own timestamp is told apart from it."""
    ApiKey.objects.filter(pk=api_key.pk).update(updated_at=timezone.now() - timedelta(days=1))


def test_disable_sets_updated_at_to_disabled_at() -> None:
    created = service.create_key(actor="alice")
    make_old(created.api_key)
    key, _ = service.disable_key(actor="alice", public_id=created.api_key.public_id)
    assert key.updated_at == key.disabled_at
    assert key.updated_at > timezone.now() - timedelta(minutes=1)


@pytest.mark.parametrize("public_id", ["nosuchkey123", "short", "bad\x00id12345", ""])
def test_unknown_public_id_is_key_not_found(public_id: str) -> None:
    with pytest.raises(service.KeyNotFound):
        service.disable_key(actor="alice", public_id=public_id)


def test_set_description_writes_description_and_updated_at() -> None:
    created = service.create_key(actor="alice", description="old")
    make_old(created.api_key)
    key = service.set_description(
        actor="alice", public_id=created.api_key.public_id, description="new"
    )
    assert key.description == "new"
    assert key.updated_at > timezone.now() - timedelta(minutes=1)
    event = AuditEvent.objects.get(action="describe")
    assert event.detail == {"before": "old", "after": "new"}


def test_every_write_leaves_an_audit_record_without_secret_or_hash() -> None:
    created = service.create_key(actor="alice", description="d")
    service.set_description(actor="bob", public_id=created.api_key.public_id, description="e")
    service.disable_key(actor="carol", public_id=created.api_key.public_id)
    events = list(AuditEvent.objects.order_by("id").values_list("actor", "action", "public_id"))
    pid = created.api_key.public_id
    assert events == [("alice", "create", pid), ("bob", "describe", pid), ("carol", "disable", pid)]
    long_key = created.secret.split("-")[3]
    for event in AuditEvent.objects.all():
        assert long_key not in str(event.detail)
        assert created.api_key.hash not in str(event.detail)


def test_secret_is_nowhere_in_the_database() -> None:
    created = service.create_key(actor="alice", description="find me not")
    long_key = created.secret.split("-")[3]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('public', 't0admin') AND table_type = 'BASE TABLE'"
        )
        tables = cursor.fetchall()
        for schema, table in tables:
            cursor.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" t WHERE t::text LIKE %s',
                [f"%{long_key}%"],
            )
            assert cursor.fetchone() == (0,), f"{schema}.{table} holds the secret"


def test_public_id_collision_retries_with_a_fresh_key(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = service.create_key(actor="alice").api_key.public_id
    fresh = tokens.generate()
    keys = iter([f"sk-t0-{taken}-{'b' * 48}", fresh])
    monkeypatch.setattr(tokens, "generate", lambda: next(keys))
    created = service.create_key(actor="alice")
    assert created.secret == fresh
    assert ApiKey.objects.count() == 2


def test_same_form_token_twice_creates_one_key() -> None:
    token = uuid.uuid4()
    service.create_key(actor="alice", form_token=token)
    with pytest.raises(service.AlreadySubmitted, match="already submitted"):
        service.create_key(actor="alice", form_token=token)
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_same_form_token_from_two_requests_at_once_creates_one_key() -> None:
    token = uuid.uuid4()
    outcomes = at_once(
        2,
        lambda: service.create_key(actor="alice", form_token=token) and None,
        service.AlreadySubmitted,
    )
    assert outcomes == ["ok", "refused"]
    assert ApiKey.objects.count() == 1


def test_rotate_now_replaces_and_disables_the_old_key() -> None:
    old = service.create_key(actor="alice", description="billing")
    rotation = service.rotate_key(actor="bob", public_id=old.api_key.public_id)
    assert gateway_accepts(rotation.created.secret)
    assert not gateway_accepts(old.secret)
    assert rotation.created.api_key.description == "billing"
    assert rotation.old.disabled_at is not None
    event = AuditEvent.objects.get(action="rotate")
    assert (event.actor, event.public_id) == ("bob", old.api_key.public_id)
    assert event.detail["replaced_by"] == rotation.created.api_key.public_id


def test_rotate_with_grace_lets_the_old_key_expire_later() -> None:
    old = service.create_key(actor="alice")
    rotation = service.rotate_key(
        actor="alice", public_id=old.api_key.public_id, grace=timedelta(hours=1)
    )
    assert gateway_accepts(old.secret) and gateway_accepts(rotation.created.secret)
    expires_at = rotation.old.expires_at
    assert expires_at is not None
    assert abs(expires_at - (timezone.now() + timedelta(hours=1))) < timedelta(minutes=1)
    assert rotation.old.disabled_at is None


def test_rotate_grace_never_extends_an_earlier_expiry() -> None:
    soon = timezone.now() + timedelta(minutes=10)
    old = service.create_key(actor="alice", expires_at=soon)
    rotation = service.rotate_key(
        actor="alice", public_id=old.api_key.public_id, grace=timedelta(days=7)
    )
    assert rotation.old.expires_at == soon
    assert rotation.created.api_key.expires_at == soon  # the replacement keeps the policy


def test_rotate_same_form_twice_makes_one_replacement() -> None:
    old = service.create_key(actor="alice")
    token = uuid.uuid4()
    service.rotate_key(actor="alice", public_id=old.api_key.public_id, form_token=token)
    with pytest.raises(service.AlreadySubmitted):
        service.rotate_key(actor="alice", public_id=old.api_key.public_id, form_token=token)
    assert ApiKey.objects.count() == 2
    assert AuditEvent.objects.filter(action="rotate").count() == 1


def test_rotate_unknown_key_changes_nothing() -> None:
    with pytest.raises(service.KeyNotFound):
        service.rotate_key(actor="alice", public_id="nosuchkey123")
    assert ApiKey.objects.count() == 0


def test_rotating_a_disabled_key_is_refused_and_creates_nothing() -> None:
    old = service.create_key(actor="alice")
    service.disable_key(actor="alice", public_id=old.api_key.public_id)
    with pytest.raises(service.CannotRotate, match="disabling is final"):
        service.rotate_key(actor="alice", public_id=old.api_key.public_id)
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_of_one_key_make_one_replacement() -> None:
    public_id = service.create_key(actor="alice").api_key.public_id
    outcomes = at_once(
        3,
        lambda: (
            service.rotate_key(actor="alice", public_id=public_id, grace=timedelta(hours=1))
            and None
        ),
        service.CannotRotate,
    )
    assert outcomes == ["ok", "refused", "refused"]
    assert ApiKey.objects.count() == 2
