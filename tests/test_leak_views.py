"""/api-keys/leaked: paste any text, see every key in it, disable all active ones."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from keys import leaks, service, tokens
from keys.models import ApiKey, AuditEvent
from tests.conftest import gateway_accepts

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def leak() -> dict[str, str]:
    """A paste with a key in every state: active ×2, disabled, expired, forged, unknown."""
    a = service.create_key(actor="t", description="web")
    b = service.create_key(actor="t")
    dead = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=dead.api_key.public_id)
    old = service.create_key(actor="t")
    ApiKey.objects.filter(pk=old.api_key.pk).update(expires_at=timezone.now() - timedelta(days=1))
    real = service.create_key(actor="t")
    forged = f"sk-t0-{real.api_key.public_id}-{'Z' * 48}"
    unknown = tokens.generate()
    text = (
        f"2026-11-29 INFO request Authorization: Bearer {a.secret}\n"
        f'{{"key": "{b.secret}", "other": "{dead.secret}"}}\n'
        f"export TENSORZERO_API_KEY={old.secret}\n"
        f"curl 'https://gw/inference?api_key={forged}' # and {unknown}, again {a.secret}\n"
    )
    return {
        "text": text,
        "a": a.secret,
        "b": b.secret,
        "dead": dead.secret,
        "old": old.secret,
        "real": real.secret,
        "forged": forged,
        "unknown": unknown,
    }


def pid(key: str) -> str:
    return tokens.extract(key).public_id  # type: ignore[union-attr]


def check(client: Client, text: str, **extra: str) -> str:
    response = client.post("/api-keys/leaked", {"text": text, **extra})
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    return response.content.decode()


def test_page_is_in_the_navigation_with_an_empty_text_area(admin_client: Client) -> None:
    html = admin_client.get("/api-keys").content.decode()
    assert 'href="/api-keys/leaked">Leaked keys</a>' in html
    page = admin_client.get("/api-keys/leaked").content.decode()
    assert re.search(r'<textarea id="leak-text" name="text"[^>]*></textarea>', page)


def test_every_key_once_in_order_with_its_state(admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    html = check(admin_client, leak["text"])
    rows = re.findall(r'<tr class="leak-([a-z_]+)" data-public-id="(\w+)"', html)
    assert rows == [
        ("active", pid(leak["a"])),
        ("active", pid(leak["b"])),
        ("disabled", pid(leak["dead"])),
        ("expired", pid(leak["old"])),
        ("not_a_working_key", pid(leak["real"])),
        ("unknown", pid(leak["unknown"])),
    ]
    assert (
        "6 distinct keys found: 2 active, 1 disabled, 1 expired, 1 unknown, 1 not a working key"
        in html
    )
    assert "was <em>not</em> leaked by it" in html
    assert "The real key is active and not leaked by this." in html
    assert "Disable all 2 active" in html


def test_a_key_a_wrap_cut_in_two_is_found_on_the_page(admin_client: Client) -> None:
    created = service.create_key(actor="t", description="web")
    text = f"Authorization: Bearer {created.secret[:40]}\n{created.secret[40:]}\nthanks"
    page = admin_client.post("/api-keys/leaked", {"text": text}).content.decode()
    assert "1 distinct key found: 1 active" in page
    assert created.api_key.public_id in page


def test_the_summary_names_only_the_states_present(admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    html = check(admin_client, f"{leak['a']} and {leak['unknown']}")
    # No dangling comma for the states that are absent (expired, not a working key).
    assert "2 distinct keys found: 1 active, 1 unknown.</p>" in html


def test_the_pasted_text_is_never_echoed(admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    html = check(admin_client, leak["text"])
    for name in ("a", "b", "dead", "forged", "unknown"):
        assert leak[name] not in html
        assert tokens.parse(leak[name]).long_key not in html
    assert "Authorization: Bearer" not in html


def test_htmx_gets_only_the_result(admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post("/api-keys/leaked", {"text": leak["text"]}, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="leak-result"')
    assert "<textarea" not in html and "no-store" in response["Cache-Control"]


def test_rows_link_to_each_keys_page_since_the_exposure(admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    html = check(admin_client, leak["text"], since="2026-11-01T08:00")
    assert f'href="/api-keys/{pid(leak["a"])}?since=2026-11-01T08%3A00%3A00%2B00%3A00"' in html
    assert f'href="/api-keys/{pid(leak["unknown"])}' not in html  # no such key here


def test_active_rows_offer_rotate_recorded_under_the_incident(admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    html = check(admin_client, leak["text"])
    public_id = pid(leak["a"])
    link = re.search(rf'href="(/api-keys/{public_id}/rotate\?incident=(leak-[0-9a-f-]+))"', html)
    assert link, html
    assert f'href="/api-keys/{pid(leak["dead"])}/rotate' not in html
    rotate_url, incident = link.groups()

    confirm = admin_client.get(rotate_url).content.decode()
    assert f'name="incident" value="{incident}"' in confirm
    assert f"Recorded as a response to the leak <code>{incident}</code>" in confirm
    token = re.search(r'name="form_token" value="([0-9a-f-]{36})"', confirm)
    assert token
    fields = {"form_token": token.group(1), "grace": "now", "incident": incident}
    response = admin_client.post(f"/api-keys/{public_id}/rotate", fields)
    assert response.status_code == 200
    assert not gateway_accepts(leak["a"])
    event = AuditEvent.objects.get(action="rotate", public_id=public_id)
    assert (event.reason, event.incident) == ("leaked", incident)
    audit = admin_client.get("/api-keys/audit", {"incident": incident}).content.decode()
    assert public_id in audit


@pytest.mark.parametrize(
    "incident",
    [
        "nonsense",
        "leak-2026-11-29",
        "leak-20261129-101010-XYZ123",
        "leak-٢٠٢٦١١٢٩-١٠١٠١٠-abcdef",  # digits, but not 0-9
    ],
)
def test_rotate_refuses_what_is_no_incident_reference(admin_client: Client, incident: str) -> None:
    public_id = service.create_key(actor="t").api_key.public_id
    response = admin_client.get(f"/api-keys/{public_id}/rotate", {"incident": incident})
    assert response.status_code == 400
    assert "not an incident reference" in response.content.decode()
    confirm = admin_client.get(f"/api-keys/{public_id}/rotate").content.decode()
    token = re.search(r'name="form_token" value="([0-9a-f-]{36})"', confirm)
    assert token
    fields = {"form_token": token.group(1), "grace": "now", "incident": incident}
    response = admin_client.post(f"/api-keys/{public_id}/rotate", fields)
    assert response.status_code == 400
    assert "not an incident reference" in response.content.decode()
    assert "Recorded as a response to the leak" not in response.content.decode()
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().disabled_at is None


def test_nothing_found_says_what_a_key_looks_like(admin_client: Client) -> None:
    html = check(admin_client, "no keys in here, just sk-t0-something")
    assert "No TensorZero API key in that text" in html


def test_empty_paste_is_400(admin_client: Client) -> None:
    response = admin_client.post("/api-keys/leaked", {"text": "  "})
    assert response.status_code == 400
    assert "Paste the text" in response.content.decode()


def test_paste_over_one_megabyte_is_413_in_words(admin_client: Client) -> None:
    text = ("x" * 1023 + "\n") * 1025  # just over 1 MB, under Django's 2.5 MB
    response = admin_client.post("/api-keys/leaked", {"text": text})
    assert response.status_code == 413
    assert (
        "is 1,049,600 bytes; the page takes at most 1,048,576 (1 MB)" in response.content.decode()
    )


def test_a_paste_under_one_megabyte_is_read_whatever_its_line_breaks(
    admin_client: Client,
) -> None:
    """Found by a probe: browsers send a text area's line breaks as CR LF, and a paste
    of 15,400 keys under 1 MB was refused as 1.0 MB, over "at most 1 MB"."""
    key = service.create_key(actor="t").secret
    lines = [key, *(("x" * 1023) for _ in range(1023))]
    as_pasted = "\n".join(lines)
    assert len(as_pasted) <= leaks.MAX_TEXT_BYTES < len(as_pasted.replace("\n", "\r\n"))
    html = check(admin_client, as_pasted.replace("\n", "\r\n"))
    assert "1 distinct key found" in html


def test_request_over_djangos_limit_is_413_in_words_not_a_bare_400(admin_client: Client) -> None:
    response = admin_client.post("/api-keys/leaked", {"text": "y" * (3 * 2**20)})
    assert response.status_code == 413
    assert "find_leaked_keys" in response.content.decode()


def test_multipart_paste_of_one_megabyte_is_read(admin_client: Client) -> None:
    key = service.create_key(actor="t").secret
    text = ("noise " * 170 + "\n") * 1000 + key  # ~1 MB, multipart as the page posts it
    assert len(text) < 2**20
    html = check(admin_client, text)
    assert pid(key) in html


def test_viewer_sees_the_keys_but_no_disable(viewer_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    html = check(viewer_client, leak["text"])
    assert pid(leak["a"]) in html
    assert "Disable all 2 active" not in html and "/rotate" not in html


def token_of(html: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_disable_all_confirms_naming_the_keys_then_disables_them(
    admin_client: Client, leak, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.GATEWAY_URL_SET = True  # configured, but without the text there is no key to ask
    token = token_of(check(admin_client, leak["text"]))
    confirm = admin_client.post("/api-keys/leaked/disable", {"token": token})
    html = confirm.content.decode()
    assert "Disable 2 leaked keys?" in html
    assert re.findall(r"<li><code>(\w+)</code></li>", html) == [pid(leak["a"]), pid(leak["b"])]
    assert gateway_accepts(leak["a"])  # nothing yet

    done = admin_client.post("/api-keys/leaked/disable", {"token": token, "confirmed": "yes"})
    html = done.content.decode()
    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    assert "2 keys disabled" in html
    assert not gateway_accepts(leak["a"]) and not gateway_accepts(leak["b"])
    # The real key behind the forged string was not leaked, and keeps working.
    assert gateway_accepts(leak["real"])
    events = AuditEvent.objects.filter(action="disable", reason="leaked")
    assert sorted(e.public_id for e in events) == sorted([pid(leak["a"]), pid(leak["b"])])
    incidents = {e.incident for e in events}
    assert len(incidents) == 1 and next(iter(incidents)).startswith("leak-")
    assert f"?incident={next(iter(incidents))}" in html
    # Without the text (no JavaScript), the gateway cannot be asked: the page says why.
    assert "The gateway was not asked" in html


def test_disable_all_with_the_text_shows_each_key_as_it_is_now(admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    token = token_of(check(admin_client, leak["text"]))
    done = admin_client.post(
        "/api-keys/leaked/disable",
        {"token": token, "confirmed": "yes", "text": leak["text"]},
        **HTMX,
    )
    html = done.content.decode()
    rows = re.findall(r'<tr class="leak-([a-z_]+)" data-public-id="(\w+)"', html)
    assert rows[:2] == [("disabled", pid(leak["a"])), ("disabled", pid(leak["b"]))]
    assert html.count("(disabled now)") == 2
    assert leak["a"] not in html


def test_disable_all_twice_changes_nothing_more(admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    token = token_of(check(admin_client, leak["text"]))
    admin_client.post("/api-keys/leaked/disable", {"token": token, "confirmed": "yes"})
    again = admin_client.post("/api-keys/leaked/disable", {"token": token, "confirmed": "yes"})
    assert "(already disabled)" in again.content.decode()
    assert AuditEvent.objects.filter(reason="leaked").count() == 2


def test_an_altered_confirmation_is_400_and_disables_nothing(admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    token = token_of(check(admin_client, leak["text"]))
    response = admin_client.post(
        "/api-keys/leaked/disable", {"token": token[:-3] + "abc", "confirmed": "yes"}
    )
    assert response.status_code == 400
    assert "expired or was altered" in response.content.decode()
    assert gateway_accepts(leak["a"])


def test_viewer_cannot_disable(viewer_client: Client, admin_client: Client, leak) -> None:  # type: ignore[no-untyped-def]
    token = token_of(check(admin_client, leak["text"]))
    response = viewer_client.post("/api-keys/leaked/disable", {"token": token, "confirmed": "yes"})
    assert response.status_code == 403
    assert gateway_accepts(leak["a"])


def test_find_box_sends_a_paste_of_several_keys_to_the_leak_answer(
    admin_client: Client, leak
) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post("/api-keys/find", {"query": f"{leak['a']} {leak['dead']}"})
    html = response.content.decode()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert "<h1>Leaked keys</h1>" in html and "2 distinct keys found" in html
    assert "Disable all 1 active" in html
    assert leak["a"] not in html


def test_the_text_never_reaches_the_log(admin_client: Client, leak, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    check(admin_client, leak["text"])
    admin_client.post("/api-keys/leaked", {"text": leak["text"] + "x" * 2**20})
    token = token_of(check(admin_client, leak["text"]))
    admin_client.post(
        "/api-keys/leaked/disable", {"token": token, "confirmed": "yes", "text": leak["text"]}
    )
    for name in ("a", "b", "forged"):
        assert tokens.parse(leak[name]).long_key not in caplog.text


def test_without_a_gateway_the_page_says_how_to_enable_the_check(
    admin_client: Client, leak, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.GATEWAY_URL_SET = False
    html = check(admin_client, leak["text"], probe="on")
    assert "TENSORZERO_GATEWAY_URL is not set" in html
    assert '<th scope="col">Gateway</th>' not in html


def test_after_disable_without_a_gateway_the_page_says_it_could_not_check(
    admin_client: Client, leak, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.GATEWAY_URL_SET = False
    token = token_of(check(admin_client, leak["text"]))
    done = admin_client.post(
        "/api-keys/leaked/disable", {"token": token, "confirmed": "yes", "text": leak["text"]}
    )
    assert "could not ask the gateway" in done.content.decode()
    assert "TENSORZERO_GATEWAY_URL is not set" in done.content.decode()


def test_disable_all_takes_more_keys_than_a_list_page_holds(admin_client: Client) -> None:
    """Found by a probe: 10,001 active keys in a paste (680 KB) offered "Disable all", which
    answered 500: the service refused more than a list page's 10,000."""
    count = service.MAX_BULK + 1
    keys = [tokens.generate() for _ in range(count)]
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO public.tensorzero_auth_api_key (organization, workspace, public_id, hash)"
            " VALUES ('default', 'default', %s, %s)",
            [(pid(key), tokens.parse(key).hash) for key in keys],
        )
    text = "\n".join(keys)
    token = token_of(check(admin_client, text))
    done = admin_client.post(
        "/api-keys/leaked/disable", {"token": token, "confirmed": "yes", "text": text}
    )
    assert done.status_code == 200, done.content[:500]
    assert f"{count} keys disabled" in done.content.decode()
    assert not ApiKey.objects.filter(disabled_at__isnull=True).exists()
    assert not gateway_accepts(keys[0]) and not gateway_accepts(keys[-1])
