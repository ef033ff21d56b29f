"""service.disable_keys: many keys in one transaction, with reason and incident."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from keys import service
from keys.models import ApiKey, AuditEvent
from tests.conftest import gateway_accepts

pytestmark = pytest.mark.django_db


def test_disables_every_key_given_with_one_reason_and_incident() -> None:
    made = [service.create_key(actor="t") for _ in range(3)]
    kept = service.create_key(actor="t")
    ids = [m.api_key.public_id for m in made]
    result = service.disable_keys(actor="alice", public_ids=ids, reason="leaked", incident="inc-1")
    assert list(result.disabled) == ids
    assert not any(gateway_accepts(m.secret) for m in made)
    assert gateway_accepts(kept.secret)
    events = AuditEvent.objects.filter(action="disable").order_by("id")
    assert [(e.public_id, e.actor, e.reason, e.incident) for e in events] == [
        (public_id, "alice", "leaked", "inc-1") for public_id in ids
    ]


def test_keeps_first_disable_time_and_reports_unknown_ids() -> None:
    first = service.create_key(actor="t").api_key.public_id
    before, _ = service.disable_key(actor="t", public_id=first)
    fresh = service.create_key(actor="t").api_key.public_id
    result = service.disable_keys(
        actor="t", public_ids=[first, "nosuchkey123", fresh, "bad id"], reason="leaked"
    )
    assert result.already == {first: before.disabled_at}
    assert list(result.disabled) == [fresh]
    assert result.unknown == ["nosuchkey123", "bad id"]
    assert result.outcome(first) == ("already disabled", before.disabled_at)
    # Only the key this call disabled gets a record: the first one's stays the only one.
    assert AuditEvent.objects.filter(public_id=first, action="disable").count() == 1


def test_statement_count_does_not_grow_with_the_keys() -> None:
    ids = [service.create_key(actor="t").api_key.public_id for _ in range(50)]
    with CaptureQueriesContext(connection) as queries:
        service.disable_keys(actor="t", public_ids=ids, reason="leaked", incident="x")
    # Up to a slice of keys (service.SLICE): the ids read, their lock in a savepoint, the
    # UPDATE, the read after it, the audit records, the outer savepoint and its release.
    assert len(queries) <= 9, [q["sql"][:80] for q in queries]
    assert ApiKey.objects.filter(disabled_at__isnull=True).count() == 0


def test_big_disables_go_in_slices_with_the_same_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a probe: 100,000 keys were three statements of up to 10.7 MB, which under
    load outlasted the statement timeout, and nothing was disabled. Slices of 2 here stand
    for slices of 10,000."""
    made = [service.create_key(actor="t").api_key.public_id for _ in range(7)]
    before, _ = service.disable_key(actor="t", public_id=made[3])
    monkeypatch.setattr(service, "SLICE", 2)
    asked = [*reversed(made), "nosuchkey123"]
    with CaptureQueriesContext(connection) as queries:
        result = service.disable_keys(actor="t", public_ids=asked, reason="leaked", incident="s")
    assert list(result.disabled) == [p for p in asked if p in made and p != made[3]]
    assert result.already == {made[3]: before.disabled_at} and result.unknown == ["nosuchkey123"]
    assert not ApiKey.objects.filter(disabled_at__isnull=True).exists()
    events = AuditEvent.objects.filter(incident="s").order_by("id")
    assert [e.public_id for e in events] == list(result.disabled)
    longest = max(len(q["sql"]) for q in queries)
    assert longest < 2_000, longest  # no statement holds more than a slice of keys
    locks = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"]]
    assert len(locks) == 4  # 7 keys, 2 a slice


def test_unknown_reason_changes_nothing() -> None:
    public_id = service.create_key(actor="t").api_key.public_id
    with pytest.raises(service.ServiceError):
        service.disable_keys(actor="t", public_ids=[public_id], reason="bored")
    assert ApiKey.objects.get(public_id=public_id).disabled_at is None


def test_a_failure_inside_leaves_every_key_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [service.create_key(actor="t").api_key.public_id for _ in range(3)]

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(AuditEvent.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        service.disable_keys(actor="t", public_ids=ids, reason="leaked")
    assert ApiKey.objects.filter(public_id__in=ids, disabled_at__isnull=True).count() == 3


def test_incident_references_differ() -> None:
    assert service.new_incident() != service.new_incident()
    assert service.new_incident().startswith("leak-")


# The list: tick rows, one confirmation naming them, then one disable for all.

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_list_rows_have_checkboxes_joined_to_one_form(admin_client) -> None:  # type: ignore[no-untyped-def]
    live = service.create_key(actor="t").api_key.public_id
    dead = service.create_key(actor="t").api_key.public_id
    service.disable_key(actor="t", public_id=dead)
    html = admin_client.get("/api-keys").content.decode()
    assert '<form id="keys-bulk"' in html and 'action="/api-keys/disable-selected"' in html
    assert f'name="public_id" value="{live}" form="keys-bulk"' in html
    assert f'value="{dead}" form="keys-bulk"' not in html  # nothing left to disable there


def test_viewer_sees_no_selection(viewer_client) -> None:  # type: ignore[no-untyped-def]
    service.create_key(actor="t")
    html = viewer_client.get("/api-keys").content.decode()
    assert "keys-bulk" not in html


def test_selected_keys_confirm_then_disable_without_javascript(admin_client) -> None:  # type: ignore[no-untyped-def]
    made = [service.create_key(actor="t", description=f"svc {i}") for i in range(3)]
    ids = [m.api_key.public_id for m in made[:2]]
    confirm = admin_client.post("/api-keys/disable-selected", {"public_id": ids})
    html = confirm.content.decode()
    assert confirm.status_code == 200 and "Disable 2 API keys" in html
    assert all(f"<code>{p}</code>" in html for p in ids)
    assert made[2].api_key.public_id not in html
    assert gateway_accepts(made[0].secret)  # nothing yet

    done = admin_client.post(
        "/api-keys/disable-selected", {"public_id": ids, "confirmed": "yes"}, follow=True
    )
    assert "2 API keys disabled" in done.content.decode()
    assert not gateway_accepts(made[0].secret) and not gateway_accepts(made[1].secret)
    assert gateway_accepts(made[2].secret)
    assert AuditEvent.objects.filter(action="disable").count() == 2


def test_selected_keys_by_htmx_answer_in_the_dialog(admin_client) -> None:  # type: ignore[no-untyped-def]
    public_id = service.create_key(actor="t").api_key.public_id
    confirm = admin_client.post("/api-keys/disable-selected", {"public_id": [public_id]}, **HTMX)
    assert confirm.content.decode().lstrip().startswith('<section class="panel">')
    done = admin_client.post(
        "/api-keys/disable-selected", {"public_id": [public_id], "confirmed": "yes"}, **HTMX
    )
    assert done["HX-Trigger"] == "keysChanged"
    assert f"1 API key disabled ({public_id})" in done.content.decode()


def test_nothing_selected_or_bad_ids_are_400(admin_client) -> None:  # type: ignore[no-untyped-def]
    assert admin_client.post("/api-keys/disable-selected", {}).status_code == 400
    bad = admin_client.post("/api-keys/disable-selected", {"public_id": ["x' OR 1=1"]})
    assert bad.status_code == 400


def test_viewer_cannot_disable_selected(viewer_client) -> None:  # type: ignore[no-untyped-def]
    key = service.create_key(actor="t")
    response = viewer_client.post(
        "/api-keys/disable-selected", {"public_id": [key.api_key.public_id], "confirmed": "yes"}
    )
    assert response.status_code == 403 and gateway_accepts(key.secret)


def test_as_many_keys_as_a_list_page_shows_can_be_disabled_at_once(admin_client) -> None:  # type: ignore[no-untyped-def]
    """A ?limit=10000 page offers 10,000 checkboxes: each is a form field of its own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO public.tensorzero_auth_api_key (organization, workspace, public_id, hash)"
            " SELECT 'default', 'default',"
            "  translate(encode(substring(r FROM 1 FOR 9), 'base64'), '+/', 'Pq'),"
            "  encode(sha256(r), 'hex')"
            " FROM (SELECT sha256(uuid_send(gen_random_uuid())) AS r"
            "       FROM generate_series(1, %s)) AS source",
            [service.MAX_BULK],
        )
    ids = list(ApiKey.objects.values_list("public_id", flat=True))
    assert len(ids) == service.MAX_BULK
    form = {"public_id": ids, "confirmed": "yes", "csrfmiddlewaretoken": "x" * 64}
    done = admin_client.post("/api-keys/disable-selected", form, **HTMX)
    assert done.status_code == 200, done.content[:300]
    assert f"{service.MAX_BULK} API keys disabled" in done.content.decode()
    assert not ApiKey.objects.filter(disabled_at__isnull=True).exists()
    assert AuditEvent.objects.filter(action="disable").count() == service.MAX_BULK
