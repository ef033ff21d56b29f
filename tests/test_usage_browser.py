"""The key page and the list's Last used column in Debian's Chromium, against a real
gunicorn and PostgreSQL holding the gateway's observability tables."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from keys import service
from tests import a11y
from tests import gateway_observability as obs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tables():  # type: ignore[no-untyped-def]
    today = timezone.now().astimezone(UTC).date()
    with connection.cursor() as cursor:
        obs.drop(cursor)
        obs.create(cursor, [today + timedelta(days=d) for d in (-1, 0, 1)])
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        with connection.cursor() as cursor:
            obs.drop(cursor)


def test_list_column_and_key_page(signed_in_page, live_server_url: str, tables) -> None:  # type: ignore[no-untyped-def]
    page = signed_in_page
    used = service.create_key(actor="t", description="busy service").api_key.public_id
    unused = service.create_key(actor="t", description="forgotten").api_key.public_id
    now = timezone.now()
    for minutes in (5, 50, 300):
        obs.insert(
            tables,
            used,
            now - timedelta(minutes=minutes),
            calls=[("gpt-a", 10, 4, Decimal("0.002"))],
        )

    a11y.install_axe(page.context)  # audited below, with usage figures on the page
    page.goto(live_server_url + "/api-keys")
    expect(page.get_by_role("columnheader", name="Last used")).to_be_visible()
    expect(page.locator(f"#key-{unused} td.last-used")).to_have_text("Never")
    expect(page.locator(f"#key-{used} td.last-used time")).to_be_visible()
    # The counts arrive after the page has shown.
    expect(page.locator("#key-filters")).to_contain_text("Not used in 30 days")
    expect(page.locator("#key-filters .count").first).to_have_text("2")

    page.get_by_role("link", name=f"Details of {used}").click()
    page.wait_for_url(re.compile(f"/api-keys/{used}$"))
    expect(page.get_by_role("heading", name=f"API key {used}")).to_be_visible()
    expect(page.locator("#usage")).to_contain_text("Usage as of")
    windows = page.locator("#usage-windows")
    expect(windows.get_by_role("row", name=re.compile("^Last hour"))).to_contain_text("2")
    expect(windows.get_by_role("row", name=re.compile("^Last 24 hours"))).to_contain_text("3")
    expect(page.locator("#usage-models")).to_contain_text("gpt-a")
    expect(page.locator("#usage-latest tbody tr")).to_have_count(3)
    expect(page.locator("#rate-rule")).to_contain_text(f'api_key_public_id = "{used}"')

    # "Exposed since": htmx redraws the usage and keeps the moment in the URL.
    since = (now - timedelta(minutes=100)).astimezone(ZoneInfo("Europe/Berlin"))  # the page's zone
    page.locator("#since").fill(since.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Count").click()
    page.wait_for_url(re.compile(r"since="))
    expect(page.locator("#since-count")).to_have_text("2")

    # With its figures (tables of windows, models and the latest inferences) the key page
    # still fits a phone and passes the audit; so does the list with its Last used column.
    problems = a11y.audit(page, "key page with usage")
    page.set_viewport_size(a11y.DESKTOP)
    page.goto(live_server_url + "/api-keys")
    expect(page.locator(f"#key-{used} td.last-used time")).to_be_visible()
    problems += a11y.audit(page, "key list with Last used")
    assert not problems, "\n".join(problems)
