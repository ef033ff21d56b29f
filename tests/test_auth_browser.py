"""In Chromium: sign in with a password, create a key, sign out, and the keys are gone."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long browser password 7"


def test_sign_in_create_key_sign_out_then_keys_are_closed(live_server_url: str, page) -> None:  # type: ignore[no-untyped-def]
    User.objects.create_superuser("root", password=PASSWORD)
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )

    page.goto(live_server_url + "/api-keys")
    assert "/sign-in" in page.url
    page.get_by_label("User name").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/api-keys$"))
    assert page.locator(".account .who").inner_text() == "root"

    page.get_by_role("link", name="Generate API Key").click()
    page.get_by_role("textbox", name="Description").fill("from the browser")
    page.get_by_role("button", name="Generate Key").click()
    secret = page.locator("#new-key").inner_text()
    assert re.fullmatch(r"sk-t0-[A-Za-z0-9]{12}-[A-Za-z0-9]{48}", secret)
    page.keyboard.press("Escape")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/sign-in$"))
    page.goto(live_server_url + "/api-keys")
    assert "/sign-in" in page.url
    assert page.locator("h1").inner_text() == "Sign in"
    assert "from the browser" not in page.content()
    assert violations == []
