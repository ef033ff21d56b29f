"""The audit trail's filters and its streamed CSV / JSON-lines export."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client

from keys import service
from keys.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def history() -> dict[str, str]:
    a = service.create_key(actor="alice", description='=HYPERLINK("http://evil","x")')
    b = service.create_key(actor="bob", description="plain")
    service.set_description(actor="bob", public_id=b.api_key.public_id, description="@SUM(1)")
    service.disable_keys(
        actor="carol",
        public_ids=[a.api_key.public_id, b.api_key.public_id],
        reason="leaked",
        incident="leak-1",
    )
    AuditEvent.objects.create(actor="-2+3", action="describe", public_id=a.api_key.public_id)
    return {"a": a.api_key.public_id, "b": b.api_key.public_id}


def body(response) -> str:  # type: ignore[no-untyped-def]
    assert response.streaming
    return b"".join(response.streaming_content).decode()


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("actor=bob", 2),
        ("action=disable", 2),
        ("reason=leaked", 2),
        ("incident=leak-1", 2),
        ("actor=carol&action=create", 0),
        ("action=create", 2),
    ],
)
def test_audit_trail_filters(admin_client: Client, history, query: str, count: int) -> None:  # type: ignore[no-untyped-def]
    html = admin_client.get(f"/api-keys/audit?{query}").content.decode()
    assert html.count("<tr>") - 1 == count or (count == 0 and "Nothing recorded" in html)


def test_filters_combine_with_the_key(admin_client: Client, history) -> None:  # type: ignore[no-untyped-def]
    rows = body(
        admin_client.get(f"/api-keys/audit/export?format=jsonl&key={history['a']}&reason=leaked")
    )
    (record,) = [json.loads(line) for line in rows.splitlines()]
    assert record["public_id"] == history["a"] and record["incident"] == "leak-1"


@pytest.mark.parametrize("query", ["action=explode", "reason=bored", "key=short", "format=xml"])
def test_bad_filters_are_400(admin_client: Client, history, query: str) -> None:  # type: ignore[no-untyped-def]
    assert admin_client.get(f"/api-keys/audit/export?{query}").status_code == 400


@pytest.mark.parametrize("name", ["actor", "incident", "action", "reason", "key"])
@pytest.mark.parametrize("path", ["/api-keys/audit", "/api-keys/audit/export"])
def test_a_nul_byte_in_a_filter_is_400_in_words(
    admin_client: Client, history, name: str, path: str
) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL refuses NUL in text: asked as it came, this was a 500.
    response = admin_client.get(path, {name: "bob\x00"})
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_csv_export_is_streamed_and_neutralises_formulas(admin_client: Client, history) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.get("/api-keys/audit/export?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(body(response))))
    assert rows[0] == ["at", "actor", "action", "public_id", "reason", "incident", "detail"]
    assert len(rows) == 1 + AuditEvent.objects.count()
    actors = [row[1] for row in rows[1:]]
    assert "'-2+3" in actors and "-2+3" not in actors
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@"))


def test_csv_neutralises_each_formula_start() -> None:
    from keys.views import _csv_cell

    for start in "=+-@":
        assert _csv_cell(start + "1") == "'" + start + "1"
    assert _csv_cell("2026-11-29") == "2026-11-29"


def test_jsonl_export_keeps_values_exact(admin_client: Client, history) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.get("/api-keys/audit/export?format=jsonl&actor=bob&action=describe")
    assert response["Content-Type"].startswith("application/x-ndjson")
    (record,) = [json.loads(line) for line in body(response).splitlines()]
    assert record["detail"] == {"before": "plain", "after": "@SUM(1)"}


def test_audit_page_links_the_export_with_its_filters(admin_client: Client, history) -> None:  # type: ignore[no-untyped-def]
    html = admin_client.get("/api-keys/audit?reason=leaked").content.decode()
    assert 'href="/api-keys/audit/export?format=csv&amp;reason=leaked"' in html
    assert "?incident=leak-1" in html


def test_export_needs_the_audit_permission(viewer_client: Client) -> None:
    from django.contrib.auth.models import Permission

    viewer = viewer_client.get("/api-keys").wsgi_request.user
    viewer.user_permissions.remove(Permission.objects.get(codename="view_auditevent"))
    assert viewer_client.get("/api-keys/audit/export").status_code == 403


def test_a_secret_another_tool_stored_never_reaches_an_export(admin_client: Client) -> None:
    from keys import tokens

    leaked = tokens.generate()
    AuditEvent.objects.create(
        actor="other-tool",
        action="describe",
        public_id="abcdefghijkl",
        detail={"before": None, "after": f"prod key {leaked}"},
    )
    for kind in ("csv", "jsonl"):
        exported = body(admin_client.get(f"/api-keys/audit/export?format={kind}"))
        assert tokens.parse(leaked).long_key not in exported
        assert "[secret hidden]" in exported
