"""The /api-keys page in Debian's Chromium against a real gunicorn and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from keys import service
from keys.models import ApiKey
from tests.conftest import gateway_accepts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEY_RE = re.compile(r"^sk-t0-[A-Za-z0-9]{12}-[A-Za-z0-9]{48}$")


@pytest.fixture
def admin_page(signed_in_page, live_server_url: str):  # type: ignore[no-untyped-def]
    """A browser page signed in as a superuser, on the key list."""
    signed_in_page.goto(live_server_url + "/api-keys")
    return signed_in_page


def generate(page, description: str = "") -> str:  # type: ignore[no-untyped-def]
    page.get_by_role("link", name="Generate API Key").click()
    dialog = page.locator("dialog#modal")
    dialog.get_by_role("heading", name="Generate API Key").wait_for()
    if description:
        dialog.get_by_label("Description").fill(description)
        assert dialog.locator(".counter").inner_text() == f"{len(description)}/255"
    dialog.get_by_role("button", name="Generate Key").click()
    dialog.get_by_role("heading", name="API Key Generated").wait_for()
    key = dialog.locator("pre#new-key").inner_text().strip()
    assert dialog.get_by_role("button", name="Copy the API key").is_visible()
    assert "cannot be seen again" in dialog.inner_text()
    dialog.get_by_role("link", name="Close").click()
    page.wait_for_selector("dialog#modal:not([open])", state="attached")
    # The dialog forgets its content on its "close" event, which the browser fires as a
    # task of its own after the dialog has lost [open]: wait for that, not just the close.
    expect(page.locator("#modal-body")).to_be_empty()
    return key


def test_generate_without_and_with_description(admin_page, live_server_url: str) -> None:  # type: ignore[no-untyped-def]
    first = generate(admin_page)
    assert KEY_RE.match(first)
    row = admin_page.locator(f"#key-{first.split('-')[2]}")
    row.wait_for()
    expect(row).to_contain_text("—")
    expect(row).to_contain_text("Active")

    second = generate(admin_page, "Billing service")
    row = admin_page.locator(f"#key-{second.split('-')[2]}")
    row.wait_for()
    expect(row).to_contain_text("Billing service")
    # The closed dialog forgot the secret; the page holds it nowhere.
    assert second not in admin_page.content()
    assert gateway_accepts(first) and gateway_accepts(second)


def test_back_to_the_list_never_brings_a_shown_secret_back(
    browser, live_server_url, admin_user
) -> None:  # type: ignore[no-untyped-def]
    from tests.servers import launch

    client = Client()
    client.force_login(admin_user)
    session = client.cookies["sessionid"].value
    caching = launch(browser.browser_type, back_forward_cache=True)
    try:
        context = caching.new_context()
        context.add_cookies([{"name": "sessionid", "value": session, "url": live_server_url}])
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{live_server_url}/api-keys")
        page.evaluate("window.addEventListener('pageshow', e => { window.restored = e.persisted })")
        page.get_by_role("link", name="Generate API Key").click()
        page.locator("dialog#modal").get_by_role("button", name="Generate Key").click()
        key = page.locator("pre#new-key").inner_text().strip()
        assert KEY_RE.fullmatch(key)
        page.goto(f"{live_server_url}/api-keys/audit")  # another address, the dialog open
        page.go_back(wait_until="commit")  # a page from the cache fires no "load"
        page.locator("#keys-table").wait_for()
        page.wait_for_function("window.restored !== undefined")
        # Restored from the cache (not loaded again), and without the secret.
        assert page.evaluate("window.restored") is True
        assert key not in page.content()
        assert not page.evaluate("document.getElementById('modal').open")
    finally:
        caching.close()


def test_copy_button_copies_the_key(admin_page, browser) -> None:  # type: ignore[no-untyped-def]
    admin_page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    admin_page.get_by_role("link", name="Generate API Key").click()
    dialog = admin_page.locator("dialog#modal")
    dialog.get_by_role("button", name="Generate Key").click()
    key = dialog.locator("pre#new-key").inner_text().strip()
    dialog.get_by_role("button", name="Copy the API key").click()
    dialog.get_by_text("Copied").wait_for()
    assert admin_page.evaluate("navigator.clipboard.readText()") == key


def test_custom_past_expiration_is_refused_in_the_dialog(admin_page) -> None:  # type: ignore[no-untyped-def]
    admin_page.get_by_role("link", name="Generate API Key").click()
    dialog = admin_page.locator("dialog#modal")
    assert not dialog.get_by_label("Expires at").is_visible()  # only for Custom
    dialog.get_by_label("Expiration").select_option("custom")
    dialog.get_by_label("Expires at").fill("2001-01-01T00:00")
    dialog.get_by_role("button", name="Generate Key").click()
    dialog.get_by_text("Expiration must be in the future.").wait_for()
    assert ApiKey.objects.count() == 0


def test_disable_with_confirmation_persists(admin_page, live_server_url: str) -> None:  # type: ignore[no-untyped-def]
    created = service.create_key(actor="t", description="leaked")
    public_id = created.api_key.public_id
    admin_page.reload()
    row = admin_page.locator(f"#key-{public_id}")
    row.get_by_role("link", name=f"Disable {public_id}").click()
    dialog = admin_page.locator("dialog#modal")
    expect(dialog).to_contain_text(f"Are you sure you want to disable the API key {public_id}?")
    expect(dialog).to_contain_text("auth cache TTL")
    dialog.get_by_role("button", name="Disable Key").click()
    dialog.get_by_text(f"API key {public_id} is disabled.").wait_for()
    dialog.get_by_role("link", name="Close").click()
    admin_page.locator(f"#key-{public_id} .badge.disabled").wait_for()
    assert row.get_by_role("link", name=f"Disable {public_id}").count() == 0
    assert not gateway_accepts(created.secret)

    admin_page.reload()
    expect(admin_page.locator(f"#key-{public_id}")).to_contain_text("Disabled")


def test_edit_description_inline(admin_page) -> None:  # type: ignore[no-untyped-def]
    public_id = service.create_key(actor="t", description="old name").api_key.public_id
    admin_page.reload()
    row = admin_page.locator(f"#key-{public_id}")
    row.get_by_role("link", name=f"Edit description of {public_id}").click()
    field = admin_page.locator(f"#key-{public_id} input[name=description]")
    field.fill("new name")
    admin_page.locator(f"#key-{public_id}").get_by_role("button", name="Save").click()
    admin_page.locator(f"#key-{public_id} td.description", has_text="new name").wait_for()
    assert ApiKey.objects.get(public_id=public_id).description == "new name"
    admin_page.reload()
    expect(admin_page.locator(f"#key-{public_id}")).to_contain_text("new name")


def test_page_through_with_limit_two(admin_page, live_server_url: str) -> None:  # type: ignore[no-untyped-def]
    ids = [service.create_key(actor="t").api_key.public_id for _ in range(5)][::-1]

    def shown() -> list[str]:
        return [
            rid.removeprefix("key-")
            for rid in admin_page.locator("#key-rows tr").evaluate_all(
                "rows => rows.map(r => r.id)"
            )
        ]

    admin_page.goto(live_server_url + "/api-keys?limit=2")
    assert shown() == ids[0:2]
    admin_page.get_by_role("link", name="Next").click()
    admin_page.wait_for_url(re.compile(r"before="))
    assert shown() == ids[2:4]
    admin_page.get_by_role("link", name="Next").click()
    admin_page.locator(f"#key-{ids[4]}").wait_for()
    assert shown() == ids[4:5]
    admin_page.get_by_role("link", name="Previous").click()
    admin_page.locator(f"#key-{ids[2]}").wait_for()
    assert shown() == ids[2:4]


def test_every_action_works_without_javascript(browser, live_server_url: str, admin_user) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(java_script_enabled=False)
    client = Client()
    client.force_login(admin_user)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server_url}]
    )
    page = context.new_page()
    try:
        page.goto(live_server_url + "/api-keys")
        page.get_by_role("link", name="Generate API Key").click()
        page.wait_for_url("**/api-keys/new")
        page.get_by_label("Description").fill("no js")
        page.get_by_role("button", name="Generate Key").click()
        page.get_by_role("heading", name="API Key Generated").wait_for()
        key = page.locator("pre#new-key").inner_text().strip()
        assert gateway_accepts(key)
        public_id = key.split("-")[2]
        page.get_by_role("link", name="Close").click()
        page.get_by_role("link", name=f"Disable {public_id}").click()
        page.get_by_role("button", name="Disable Key").click()
        page.get_by_text(f"API key {public_id} is disabled.").wait_for()
        assert not gateway_accepts(key)
    finally:
        context.close()


def test_rotate_in_the_dialog(admin_page) -> None:  # type: ignore[no-untyped-def]
    old = service.create_key(actor="t", description="rotate me")
    public_id = old.api_key.public_id
    admin_page.reload()
    admin_page.locator(f"#key-{public_id}").get_by_role("link", name=f"Rotate {public_id}").click()
    dialog = admin_page.locator("dialog#modal")
    dialog.get_by_label("The old key stops working").select_option("now")
    dialog.get_by_role("button", name="Rotate Key").click()
    dialog.get_by_role("heading", name="API Key Generated").wait_for()
    new = dialog.locator("pre#new-key").inner_text().strip()
    expect(dialog).to_contain_text(f"Replaces {public_id}, which is disabled now.")
    dialog.get_by_role("link", name="Close").click()
    expect(admin_page.locator(f"#key-{public_id}")).to_contain_text("Disabled")
    expect(admin_page.locator(f"#key-{new.split('-')[2]}")).to_contain_text("rotate me")
    assert gateway_accepts(new) and not gateway_accepts(old.secret)


def test_first_visit_redraws_dates_in_the_browsers_zone(admin_page) -> None:  # type: ignore[no-untyped-def]
    # The page fixture's browser runs in Europe/Berlin and has never been here: the
    # server drew the first page in UTC, then the script told it the zone.
    service.create_key(actor="t")
    admin_page.reload()
    expect(admin_page.locator(".pager .tz")).to_have_text("Times in Europe/Berlin")
    admin_page.context.clear_cookies(name="t0admin_tz")
    admin_page.reload()
    expect(admin_page.locator(".pager .tz")).to_have_text("Times in Europe/Berlin")


def test_disable_a_leaked_key_from_the_find_box(admin_page) -> None:  # type: ignore[no-untyped-def]
    leaked = service.create_key(actor="t", description="leaked in a gist")
    public_id = leaked.api_key.public_id
    admin_page.reload()
    admin_page.get_by_label("Find a key").fill(f"Authorization: Bearer {leaked.secret}")
    admin_page.get_by_role("button", name="Find").click()
    expect(admin_page.locator(".find-result")).to_contain_text("This key is genuine")
    assert leaked.secret not in admin_page.url
    admin_page.get_by_role("link", name=f"Disable {public_id}").click()
    dialog = admin_page.locator("dialog#modal")
    dialog.get_by_role("button", name="Disable Key").click()
    dialog.get_by_role("link", name="Close").click()
    expect(admin_page.locator(f"#key-{public_id}")).to_contain_text("Disabled")
    assert not gateway_accepts(leaked.secret)


def test_on_a_keys_own_page_edit_and_disable_work_and_the_page_follows(  # type: ignore[no-untyped-def]
    signed_in_page, live_server_url: str
) -> None:
    public_id = service.create_key(actor="t", description="old").api_key.public_id
    page = signed_in_page
    page.goto(f"{live_server_url}/api-keys/{public_id}")
    # Edit: a page of its own; Save and Cancel both come back to the key.
    page.get_by_role("link", name="Edit description").click()
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(f"{live_server_url}/api-keys/{public_id}")
    page.get_by_role("link", name="Edit description").click()
    page.get_by_label("Description").fill("billing")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{live_server_url}/api-keys/{public_id}")
    expect(page.locator("dd.description")).to_have_text("billing")
    # Disable in the dialog: once it is closed, the page shows the key as it is now.
    page.get_by_role("link", name="Disable").click()
    dialog = page.locator("dialog#modal")
    dialog.get_by_role("button", name="Disable Key").click()
    dialog.get_by_text(f"API key {public_id} is disabled.").wait_for()
    dialog.get_by_role("link", name="Close").click()
    expect(page.locator(".facts .badge.disabled")).to_have_text("Disabled")
    expect(page.locator(".key-actions")).not_to_contain_text("Disable")

    # The edit page opened on its own (a new tab, where a sign-in returned to): Cancel
    # goes to the list.
    page.goto(f"{live_server_url}/api-keys/{public_id}/description")
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(f"{live_server_url}/api-keys")
