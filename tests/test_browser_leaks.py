"""Leaked keys and bulk disable in Debian's Chromium, against gunicorn and a stand-in gateway."""

from __future__ import annotations

import pytest
from django.test import Client
from playwright.sync_api import expect

from keys import service
from tests.conftest import gateway_accepts
from tests.gateway_stand_in import stand_in_gateway
from tests.servers import gunicorn
from tests.servers import test_database_url as database_url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, url: str, user) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": url}]
    )


def test_paste_disable_all_and_the_gateway_refuses_every_genuine_key(page, admin_user) -> None:  # type: ignore[no-untyped-def]
    first = service.create_key(actor="t", description="web")
    second = service.create_key(actor="t", description="batch")
    dead = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=dead.api_key.public_id)
    real = service.create_key(actor="t", description="not leaked")
    forged = f"sk-t0-{real.api_key.public_id}-{'W' * 48}"
    text = (
        f"Authorization: Bearer {first.secret}\n"
        f'{{"api_key": "{second.secret}"}}\n# old: {dead.secret}\n'
        f"a typo: {forged}\n"
    )
    with (
        stand_in_gateway(database_url()) as gateway,
        gunicorn(database_url(), env={"TENSORZERO_GATEWAY_URL": gateway.url}) as server,
    ):
        sign_in(page, server.url, admin_user)
        page.goto(server.url + "/api-keys")
        page.get_by_role("navigation", name="Sections").get_by_role(
            "link", name="Leaked keys"
        ).click()
        page.get_by_label("Text holding the leaked keys").fill(text)
        page.get_by_role("button", name="Find keys").click()
        result = page.locator("#leak-result")
        expect(result).to_contain_text(
            "4 distinct keys found: 2 active, 1 disabled, 1 not a working key"
        )
        expect(result.locator(f"[data-public-id='{real.api_key.public_id}']")).to_contain_text(
            "The real key is active and not leaked by this."
        )
        result.get_by_role("button", name="Disable all 2 active").click()
        confirm = page.locator("#leak-actions")
        expect(confirm).to_contain_text("Disable 2 leaked keys?")
        expect(confirm.locator("li")).to_have_text(
            [first.api_key.public_id, second.api_key.public_id]
        )
        assert gateway_accepts(first.secret)  # nothing before the confirmation
        confirm.get_by_role("button", name="Disable 2 keys").click()
        expect(result).to_contain_text("2 keys disabled under incident leak-", timeout=20_000)
        for key in (first, second):
            row = result.locator(f"[data-public-id='{key.api_key.public_id}']")
            expect(row).to_contain_text("(disabled now)")
            expect(row).to_contain_text("refused by the gateway (401: API key was disabled at")
        assert "STILL ACCEPTED" not in result.inner_text()
        # The gateway's own lookup refuses every genuine key; the real key behind the
        # forged string keeps working.
        assert not gateway_accepts(first.secret) and not gateway_accepts(second.secret)
        assert gateway_accepts(real.secret)
        assert first.secret not in page.url and "leaked" in page.url


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no-js"])
def test_finding_the_keys_again_asks_only_those_not_refused_yet(
    browser, admin_user, javascript: bool
) -> None:  # type: ignore[no-untyped-def]
    """The gateway answers three calls, then falls silent: the check says how many keys it
    could not ask. Once it answers again, Find keys again (the refusals so far go with the
    form, from a field outside it) asks only the rest, and every key shows as refused.
    Without JavaScript the page comes back without the text: it is pasted again."""
    keys = [service.create_key(actor="t") for _ in range(6)]
    for key in keys:
        service.disable_key(actor="t", public_id=key.api_key.public_id)
    text = " ".join(k.secret for k in keys)
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    try:
        with (
            stand_in_gateway(database_url(), answers=3) as gateway,
            gunicorn(database_url(), env={"TENSORZERO_GATEWAY_URL": gateway.url}) as server,
        ):
            sign_in(page, server.url, admin_user)
            page.goto(server.url + "/api-keys/leaked")
            page.get_by_label("Text holding the leaked keys").fill(text)
            page.get_by_role("button", name="Find keys").click()
            result = page.locator("#leak-result")
            alert = result.get_by_role("alert")
            expect(alert).to_contain_text("keys not checked", timeout=20_000)
            refused = result.locator("td.gateway", has_text="refused by the gateway (401").count()
            assert 1 <= refused <= 3
            asked_before = len(gateway.calls)
            gateway.silent_after = None  # the gateway answers again
            page.get_by_label("Text holding the leaked keys").fill(text)
            page.get_by_role("button", name="Find keys").click()
            expect(result).to_contain_text("not asked again", timeout=20_000)
            expect(alert).to_have_count(0)
            expect(result.locator("td.gateway", has_text="refused by the gateway")).to_have_count(6)
            expect(result.locator("td.gateway", has_text="in the check at")).to_have_count(refused)
            # The made-up key, and each key the first check had not seen refused.
            assert len(gateway.calls) - asked_before == 1 + 6 - refused
            assert keys[0].secret not in page.url
    finally:
        context.close()


def test_a_screen_reader_hears_the_alert_once_and_the_count(page, admin_user) -> None:  # type: ignore[no-untyped-def]
    """A gateway with authentication switched off lets every key in. That warning is an
    alert inserted with the result, which the browser reads out as it appears; the live
    region adds the count, and does not repeat the alert."""
    key = service.create_key(actor="t")
    with (
        stand_in_gateway(database_url(), auth_off=True) as gateway,
        gunicorn(database_url(), env={"TENSORZERO_GATEWAY_URL": gateway.url}) as server,
    ):
        sign_in(page, server.url, admin_user)
        page.goto(server.url + "/api-keys/leaked")
        page.get_by_label("Text holding the leaked keys").fill(f"key={key.secret}")
        page.get_by_role("button", name="Find keys").click()
        expect(page.locator("#leak-result")).to_contain_text("1 distinct key found")
        expect(page.locator("#leak-result [role=alert]")).to_contain_text(
            "Authentication is switched off at the gateway"
        )
        expect(page.locator("#announcer")).to_have_text("1 distinct key found: 1 active.")


def test_tick_rows_and_disable_them_together(page, live_server_url: str, admin_user) -> None:  # type: ignore[no-untyped-def]
    keys = [service.create_key(actor="t", description=f"svc {i}") for i in range(3)]
    sign_in(page, live_server_url, admin_user)
    page.goto(live_server_url + "/api-keys")
    # A first visit redraws the list in the browser's zone; tick after that redraw.
    expect(page.locator(".pager .tz")).to_have_text("Times in Europe/Berlin")
    for key in keys[:2]:
        page.get_by_label(f"Select {key.api_key.public_id}").check()
    page.get_by_role("button", name="Disable selected").click()
    dialog = page.locator("dialog#modal")
    expect(dialog.get_by_role("heading")).to_have_text("Disable 2 API keys")
    dialog.get_by_role("button", name="Disable 2 Keys").click()
    expect(dialog).to_contain_text("2 API keys disabled")
    dialog.get_by_role("link", name="Close").click()
    for key in keys[:2]:
        expect(page.locator(f"#key-{key.api_key.public_id}")).to_contain_text("Disabled")
        assert not gateway_accepts(key.secret)
    assert gateway_accepts(keys[2].secret)


def test_disable_all_that_gets_no_answer_at_all_says_so(page, admin_user) -> None:  # type: ignore[no-untyped-def]
    keys = [service.create_key(actor="t") for _ in range(2)]
    text = "\n".join(k.secret for k in keys)
    with gunicorn(database_url()) as server:
        sign_in(page, server.url, admin_user)
        page.goto(server.url + "/api-keys/leaked")
        page.get_by_label("Text holding the leaked keys").fill(text)
        page.get_by_role("button", name="Find keys").click()
        page.locator("#leak-result").get_by_role("button", name="Disable all 2 active").click()
        confirm = page.locator("#leak-actions")
        expect(confirm).to_contain_text("Disable 2 leaked keys?")
        # The connection is reset before any answer, as a proxy or a dead path would.
        page.route("**/api-keys/leaked/disable", lambda route: route.abort("connectionreset"))
        confirm.get_by_role("button", name="Disable 2 keys").click()
        toast = page.locator("#htmx-error")
        expect(toast).to_be_visible()
        expect(toast).to_contain_text("it is not known whether that was done")
    assert all(gateway_accepts(k.secret) for k in keys)  # nothing was done, and it says so


def test_a_refused_paste_leaves_the_page_working(signed_in_page, live_server_url: str) -> None:  # type: ignore[no-untyped-def]
    created = service.create_key(actor="t", description="web")
    page = signed_in_page
    page.goto(live_server_url + "/api-keys/leaked")
    box = page.get_by_label("Text holding the leaked keys")
    box.fill("   \n  ")  # passes the box's `required`; the server answers 400
    page.get_by_role("button", name="Find keys").click()
    dialog = page.locator("dialog#modal")
    expect(dialog).to_contain_text("Paste the text that holds the leaked keys first.")
    dialog.get_by_role("link", name="Back to the API keys").click()
    expect(dialog).not_to_be_visible()
    box.fill(f"Authorization: Bearer {created.secret}")
    page.get_by_role("button", name="Find keys").click()
    expect(page.locator("#leak-result")).to_contain_text("1 distinct key found: 1 active")
