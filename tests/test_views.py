"""Every /api-keys view through Django's test client: full page, htmx partial, bad input."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, timedelta
from html import unescape

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from keys import service
from keys.models import ApiKey, AuditEvent
from tests.conftest import gateway_accepts

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
KEY_RE = re.compile(r"sk-t0-[A-Za-z0-9]{12}-[A-Za-z0-9]{48}")


def new_form(client: Client, **fields: str) -> dict[str, str]:
    """The create form's fields as the page renders them, with its one-time token."""
    page = client.get("/api-keys/new").content.decode()
    token = re.search(r'name="form_token" value="([0-9a-f-]{36})"', page)
    assert token, page
    return {"form_token": token.group(1), "description": "", "expiration": "never", **fields}


def make_keys(count: int) -> list[str]:
    return [
        service.create_key(actor="t", description=f"k{i}").api_key.public_id for i in range(count)
    ]


# The list


def test_root_redirects_to_the_keys_page(admin_client: Client) -> None:
    response = admin_client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/api-keys"


def test_anonymous_is_sent_to_sign_in(client: Client) -> None:
    response = client.get("/api-keys")
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)


def test_list_shows_heading_columns_and_rows(admin_client: Client) -> None:
    service.create_key(actor="t", description="Billing")
    service.create_key(actor="t", expires_at=timezone.now() + timedelta(days=7))
    html = admin_client.get("/api-keys").content.decode()
    assert "<h1>TensorZero API Keys</h1>" in html
    for column in ("Public ID", "Description", "Status", "Expires", "Created"):
        assert f">{column}</th>" in html
    descriptions = re.findall(r'<td class="description">(.*?)</td>', html)
    assert [unescape(cell) for cell in descriptions] == ["—", "Billing"]  # newest first
    assert ">Never<" in html
    assert "Generate API Key" in html


def test_list_is_newest_first(admin_client: Client) -> None:
    older, newer = make_keys(2)
    html = admin_client.get("/api-keys").content.decode()
    assert html.index(newer) < html.index(older)


def test_list_marks_disabled_and_expired_keys(admin_client: Client) -> None:
    disabled = service.create_key(actor="t").api_key
    service.disable_key(actor="t", public_id=disabled.public_id)
    expired = service.create_key(actor="t", expires_at=timezone.now() + timedelta(hours=1)).api_key
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    html = admin_client.get("/api-keys").content.decode()
    disabled_row = html[html.index(f'id="key-{disabled.public_id}"') :].split("</tr>")[0]
    expired_row = html[html.index(f'id="key-{expired.public_id}"') :].split("</tr>")[0]
    assert "Disabled<span" in disabled_row and "since" in disabled_row
    assert "/disable" not in disabled_row  # no disable action on a disabled key
    assert "Expired<span" in expired_row


def test_rows_escape_descriptions(admin_client: Client) -> None:
    service.create_key(actor="t", description='<script>alert(1)</script> & "q"')
    html = admin_client.get("/api-keys").content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;" in html


def test_rows_escape_a_public_id_another_tool_wrote(admin_client: Client) -> None:
    """public_id is CHAR(12) to the database: another tool can store markup in it, and
    it appears a dozen times in a row (id, links, hidden texts, checkbox)."""
    api_key = service.create_key(actor="t").api_key
    hostile = "<i>\"x'&</i>"
    ApiKey.objects.filter(pk=api_key.pk).update(public_id=hostile)
    html = admin_client.get("/api-keys").content.decode()
    assert "<i>" not in html and "</i>" not in html
    row = html[html.index('id="key-&lt;i&gt;') :].split("</tr>")[0]
    # id, code, checkbox value and label, and the links' hidden texts
    assert row.count("&lt;i&gt;&quot;x&#x27;&amp;&lt;/i&gt;") == 8, row
    # In the links' paths it is percent-encoded: a "/" in it cannot lead elsewhere.
    assert row.count('href="/api-keys/%3Ci%3E%22x%27%26%3C%2Fi%3E') == 4, row


PLACE = "<!-- t0admin: the key rows"  # how every rows.place() begins


def test_the_rows_are_put_in_their_table_once_the_page_is_rendered(
    admin_client: Client,
) -> None:
    """keys/rows.py, splice: the table's rows go in where list.html leaves rows.place()."""
    make_keys(2)
    service.create_key(actor="t", description=PLACE)  # shown, never replaced
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):  # the page, and its table alone
        response = admin_client.get("/api-keys", **headers)
        html = response.content.decode()
        body = html.split('<tbody id="key-rows"', 1)[1].split("</tbody>", 1)[0]
        assert body.count("<tr ") == 3
        assert PLACE not in html
        assert "&lt;!-- t0admin: the key rows" in body  # the description, escaped
        assert response["Content-Length"] == str(len(response.content))
    assert PLACE not in admin_client.get("/api-keys?status=expired").content.decode()


def test_a_page_without_a_place_for_its_rows_is_an_error_not_an_empty_table() -> None:
    from django.http import HttpResponse

    from keys.rows import place, splice

    api_key = service.create_key(actor="t").api_key
    with pytest.raises(RuntimeError):
        splice(
            HttpResponse("<tbody></tbody>"), place(), [api_key], can_write=False, api_keys_url="/"
        )
    empty = HttpResponse("<p>No API keys.</p>")
    assert splice(empty, place(), [], can_write=False, api_keys_url="/") is empty


def test_row_links_are_plain_links_under_one_set_of_htmx_attributes(admin_client: Client) -> None:
    make_keys(3)
    html = admin_client.get("/api-keys").content.decode()
    body = html[html.index('<tbody id="key-rows"') : html.index("</tbody>")]
    tbody = body[: body.index(">") + 1]
    assert 'hx-boost="true"' in tbody and 'hx-target="#modal-body"' in tbody
    assert "hx-" not in body[len(tbody) :]  # not one per link: the tbody's apply to all
    assert body.count("/description") == 3


def test_row_dates_read_as_before(admin_client: Client) -> None:
    """The rows format dates themselves; they must read as Django's date filter did."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from django.utils import dateformat

    expires = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
    key = service.create_key(actor="t", expires_at=expires).api_key
    admin_client.cookies["t0admin_tz"] = "America/New_York"
    html = admin_client.get("/api-keys").content.decode()
    for value in (expires, ApiKey.objects.get(pk=key.pk).created_at):
        local = value.astimezone(ZoneInfo("America/New_York"))
        shown = dateformat.format(local, "Y-m-d H:i T")
        assert f'<time datetime="{dateformat.format(local, "c")}">{shown}</time>' in html
    assert "2031-06-01 08:00 EDT" in html


def test_edit_link_by_htmx_replaces_its_own_row(admin_client: Client) -> None:
    public_id = make_keys(1)[0]
    response = admin_client.get(f"/api-keys/{public_id}/description", **HTMX)
    assert response["HX-Retarget"] == f"#key-{public_id}"
    assert response["HX-Reswap"] == "outerHTML"
    assert response.content.decode().lstrip().startswith(f'<tr id="key-{public_id}"')


def test_list_htmx_request_gets_only_the_table(admin_client: Client) -> None:
    make_keys(1)
    html = admin_client.get("/api-keys", **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="keys-table"')
    assert "<html" not in html and "<h1>" not in html


def test_empty_state(admin_client: Client) -> None:
    html = admin_client.get("/api-keys").content.decode()
    assert "No API keys" in html


def test_dates_render_in_the_viewers_time_zone(admin_client: Client) -> None:
    service.create_key(actor="t")
    admin_client.cookies["t0admin_tz"] = "Asia/Tokyo"
    html = admin_client.get("/api-keys").content.decode()
    assert "JST" in html and "Times in Asia/Tokyo" in html


def test_forged_time_zone_cookie_falls_back_to_utc(admin_client: Client) -> None:
    admin_client.cookies["t0admin_tz"] = "../../etc/passwd"
    response = admin_client.get("/api-keys")
    assert response.status_code == 200
    assert "Times in UTC" in response.content.decode()


# Paging


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "10001", "1.5", "１"])
def test_bad_limit_is_400_with_a_message(admin_client: Client, limit: str) -> None:
    response = admin_client.get("/api-keys", {"limit": limit})
    assert response.status_code == 400
    assert "limit must be a whole number from 1 to 10,000" in response.content.decode()


def test_a_refusal_of_an_htmx_request_goes_into_the_dialog(admin_client: Client) -> None:
    # Swapped over the table that asked, it would take the table's id with it.
    response = admin_client.get(
        "/api-keys", {"limit": "0"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="keys-table"
    )
    assert response.status_code == 400
    assert (response["HX-Retarget"], response["HX-Reswap"]) == ("#modal-body", "innerHTML")
    assert "<html" not in response.content.decode()


def test_limit_of_ten_thousand_is_allowed(admin_client: Client) -> None:
    assert admin_client.get("/api-keys", {"limit": "10000"}).status_code == 200


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="key-([A-Za-z0-9]{12})"', html)


def link(html: str, rel: str) -> str:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', html)
    assert found, f"no {rel} link"
    return "/api-keys" + found.group(1).replace("&amp;", "&")


def test_pages_through_with_limit_two(admin_client: Client) -> None:
    ids = make_keys(5)[::-1]  # newest first
    first = admin_client.get("/api-keys", {"limit": 2}).content.decode()
    assert rows(first) == ids[0:2]
    assert 'rel="prev"' not in first
    second = admin_client.get(link(first, "next")).content.decode()
    assert rows(second) == ids[2:4]
    back = admin_client.get(link(second, "prev")).content.decode()
    assert rows(back) == ids[0:2]
    assert 'rel="prev"' not in back
    last = admin_client.get(link(second, "next")).content.decode()
    assert rows(last) == ids[4:5]
    assert 'rel="next"' not in last
    assert "limit=2" in link(last, "prev")


def test_cursor_links_show_public_ids_never_database_ids(admin_client: Client) -> None:
    make_keys(3)
    html = admin_client.get("/api-keys", {"limit": 1}).content.decode()
    cursor = re.search(r'rel="next" href="\?before=([^&"]+)', html).group(1)
    assert ApiKey.objects.filter(public_id=cursor).exists()


@pytest.mark.parametrize(
    "query",
    [
        {"before": "nosuchkey123"},
        {"after": "nosuchkey123"},
        {"after": "x\x00y"},
        {"before": "a", "after": "b"},
    ],
)
def test_bad_cursor_is_400(admin_client: Client, query: dict[str, str]) -> None:
    make_keys(2)
    response = admin_client.get("/api-keys", query)
    assert response.status_code == 400
    assert b"listed key" in response.content or b"not both" in response.content


def test_a_cursor_with_nothing_beyond_it_is_an_empty_page_not_an_error(
    admin_client: Client,
) -> None:
    oldest, newest = make_keys(2)
    after_oldest = admin_client.get("/api-keys", {"before": oldest})
    assert after_oldest.status_code == 200
    assert rows(after_oldest.content.decode()) == []
    assert "No API keys on this page" in after_oldest.content.decode()
    before_newest = admin_client.get("/api-keys", {"after": newest})  # that is the first page
    assert before_newest.status_code == 200
    assert rows(before_newest.content.decode()) == [newest, oldest]


# Generate


def test_new_key_form_full_page_and_dialog_partial(admin_client: Client) -> None:
    full = admin_client.get("/api-keys/new").content.decode()
    partial = admin_client.get("/api-keys/new", **HTMX).content.decode()
    for html in (full, partial):
        assert ">Generate API Key</h2>" in html
        assert 'name="description"' in html and 'maxlength="255"' in html
        assert "Generate Key</button>" in html
        for option in ("No expiration", "7 days", "30 days", "90 days", "1 year", "Custom"):
            assert f">{option}</option>" in html
    assert "<html" in full and "<html" not in partial


def test_generate_shows_the_key_once_and_the_gateway_accepts_it(admin_client: Client) -> None:
    response = admin_client.post("/api-keys/new", new_form(admin_client, description="Billing"))
    assert response.status_code == 200
    html = response.content.decode()
    keys = set(KEY_RE.findall(html))
    assert len(keys) == 1
    key = keys.pop()
    assert "API Key Generated" in html
    assert "cannot be seen again" in html
    assert f"export TENSORZERO_API_KEY={key}" in html
    assert "http://localhost:3000" in html and "/openai/v1/chat/completions" in html
    assert "Authorization: Bearer" in html
    assert "no-store" in response["Cache-Control"]
    assert gateway_accepts(key)
    assert ApiKey.objects.get().description == "Billing"
    # Once means once: the list does not hold it.
    assert key not in admin_client.get("/api-keys").content.decode()


def test_generate_uses_the_configured_gateway_url(admin_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.GATEWAY_URL = "https://gw.example.test"
    html = admin_client.post("/api-keys/new", new_form(admin_client)).content.decode()
    assert "export TENSORZERO_GATEWAY_URL=https://gw.example.test" in html


def test_generate_by_htmx_returns_the_partial_and_refreshes_the_list(admin_client: Client) -> None:
    response = admin_client.post("/api-keys/new", new_form(admin_client), **HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "keysChanged"
    assert "<html" not in response.content.decode()
    assert len(KEY_RE.findall(response.content.decode())) >= 1


@pytest.mark.parametrize(("preset", "days"), [("7d", 7), ("30d", 30), ("90d", 90), ("1y", 365)])
def test_expiration_presets(admin_client: Client, preset: str, days: int) -> None:
    admin_client.post("/api-keys/new", new_form(admin_client, expiration=preset))
    expires_at = ApiKey.objects.get().expires_at
    assert expires_at is not None
    assert abs(expires_at - (timezone.now() + timedelta(days=days))) < timedelta(minutes=1)


def test_custom_expiration_is_read_in_the_viewers_time_zone(admin_client: Client) -> None:
    admin_client.cookies["t0admin_tz"] = "America/New_York"
    fields = new_form(admin_client, expiration="custom", expires_at="2031-06-01T12:00")
    assert admin_client.post("/api-keys/new", fields).status_code == 200
    expires_at = ApiKey.objects.get().expires_at
    assert expires_at is not None
    assert expires_at.astimezone(UTC).isoformat() == "2031-06-01T16:00:00+00:00"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"expiration": "custom", "expires_at": "2001-01-01T00:00"},
            "Expiration must be in the future.",
        ),
        ({"expiration": "custom", "expires_at": "tomorrow"}, "Enter a date and time"),
        ({"expiration": "custom", "expires_at": "2026-13-45T25:61"}, "Enter a date and time"),
        ({"expiration": "custom", "expires_at": "99999-01-01T00:00"}, "Enter a date and time"),
        ({"expiration": "custom", "expires_at": "9999-12-31T23:59"}, "within 100 years"),
        ({"expiration": "custom", "expires_at": ""}, "Choose when the key should expire."),
        ({"expiration": "forever"}, "Select a valid choice"),
        ({"description": "x" * 256}, "at most 255 characters"),
        ({"description": "nul\x00byte"}, "Null characters are not allowed."),
        ({"form_token": ""}, "reload the page"),
        ({"form_token": "not-a-uuid"}, "reload the page"),
    ],
)
def test_bad_input_is_400_next_to_the_field_and_nothing_is_created(
    admin_client: Client, fields: dict[str, str], message: str
) -> None:
    response = admin_client.post("/api-keys/new", new_form(admin_client, **fields))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not KEY_RE.search(response.content.decode())
    assert ApiKey.objects.count() == 0


def test_past_expiration_is_shown_next_to_the_field(admin_client: Client) -> None:
    fields = new_form(admin_client, expiration="custom", expires_at="2001-01-01T00:00")
    html = admin_client.post("/api-keys/new", fields, **HTMX).content.decode()
    field = html[html.index('for="id_expires_at"') :]
    assert field.index("Expiration must be in the future.") < field.index("</div>")


def test_double_submitted_form_creates_one_key(admin_client: Client) -> None:
    fields = new_form(admin_client)
    first = admin_client.post("/api-keys/new", fields)
    second = admin_client.post("/api-keys/new", fields)
    assert first.status_code == 200
    assert second.status_code == 409
    assert "already submitted" in second.content.decode()
    assert f"disable key {ApiKey.objects.get().public_id}" in second.content.decode()
    assert not KEY_RE.search(second.content.decode())
    assert ApiKey.objects.count() == 1


def test_secret_never_reaches_session_messages_or_logs(
    admin_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = admin_client.post("/api-keys/new", new_form(admin_client))
    long_key = KEY_RE.search(response.content.decode()).group(0).split("-")[3]
    session = admin_client.session
    assert all(long_key not in str(value) for value in session.values())
    assert long_key not in caplog.text
    assert not list(response.wsgi_request._messages)  # type: ignore[attr-defined]
    assert "Location" not in response


def test_get_never_creates_a_key(admin_client: Client) -> None:
    admin_client.get("/api-keys/new", {"description": "x", "expiration": "never"})
    assert ApiKey.objects.count() == 0


# Disable


def test_disable_confirmation_names_the_key_and_the_ttl(admin_client: Client) -> None:
    public_id = make_keys(1)[0]
    for extra in ({}, HTMX):
        html = admin_client.get(f"/api-keys/{public_id}/disable", **extra).content.decode()
        assert f"Are you sure you want to disable the API key <code>{public_id}</code>?" in html
        assert "auth cache TTL (1 second by default)" in html
        assert "Disable Key</button>" in html
    assert ApiKey.objects.get().disabled_at is None


def test_disable_without_javascript_redirects_with_a_message(admin_client: Client) -> None:
    public_id = make_keys(1)[0]
    response = admin_client.post(f"/api-keys/{public_id}/disable", follow=True)
    assert response.redirect_chain == [("/api-keys", 302)]
    html = response.content.decode()
    assert f"API key {public_id} is disabled." in html
    assert ApiKey.objects.get().disabled_at is not None


def test_disable_by_htmx_answers_in_place(admin_client: Client) -> None:
    public_id = make_keys(1)[0]
    response = admin_client.post(f"/api-keys/{public_id}/disable", **HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "keysChanged"
    assert f"API key {public_id} is disabled." in response.content.decode()


def test_second_disable_says_so_and_keeps_the_first_time(admin_client: Client) -> None:
    public_id = make_keys(1)[0]
    admin_client.post(f"/api-keys/{public_id}/disable")
    first = ApiKey.objects.get().disabled_at
    response = admin_client.post(f"/api-keys/{public_id}/disable", follow=True)
    assert (
        f"API key {public_id} was already disabled; nothing changed." in response.content.decode()
    )
    assert ApiKey.objects.get().disabled_at == first


@pytest.mark.parametrize("public_id", ["nosuchkey123", "tooshort", "bad%00idxxxxx", "x" * 300])
def test_unknown_public_id_is_404_with_a_message(admin_client: Client, public_id: str) -> None:
    for url in (f"/api-keys/{public_id}/disable", f"/api-keys/{public_id}/description"):
        response = admin_client.post(url)
        assert response.status_code == 404
        assert "No API key has the public ID" in response.content.decode()


# Edit description


def test_edit_description_inline_by_htmx(admin_client: Client) -> None:
    public_id = service.create_key(actor="t", description="old").api_key.public_id
    edit = admin_client.get(f"/api-keys/{public_id}/description", **HTMX).content.decode()
    assert edit.lstrip().startswith(f'<tr id="key-{public_id}"')
    assert 'value="old"' in edit
    saved = admin_client.post(f"/api-keys/{public_id}/description", {"description": "new"}, **HTMX)
    html = saved.content.decode()
    assert html.lstrip().startswith(f'<tr id="key-{public_id}"')
    assert ">new<" in html
    assert ApiKey.objects.get().description == "new"


def test_edit_description_without_javascript(admin_client: Client) -> None:
    public_id = service.create_key(actor="t", description="old").api_key.public_id
    page = admin_client.get(f"/api-keys/{public_id}/description").content.decode()
    assert "<html" in page and 'action="/api-keys/' in page
    response = admin_client.post(
        f"/api-keys/{public_id}/description", {"description": "new"}, follow=True
    )
    assert response.redirect_chain == [("/api-keys", 302)]
    assert ApiKey.objects.get().description == "new"


def form_was(html: str) -> str:
    """The edit form's hidden `was`: the description as the form started from."""
    found = re.search(r'<input type="hidden" name="was" value="([^"]*)">', html)
    assert found, html
    return unescape(found.group(1))


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_an_edit_does_not_overwrite_unseen_a_change_made_since_its_form_opened(
    admin_client: Client, htmx: bool
) -> None:
    """Two admins edit one description: the second to save is told, not overwritten."""
    headers = HTMX if htmx else {}
    public_id = service.create_key(actor="t", description="orig").api_key.public_id
    url = f"/api-keys/{public_id}/description"
    was = form_was(admin_client.get(url, **headers).content.decode())
    assert was == "orig"
    service.set_description(actor="bob", public_id=public_id, description="bob's <b>")
    refused = admin_client.post(url, {"description": "mine", "was": was}, **headers)
    html = refused.content.decode()
    assert refused.status_code == 409
    assert "someone else changed this description to “bob&#x27;s &lt;b&gt;”" in html, html
    assert 'value="mine"' in html  # the editor's text is kept in the box
    assert ApiKey.objects.get().description == "bob's <b>"
    # Saving again, from the form as it came back, replaces bob's text knowingly.
    saved = admin_client.post(url, {"description": "mine", "was": form_was(html)}, **headers)
    assert saved.status_code in (200, 302)
    assert ApiKey.objects.get().description == "mine"
    history = [e.detail for e in AuditEvent.objects.filter(action="describe").order_by("id")]
    assert history == [
        {"before": "orig", "after": "bob's <b>"},
        {"before": "bob's <b>", "after": "mine"},
    ]


def test_an_edit_of_a_description_nobody_changed_saves(admin_client: Client) -> None:
    public_id = service.create_key(actor="t").api_key.public_id
    url = f"/api-keys/{public_id}/description"
    was = form_was(admin_client.get(url).content.decode())
    assert was == ""
    assert admin_client.post(url, {"description": "first", "was": was}).status_code == 302
    assert ApiKey.objects.get().description == "first"


def test_empty_description_stores_null(admin_client: Client) -> None:
    public_id = service.create_key(actor="t", description="old").api_key.public_id
    admin_client.post(f"/api-keys/{public_id}/description", {"description": ""})
    assert ApiKey.objects.get().description is None


@pytest.mark.parametrize("description", ["x" * 256, "a\x00b"])
def test_bad_description_edit_is_400_and_keeps_the_old_one(
    admin_client: Client, description: str
) -> None:
    public_id = service.create_key(actor="t", description="old").api_key.public_id
    response = admin_client.post(f"/api-keys/{public_id}/description", {"description": description})
    assert response.status_code == 400
    assert ApiKey.objects.get().description == "old"


@pytest.mark.parametrize(
    "body",
    [{"descripton": "typo"}, {}],
    ids=["a misspelt field", "no field"],
)
def test_an_edit_without_a_description_field_is_400_and_erases_nothing(
    admin_client: Client, body: dict[str, str]
) -> None:
    public_id = service.create_key(actor="t", description="old").api_key.public_id
    response = admin_client.post(f"/api-keys/{public_id}/description", body)
    assert response.status_code == 400
    assert "This form is incomplete" in response.content.decode()
    assert ApiKey.objects.get().description == "old"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/api-keys", "/api-keys/audit"])
def test_head_is_answered_as_get_is(admin_client: Client, path: str) -> None:
    # Uptime monitors and `curl -I` ask with HEAD.
    head = admin_client.head(path)
    get = admin_client.get(path)
    assert head.status_code == get.status_code == 200
    assert head["Content-Type"] == get["Content-Type"]


def test_a_head_leaves_a_one_time_message_for_the_page_that_is_shown(
    admin_client: Client,
) -> None:
    public_id = service.create_key(actor="t", description="old").api_key.public_id
    admin_client.post(f"/api-keys/{public_id}/description", {"description": "new"})
    assert admin_client.head("/api-keys").status_code == 200
    assert (
        f"Description of API key {public_id} saved."
        in admin_client.get("/api-keys").content.decode()
    )


def test_saving_on_a_keys_own_page_says_so_there(admin_client: Client) -> None:
    public_id = service.create_key(actor="t", description="old").api_key.public_id
    response = admin_client.post(
        f"/api-keys/{public_id}/description", {"description": "new", "back": "key"}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/api-keys/{public_id}"
    assert f"Description of API key {public_id} saved." in response.content.decode()


# Who may write


WRITES = [
    ("get", "/api-keys/{pid}/rotate"),
    ("post", "/api-keys/{pid}/rotate"),
    ("get", "/api-keys/new"),
    ("post", "/api-keys/new"),
    ("get", "/api-keys/{pid}/disable"),
    ("post", "/api-keys/{pid}/disable"),
    ("get", "/api-keys/{pid}/description"),
    ("post", "/api-keys/{pid}/description"),
]


@pytest.mark.parametrize(("method", "url"), WRITES)
def test_read_only_mode_refuses_every_write_with_403(
    admin_client: Client,
    settings,
    method: str,
    url: str,  # type: ignore[no-untyped-def]
) -> None:
    public_id = make_keys(1)[0]
    settings.READ_ONLY = True
    response = getattr(admin_client, method)(url.format(pid=public_id), {"description": "x"})
    assert response.status_code == 403
    key = ApiKey.objects.get()
    assert key.disabled_at is None and key.description == "k0"


def test_read_only_mode_lists_keys_without_write_controls(admin_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    public_id = make_keys(1)[0]
    settings.READ_ONLY = True
    html = admin_client.get("/api-keys").content.decode()
    assert public_id in html
    assert "Generate API Key" not in html and "/disable" not in html and "/description" not in html
    assert "Read-only" in html


@pytest.mark.parametrize(("method", "url"), WRITES)
def test_viewer_cannot_write(viewer_client: Client, method: str, url: str) -> None:
    public_id = make_keys(1)[0]
    response = getattr(viewer_client, method)(url.format(pid=public_id), {"description": "x"})
    assert response.status_code == 403
    assert ApiKey.objects.get().disabled_at is None


def test_viewer_sees_keys_without_write_controls(viewer_client: Client) -> None:
    public_id = make_keys(1)[0]
    html = viewer_client.get("/api-keys").content.decode()
    assert public_id in html
    assert "Generate API Key" not in html and "/disable" not in html


def test_post_without_csrf_token_is_refused(admin_user) -> None:  # type: ignore[no-untyped-def]
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    public_id = make_keys(1)[0]
    fields = {"form_token": str(uuid.uuid4()), "expiration": "never"}
    assert client.post("/api-keys/new", fields).status_code == 403
    assert client.post(f"/api-keys/{public_id}/disable").status_code == 403
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().disabled_at is None


# Audit trail


def test_audit_trail_lists_who_did_what_newest_first(admin_client: Client) -> None:
    created = service.create_key(actor="alice", description="billing")
    service.disable_key(actor="bob", public_id=created.api_key.public_id)
    html = admin_client.get("/api-keys/audit").content.decode()
    assert "<h1>Audit trail</h1>" in html
    assert html.index("bob") < html.index("alice")
    assert "Disabled" in html and "Created" in html and "billing" in html
    assert created.secret.split("-")[3] not in html


def test_audit_trail_filters_by_key_and_pages(admin_client: Client) -> None:
    one = service.create_key(actor="t").api_key.public_id
    other = service.create_key(actor="t").api_key.public_id
    html = admin_client.get("/api-keys/audit", {"key": one}).content.decode()
    assert f"<code>{one}</code>" in html and f"<code>{other}</code>" not in html
    partial = admin_client.get("/api-keys/audit", {"key": one}, **HTMX).content.decode()
    assert partial.lstrip().startswith('<div id="audit-events">')


@pytest.mark.parametrize("query", [{"key": "x\x00"}, {"key": "toolongpublicid"}, {"before": "-1"}])
def test_audit_trail_bad_filter_is_400(admin_client: Client, query: dict[str, str]) -> None:
    assert admin_client.get("/api-keys/audit", query).status_code == 400


def test_viewer_sees_the_audit_trail(viewer_client: Client, viewer) -> None:  # type: ignore[no-untyped-def]
    from keys import roles

    roles.set_role(viewer, roles.VIEWERS)
    service.create_key(actor="alice")
    response = viewer_client.get("/api-keys/audit")
    assert response.status_code == 200
    assert "alice" in response.content.decode()


def test_user_without_audit_permission_gets_403(viewer_client: Client) -> None:
    # The fixture's viewer holds only keys.view_apikey, not the role.
    assert viewer_client.get("/api-keys/audit").status_code == 403


# Rotate


def rotate_form(client: Client, public_id: str, **fields: str) -> dict[str, str]:
    page = client.get(f"/api-keys/{public_id}/rotate").content.decode()
    token = re.search(r'name="form_token" value="([0-9a-f-]{36})"', page)
    assert token, page
    return {"form_token": token.group(1), "grace": "now", **fields}


def test_rotate_confirmation_full_page_and_partial(admin_client: Client) -> None:
    public_id = service.create_key(actor="t", description="billing").api_key.public_id
    for extra in ({}, HTMX):
        html = admin_client.get(f"/api-keys/{public_id}/rotate", **extra).content.decode()
        assert ">Rotate API Key</h2>" in html and public_id in html
        assert "Rotate Key</button>" in html
    assert ApiKey.objects.count() == 1


def test_rotate_shows_the_new_key_once_and_disables_the_old(admin_client: Client) -> None:
    old = service.create_key(actor="t", description="billing")
    public_id = old.api_key.public_id
    response = admin_client.post(
        f"/api-keys/{public_id}/rotate", rotate_form(admin_client, public_id)
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    (key,) = set(KEY_RE.findall(html))
    assert gateway_accepts(key) and not gateway_accepts(old.secret)
    assert f"Replaces <code>{public_id}</code>, which is disabled now." in html


def test_rotate_with_grace_says_when_the_old_key_stops(admin_client: Client) -> None:
    old = service.create_key(actor="t")
    public_id = old.api_key.public_id
    fields = rotate_form(admin_client, public_id, grace="24h")
    html = admin_client.post(f"/api-keys/{public_id}/rotate", fields).content.decode()
    assert "which stops working at" in html
    assert gateway_accepts(old.secret)


@pytest.mark.parametrize("fields", [{"grace": "forever"}, {"form_token": ""}])
def test_rotate_bad_input_is_400_and_changes_nothing(
    admin_client: Client, fields: dict[str, str]
) -> None:
    public_id = service.create_key(actor="t").api_key.public_id
    response = admin_client.post(
        f"/api-keys/{public_id}/rotate", rotate_form(admin_client, public_id, **fields)
    )
    assert response.status_code == 400
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().disabled_at is None


def test_rotate_double_submit_is_409(admin_client: Client) -> None:
    public_id = service.create_key(actor="t").api_key.public_id
    fields = rotate_form(admin_client, public_id)
    assert admin_client.post(f"/api-keys/{public_id}/rotate", fields).status_code == 200
    second = admin_client.post(f"/api-keys/{public_id}/rotate", fields)
    assert second.status_code == 409
    assert "already submitted" in second.content.decode()
    assert ApiKey.objects.count() == 2


# Search and Find


def test_search_matches_description_any_case_and_exact_public_id(admin_client: Client) -> None:
    billing = service.create_key(actor="t", description="Billing service").api_key.public_id
    other = service.create_key(actor="t", description="analytics").api_key.public_id
    assert rows(admin_client.get("/api-keys", {"q": "BILLING"}).content.decode()) == [billing]
    assert rows(admin_client.get("/api-keys", {"q": other}).content.decode()) == [other]
    html = admin_client.get("/api-keys", {"q": "nothing like it"}).content.decode()
    assert rows(html) == [] and "No API keys match" in html


def test_search_pages_keep_the_query(admin_client: Client) -> None:
    ids = [
        service.create_key(actor="t", description=f"team-a {i}").api_key.public_id for i in range(3)
    ]
    service.create_key(actor="t", description="team-b")
    first = admin_client.get("/api-keys", {"q": "team-a", "limit": 2}).content.decode()
    assert rows(first) == ids[::-1][:2]
    second = admin_client.get(link(first, "next")).content.decode()
    assert rows(second) == ids[::-1][2:]


@pytest.mark.parametrize("q", ["x" * 256, "a\x00b", "sk-t0-123456789012-" + "a" * 48])
def test_bad_search_is_400(admin_client: Client, q: str) -> None:
    response = admin_client.get("/api-keys", {"q": q})
    assert response.status_code == 400
    assert "a" * 48 not in response.content.decode()


def test_find_box_turns_text_into_a_search(admin_client: Client) -> None:
    response = admin_client.post("/api-keys/find", {"query": "billing"})
    assert response.status_code == 302
    assert response["Location"] == "/api-keys?q=billing"


def test_find_an_exact_public_id_answers_in_one_round_trip(admin_client: Client) -> None:
    wanted, other = make_keys(2)
    response = admin_client.post("/api-keys/find", {"query": wanted})
    assert response.status_code == 200  # no redirect: the POST's own answer is the list
    html = response.content.decode()
    assert rows(html) == [wanted] and other not in html
    assert f'hx-get="/api-keys?q={wanted}"' in html  # reloads from the search, not the POST
    assert f'value="{wanted}"' in html


def test_find_an_unknown_public_id_searches_descriptions(admin_client: Client) -> None:
    response = admin_client.post("/api-keys/find", {"query": "nosuchkey123"})
    assert response.status_code == 302
    assert response["Location"] == "/api-keys?q=nosuchkey123"


def test_find_a_leaked_key_says_it_is_genuine_and_active(admin_client: Client) -> None:
    created = service.create_key(actor="t", description="leaky")
    response = admin_client.post("/api-keys/find", {"query": created.secret})
    html = response.content.decode()
    assert response.status_code == 200
    assert "This key is genuine" in html and "<strong>Active</strong>" in html
    assert f'id="key-{created.api_key.public_id}"' in html and "/disable" in html
    assert created.secret.split("-")[3] not in html  # never echoed back
    assert "no-store" in response["Cache-Control"]


def test_find_a_forged_secret_for_a_real_public_id(admin_client: Client) -> None:
    created = service.create_key(actor="t")
    forged = f"sk-t0-{created.api_key.public_id}-{'Z' * 48}"
    html = admin_client.post("/api-keys/find", {"query": forged}).content.decode()
    assert "this secret does not match" in html
    assert "Z" * 48 not in html


def test_find_an_unknown_key(admin_client: Client) -> None:
    html = admin_client.post(
        "/api-keys/find", {"query": "sk-t0-123456789012-" + "a" * 48}
    ).content.decode()
    assert "No key here has the public ID <code>123456789012</code>" in html


def test_find_a_malformed_key_is_400_without_echo(admin_client: Client) -> None:
    response = admin_client.post("/api-keys/find", {"query": "sk-t0-short-" + "q" * 40})
    assert response.status_code == 400
    assert "q" * 40 not in response.content.decode()


def test_viewer_may_find_but_sees_no_actions(viewer_client: Client) -> None:
    created = service.create_key(actor="t")
    html = viewer_client.post("/api-keys/find", {"query": created.secret}).content.decode()
    assert "This key is genuine" in html and "/disable" not in html


def test_find_is_post_only(admin_client: Client) -> None:
    assert admin_client.get("/api-keys/find", {"query": "x"}).status_code == 405


@pytest.mark.parametrize(
    "wrapping",
    ["Bearer {}", '"{}"', "export TENSORZERO_API_KEY={}", "  {}  ", "Authorization: Bearer {}\n"],
)
def test_find_reads_a_key_inside_pasted_text(admin_client: Client, wrapping: str) -> None:
    created = service.create_key(actor="t")
    response = admin_client.post("/api-keys/find", {"query": wrapping.format(created.secret)})
    assert response.status_code == 200
    assert "Location" not in response
    assert "This key is genuine" in response.content.decode()


@pytest.mark.parametrize("text", ["SK-T0-{}", "sk-t0-{}x", "token: sk\u2010t0\u2010{}", "{}"])
def test_find_never_redirects_text_that_mentions_a_key(admin_client: Client, text: str) -> None:
    secret = service.create_key(actor="t").secret
    query = text.format(secret.removeprefix("sk-t0-"))
    response = admin_client.post("/api-keys/find", {"query": query})
    assert "Location" not in response
    assert secret.split("-")[3] not in response.content.decode()


@pytest.mark.parametrize("q", ["Bearer sk-t0-x", "SK-T0-abc", "export K=sk-t0-123"])
def test_search_refuses_text_that_mentions_a_key(admin_client: Client, q: str) -> None:
    assert admin_client.get("/api-keys", {"q": q}).status_code == 400


def key_expiring_at(stored: str) -> str:
    """A key whose expiry another tool wrote as `stored` (PostgreSQL's own syntax)."""
    from django.db import connection

    public_id = service.create_key(actor="t").api_key.public_id
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE public.tensorzero_auth_api_key SET expires_at = %s::timestamptz WHERE public_id = %s",
            [stored, public_id],
        )
    return public_id


@pytest.mark.parametrize(
    "stored", ["infinity", "10000-01-01 00:00:00+00", "9999-12-31 23:59:59-14"]
)
def test_expiry_beyond_pythons_range_written_elsewhere_does_not_break_the_page(
    admin_client: Client, stored: str
) -> None:
    public_id = key_expiring_at(stored)
    admin_client.cookies["t0admin_tz"] = "Pacific/Kiritimati"  # UTC+14, the far edge
    response = admin_client.get("/api-keys")
    assert response.status_code == 200
    row = response.content.decode().split(f'id="key-{public_id}"')[1].split("</tr>")[0]
    assert "Active" in row and "9999-12-30" in row
    fields = rotate_form(admin_client, public_id)
    assert admin_client.post(f"/api-keys/{public_id}/rotate", fields).status_code == 200


def test_rotating_a_disabled_key_is_409(admin_client: Client) -> None:
    public_id = service.create_key(actor="t").api_key.public_id
    form = rotate_form(admin_client, public_id)
    service.disable_key(actor="t", public_id=public_id)
    for method, data in (("get", {}), ("post", form)):
        response = getattr(admin_client, method)(f"/api-keys/{public_id}/rotate", data)
        assert response.status_code == 409
        assert "disabling is final" in response.content.decode()
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize("description", ["bell\x07", "esc\x1b[31mred", "line\nbreak", "a\u202eb"])
def test_control_characters_in_descriptions_are_refused(
    admin_client: Client, description: str
) -> None:
    created = admin_client.post("/api-keys/new", new_form(admin_client, description=description))
    assert created.status_code == 400
    assert "control characters" in created.content.decode()
    public_id = service.create_key(actor="t", description="ok").api_key.public_id
    edited = admin_client.post(f"/api-keys/{public_id}/description", {"description": description})
    assert edited.status_code == 400
    assert ApiKey.objects.get().description == "ok"


def test_audit_trail_shows_expiries_in_the_viewers_zone(admin_client: Client) -> None:
    from datetime import datetime

    service.create_key(actor="t", expires_at=datetime(2031, 6, 1, 12, 0, tzinfo=UTC))
    admin_client.cookies["t0admin_tz"] = "Asia/Tokyo"
    html = admin_client.get("/api-keys/audit").content.decode()
    assert "expires 2031-06-01 21:00 JST" in html


def test_rotate_a_key_another_tool_wrote_copies_it_as_stored(admin_client: Client) -> None:
    from django.db import connection

    public_id = service.create_key(actor="t").api_key.public_id
    odd = "tab\there " + "x" * 300  # the gateway's CLI and column allow what our forms refuse
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE public.tensorzero_auth_api_key SET description = %s WHERE public_id = %s",
            [odd, public_id],
        )
    fields = rotate_form(admin_client, public_id)
    assert admin_client.post(f"/api-keys/{public_id}/rotate", fields).status_code == 200
    assert ApiKey.objects.exclude(public_id=public_id).get().description == odd


def test_expired_key_offers_no_rotate_and_refuses_one(admin_client: Client) -> None:
    public_id = service.create_key(
        actor="t", expires_at=timezone.now() + timedelta(hours=1)
    ).api_key.public_id
    form = rotate_form(admin_client, public_id)
    ApiKey.objects.filter(public_id=public_id).update(
        expires_at=timezone.now() - timedelta(hours=1)
    )
    assert f"Rotate {public_id}" not in admin_client.get("/api-keys").content.decode()
    response = admin_client.post(f"/api-keys/{public_id}/rotate", form)
    assert response.status_code == 409 and "has expired" in response.content.decode()
    assert ApiKey.objects.count() == 1


def test_a_key_in_its_grace_period_cannot_be_rotated_again(admin_client: Client) -> None:
    public_id = service.create_key(actor="t").api_key.public_id
    first = rotate_form(admin_client, public_id, grace="24h")
    assert admin_client.post(f"/api-keys/{public_id}/rotate", first).status_code == 200
    replacement = ApiKey.objects.exclude(public_id=public_id).get().public_id
    again = admin_client.get(f"/api-keys/{public_id}/rotate")
    assert again.status_code == 409
    assert f"already rotated: {replacement} replaces it" in again.content.decode()
    assert ApiKey.objects.count() == 2


def test_find_by_the_secret_part_alone(admin_client: Client) -> None:
    created = service.create_key(actor="t")
    long_key = created.secret.split("-")[3]
    response = admin_client.post("/api-keys/find", {"query": long_key})
    html = response.content.decode()
    assert "Location" not in response
    assert "This key is genuine" in html and created.api_key.public_id in html
    assert long_key not in html


def test_find_without_the_sk_t0_prefix_or_with_typographic_dashes(admin_client: Client) -> None:
    created = service.create_key(actor="t")
    bare = created.secret.removeprefix("sk-t0-")
    for query in (bare, created.secret.replace("-", "\u2013")):
        html = admin_client.post("/api-keys/find", {"query": query}).content.decode()
        assert "This key is genuine" in html


def test_find_unknown_secret_part(admin_client: Client) -> None:
    html = admin_client.post("/api-keys/find", {"query": "Q" * 48}).content.decode()
    assert "No key here has that secret" in html and "Q" * 48 not in html


@pytest.mark.parametrize("stored", ["-infinity", "0001-01-01 00:00:00+14", "4000-01-01 BC"])
def test_expiry_before_year_one_written_elsewhere_shows_as_expired(
    admin_client: Client, stored: str
) -> None:
    public_id = key_expiring_at(stored)
    response = admin_client.get("/api-keys")
    assert response.status_code == 200
    row = response.content.decode().split(f'id="key-{public_id}"')[1].split("</tr>")[0]
    assert "Expired" in row
    found = admin_client.post("/api-keys/find", {"query": public_id})
    assert found.status_code == 200
    assert "Expired" in found.content.decode().split(f'id="key-{public_id}"')[1].split("</tr>")[0]


# Compression (README: "Compression and BREACH")

GZIP = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br, zstd"}


def test_pages_are_gzipped_when_the_client_accepts_it(admin_client: Client) -> None:
    import gzip

    make_keys(3)
    response = admin_client.get("/api-keys", **GZIP)
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    assert "<tbody" in gzip.decompress(response.content).decode()
    assert "Content-Encoding" not in admin_client.get("/api-keys")


def test_compressed_lengths_do_not_line_up_from_one_request_to_the_next(
    admin_client: Client,
) -> None:
    """BREACH: a random name of random length in each gzip header (t0admin/compression.py)."""
    import gzip

    make_keys(3)
    answers = [admin_client.get("/api-keys", **GZIP) for _ in range(8)]
    assert all(b"<tbody" in gzip.decompress(a.content) for a in answers)
    assert all(a.content[3] & gzip.FNAME for a in answers)
    assert len({len(a.content) for a in answers}) > 1
    assert all(a["Content-Length"] == str(len(a.content)) for a in answers)


def test_a_response_that_shows_a_secret_is_never_compressed(admin_client: Client) -> None:
    created = admin_client.post("/api-keys/new", new_form(admin_client), **GZIP)
    assert "Content-Encoding" not in created
    assert KEY_RE.search(created.content.decode())
    public_id = ApiKey.objects.get().public_id
    rotated = admin_client.post(
        f"/api-keys/{public_id}/rotate", rotate_form(admin_client, public_id), **GZIP
    )
    assert rotated.status_code == 200 and "Content-Encoding" not in rotated
    assert KEY_RE.search(rotated.content.decode())
