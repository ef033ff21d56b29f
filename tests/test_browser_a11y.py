"""Every page and dialog, at desktop and phone widths: axe-core finds nothing serious, and
nothing scrolls sideways on a phone. The leak response done with the keyboard alone, heard
through live regions. Real gunicorn, PostgreSQL and Debian's Chromium.

A new page or dialog is one more entry in SCREENS: how to get there from a signed-in
browser, and whether it is a dialog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from keys import service
from keys.models import ApiKey
from tests import a11y
from tests.conftest import gateway_accepts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass(frozen=True)
class Keys:
    """What the screens show: one key in each state, one with a long unbroken description."""

    active: service.CreatedKey
    disabled: service.CreatedKey
    expired: str
    long: str


@dataclass(frozen=True)
class Screen:
    name: str
    open: Callable[[Any, str, Keys], None]  # (page, server URL, keys): leaves it showing
    dialog: bool = False
    # False: the page's own scripts (htmx, t0admin.js) are blocked, as in a browser
    # without JavaScript; axe still runs, injected through the DevTools protocol.
    scripts: bool = True
    # admin, viewer (sees keys, changes nothing), long name (an admin whose proxy sends a
    # long e-mail address) or anonymous
    user: str = "admin"


def goto(path: str) -> Callable[[Any, str, Keys], None]:
    def open_(page: Any, url: str, keys: Keys) -> None:
        page.goto(
            url
            + path.format(
                active=keys.active.api_key.public_id, disabled=keys.disabled.api_key.public_id
            )
        )

    return open_


def find(text: Callable[[Keys], str]) -> Callable[[Any, str, Keys], None]:
    def open_(page: Any, url: str, keys: Keys) -> None:
        page.goto(url + "/api-keys")
        page.get_by_label("Find a key").fill(text(keys))
        page.get_by_role("button", name="Find").click()
        page.get_by_role("heading", name="Find a key").wait_for()

    return open_


def dialog_from(link: Callable[[Keys], str], heading: str) -> Callable[[Any, str, Keys], None]:
    def open_(page: Any, url: str, keys: Keys) -> None:
        page.goto(url + "/api-keys")
        page.get_by_role("link", name=link(keys), exact=True).click()
        page.locator("dialog#modal").get_by_role("heading", name=heading).wait_for()

    return open_


def generate_errors(page: Any, url: str, keys: Keys) -> None:
    dialog_from(lambda k: "Generate API Key", "Generate API Key")(page, url, keys)
    dialog = page.locator("dialog#modal")
    dialog.get_by_label("Expiration").select_option("custom")
    dialog.get_by_label("Expires at").fill("2001-01-01T00:00")
    dialog.get_by_role("button", name="Generate Key").click()
    dialog.get_by_text("Expiration must be in the future.").wait_for()


def created(page: Any, url: str, keys: Keys) -> None:
    dialog_from(lambda k: "Generate API Key", "Generate API Key")(page, url, keys)
    dialog = page.locator("dialog#modal")
    dialog.get_by_label("Description").fill("a phone-sized description")
    dialog.get_by_role("button", name="Generate Key").click()
    dialog.get_by_role("heading", name="API Key Generated").wait_for()


def disabled(page: Any, url: str, keys: Keys) -> None:
    public_id = keys.active.api_key.public_id
    dialog_from(lambda k: f"Disable {public_id}", "Disable API Key")(page, url, keys)
    page.locator("dialog#modal").get_by_role("button", name="Disable Key").click()
    # The dialog's body: 50 ms later the dialog's live region repeats the same words.
    page.locator("#modal-body").get_by_text(f"API key {public_id} is disabled.").wait_for()


def rotated(page: Any, url: str, keys: Keys) -> None:
    public_id = keys.active.api_key.public_id
    dialog_from(lambda k: f"Rotate {public_id}", "Rotate API Key")(page, url, keys)
    page.locator("dialog#modal").get_by_role("button", name="Rotate Key").click()
    page.locator("dialog#modal").get_by_role("heading", name="API Key Generated").wait_for()


def problem_dialog(page: Any, url: str, keys: Keys) -> None:
    page.goto(url + "/api-keys")
    page.evaluate("htmx.ajax('GET', 'api-keys/nosuchkey123/disable', '#modal-body')")
    page.locator("dialog#modal").get_by_role("heading", name="That did not work").wait_for()


def editing(page: Any, url: str, keys: Keys) -> None:
    public_id = keys.long
    page.goto(url + "/api-keys")
    page.get_by_role("link", name=f"Edit description of {public_id}").click()
    page.locator(f"#key-{public_id} input[name=description]").wait_for()


def leak_text(keys: Keys) -> str:
    """A paste as a leak looks: a live key, a dead one and a key from elsewhere, in noise."""
    return (
        f'curl -H "Authorization: Bearer {keys.active.secret}" https://llm.example.com\n'
        f"export TENSORZERO_API_KEY={keys.disabled.secret}\n"
        f"stray: sk-t0-{'a' * 12}-{'b' * 48}\n"
    )


def leaked_found(page: Any, url: str, keys: Keys) -> None:
    page.goto(url + "/api-keys/leaked")
    page.get_by_label("Text holding the leaked keys").fill(leak_text(keys))
    page.get_by_role("button", name="Find keys").click()
    page.locator("#leak-result").get_by_text("3 distinct keys found").wait_for()


def leaked_confirm(page: Any, url: str, keys: Keys) -> None:
    leaked_found(page, url, keys)
    page.get_by_role("button", name="Disable all 1 active").click()
    page.get_by_role("heading", name="Disable 1 leaked key?").wait_for()


def leaked_disabled(page: Any, url: str, keys: Keys) -> None:
    leaked_confirm(page, url, keys)
    page.get_by_role("button", name="Disable 1 key").click()
    page.locator("#leak-result").get_by_text("1 key disabled").wait_for()


def selected(page: Any, url: str, keys: Keys) -> None:
    page.goto(url + "/api-keys")
    page.get_by_label(f"Select {keys.active.api_key.public_id}").check()
    page.get_by_label(f"Select {keys.long}").check()


def disable_selected(page: Any, url: str, keys: Keys) -> None:
    selected(page, url, keys)
    page.get_by_role("button", name="Disable selected").click()
    page.locator("dialog#modal").get_by_role("heading", name="Disable 2 API keys").wait_for()


def csrf_refused(page: Any, url: str, keys: Keys) -> None:
    """A form sent without its CSRF token (a page left open for days, a forged post)."""
    page.goto(url + "/api-keys")
    with page.expect_navigation():
        page.evaluate(
            """() => { const form = document.createElement("form");
            form.method = "post"; form.action = "/api-keys/new";
            document.body.append(form); form.submit(); }"""
        )
    assert page.get_by_role("heading").first.inner_text()


def created_without_scripts(page: Any, url: str, keys: Keys) -> None:
    page.goto(url + "/api-keys/new")
    page.get_by_label("Description").fill("made without JavaScript")
    page.get_by_role("button", name="Generate Key").click()
    page.get_by_role("heading", name="API Key Generated").wait_for()
    assert page.evaluate("typeof window.htmx") == "undefined"


def sign_in_refused(page: Any, url: str, keys: Keys) -> None:
    page.goto(url + "/sign-in")
    page.get_by_label("User name").fill("nobody")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()


SCREENS = [
    Screen("key list", goto("/api-keys")),
    Screen("key list, nothing found", goto("/api-keys?q=nothing-like-this")),
    Screen("key list for a viewer", goto("/api-keys"), user="viewer"),
    Screen("key list for a long user name", goto("/api-keys"), user="long name"),
    Screen("key list, editing a description", editing),
    Screen("key list, disabled keys", goto("/api-keys?status=disabled")),
    Screen("key list, not used in 90 days", goto("/api-keys?unused=90")),
    Screen("key list, two keys selected", selected),
    Screen("key page", goto("/api-keys/{active}")),
    Screen("key page of a disabled key", goto("/api-keys/{disabled}")),
    Screen("audit trail", goto("/api-keys/audit")),
    Screen("audit trail of one key", goto("/api-keys/audit?key={active}")),
    Screen("find: a genuine key", find(lambda k: f"Authorization: Bearer {k.active.secret}")),
    Screen("find: a key from elsewhere", find(lambda k: "sk-t0-" + "a" * 12 + "-" + "b" * 48)),
    Screen("generate page", goto("/api-keys/new")),
    Screen("disable page", goto("/api-keys/{active}/disable")),
    Screen("rotate page", goto("/api-keys/{active}/rotate")),
    Screen("edit page", goto("/api-keys/{active}/description")),
    Screen("problem page", goto("/api-keys/nosuchkey123/disable")),
    Screen("leaked keys page", goto("/api-keys/leaked")),
    Screen("leaked keys found", leaked_found),
    Screen("leaked keys, confirm disable all", leaked_confirm),
    Screen("leaked keys disabled", leaked_disabled),
    Screen("leaked keys found, without JavaScript", leaked_found, scripts=False),
    Screen("new key page, without JavaScript", created_without_scripts, scripts=False),
    Screen("page not found", goto("/api-keys/nothing/here/at/all")),
    Screen("method not allowed page", goto("/api-keys/leaked/disable")),
    Screen("form refused (CSRF)", csrf_refused),
    Screen("not allowed page", goto("/api-keys/new"), user="viewer"),
    Screen("sign-in page", goto("/sign-in"), user="anonymous"),
    Screen("sign-in refused", sign_in_refused, user="anonymous"),
    Screen("generate dialog", dialog_from(lambda k: "Generate API Key", "Generate API Key"), True),
    Screen("generate dialog with an error", generate_errors, dialog=True),
    Screen("new key dialog", created, dialog=True),
    Screen(
        "disable dialog",
        dialog_from(lambda k: f"Disable {k.active.api_key.public_id}", "Disable API Key"),
        dialog=True,
    ),
    Screen("disabled dialog", disabled, dialog=True),
    Screen(
        "rotate dialog",
        dialog_from(lambda k: f"Rotate {k.active.api_key.public_id}", "Rotate API Key"),
        dialog=True,
    ),
    Screen("rotated key dialog", rotated, dialog=True),
    Screen("disable selected dialog", disable_selected, dialog=True),
    Screen("problem dialog", problem_dialog, dialog=True),
]


@pytest.fixture(scope="module")
def server_url(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """One gunicorn for the module: the screens only read, or write rows of their own test."""
    from tests.servers import gunicorn, test_database_url

    with django_db_blocker.unblock():
        database_url = test_database_url()
    with gunicorn(database_url) as server:
        yield server.url


@pytest.fixture
def keys() -> Keys:
    active = service.create_key(actor="t", description="Billing service, production")
    gone = service.create_key(actor="t", description="leaked in a gist")
    service.disable_key(actor="t", public_id=gone.api_key.public_id)
    old = service.create_key(actor="t", description="expired")
    ApiKey.objects.filter(public_id=old.api_key.public_id).update(
        expires_at=timezone.now() - timedelta(days=1)
    )
    long = service.create_key(actor="t", description="nightly-batch-" + "x" * 120)
    return Keys(active, gone, old.api_key.public_id, long.api_key.public_id)


def browser_page(
    browser: Any,
    url: str,
    user: Any,
    viewport: dict[str, int] = a11y.DESKTOP,
    scripts: bool = True,
) -> Any:
    """A page of its own context, axe installed, signed in as `user` (None: nobody);
    without `scripts`, the site's own JavaScript never loads."""
    context = browser.new_context(viewport=viewport, timezone_id="Europe/Berlin", locale="en-GB")
    a11y.install_axe(context)
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies["sessionid"].value
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": url}])
    if not scripts:
        context.route("**/*.js", lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


@pytest.fixture
def users(admin_user: Any, viewer: Any, django_user_model: Any) -> dict[str, Any]:
    long_name = django_user_model.objects.create_superuser(
        "firstname.middlename.lastname@platform-engineering.example.com", password=None
    )
    return {"admin": admin_user, "viewer": viewer, "long name": long_name, "anonymous": None}


@pytest.mark.parametrize("screen", SCREENS, ids=[screen.name for screen in SCREENS])
def test_screen_is_accessible_and_fits_a_phone(
    screen: Screen, browser: Any, server_url: str, keys: Keys, users: dict[str, Any]
) -> None:
    page = browser_page(browser, server_url, users[screen.user], scripts=screen.scripts)
    try:
        screen.open(page, server_url, keys)
        if screen.dialog:
            assert page.locator("dialog#modal[open]").count() == 1
        problems = a11y.audit(page, screen.name)
        assert not problems, "\n".join(problems)
    finally:
        page.context.close()


WIDTHS = pytest.mark.parametrize("viewport", [a11y.DESKTOP, a11y.PHONE], ids=["1280", "390"])


def tab_to(page: Any, wanted: Callable[[dict[str, Any]], bool], presses: int = 40) -> None:
    """Press Tab until the focused element is the wanted one, as a keyboard user would."""
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        now = a11y.focused(page)
        if wanted(now):
            return
        seen.append(now["text"] or now["id"] or now["tag"])
    raise AssertionError(f"never reached with Tab; focus went through {seen}")


def heard(page: Any, region: str, words: str) -> None:
    """A live region says `words` (what a screen reader reads out)."""
    page.locator(f"#{region}").filter(has_text=words).wait_for(state="attached")


def wait_for_focus(page: Any, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(50):
        now = a11y.focused(page)
        if wanted(now):
            return now
        page.wait_for_timeout(100)
    raise AssertionError(f"focus stayed on {now}")


@WIDTHS
def test_leak_response_with_the_keyboard_alone(
    browser: Any, server_url: str, keys: Keys, admin_user: Any, viewport: dict[str, int]
) -> None:
    """Paste the leaked key into Find, disable it, confirm, close: no mouse, and focus always
    where the next key press is meant to go."""
    leaked = keys.active
    public_id = leaked.api_key.public_id
    page = browser_page(browser, server_url, admin_user, viewport)
    try:
        page.goto(server_url + "/api-keys")
        tab_to(page, lambda f: f["id"] == "find-query")
        page.keyboard.insert_text(f"Authorization: Bearer {leaked.secret}")  # a paste
        page.keyboard.press("Enter")
        page.get_by_text("This key is genuine").wait_for()
        # A full page: its deferred scripts run after the text shows. A key press before
        # that follows the plain link (the no-JavaScript page), which is not this walk.
        page.wait_for_load_state("load")

        tab_to(page, lambda f: f["text"] == f"Disable {public_id}")
        page.keyboard.press("Enter")
        dialog = page.locator("dialog#modal[open]")
        dialog.get_by_role("heading", name="Disable API Key").wait_for()
        assert wait_for_focus(page, lambda f: f["in_dialog"])["text"] == "Cancel"

        tab_to(page, lambda f: f["text"] == "Disable Key", presses=3)
        page.keyboard.press("Enter")
        page.locator("#modal-body").get_by_text(f"API key {public_id} is disabled.").wait_for()
        heard(page, "dialog-announcer", f"API key {public_id} is disabled.")
        assert wait_for_focus(page, lambda f: f["in_dialog"])["text"] == "Close"

        page.keyboard.press("Enter")
        page.locator("dialog#modal:not([open])").wait_for(state="attached")
        # The Disable link is gone with the key's new state: focus lands on its row.
        wait_for_focus(page, lambda f: f["row"] == f"key-{public_id}")
        page.locator(f"#key-{public_id} .badge.disabled").wait_for()
        wait_for_focus(page, lambda f: f["row"] == f"key-{public_id}")
        assert not gateway_accepts(leaked.secret)
    finally:
        page.context.close()


@WIDTHS
def test_leak_of_many_keys_with_the_keyboard_alone(
    browser: Any, server_url: str, keys: Keys, admin_user: Any, viewport: dict[str, int]
) -> None:
    """Paste a leak into the Leaked keys page, disable every active key in it, confirm:
    no mouse, each result heard, and focus never lost on the way."""
    public_id = keys.active.api_key.public_id
    page = browser_page(browser, server_url, admin_user, viewport)
    try:
        page.goto(server_url + "/api-keys")
        tab_to(page, lambda f: f["text"] == "Leaked keys")
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Leaked keys", exact=True).wait_for()
        page.wait_for_load_state("load")  # a full page: its scripts run after the heading

        tab_to(page, lambda f: f["id"] == "leak-text")
        page.keyboard.insert_text(leak_text(keys))  # a paste
        tab_to(page, lambda f: f["text"] == "Find keys", presses=10)
        page.keyboard.press("Enter")
        heard(page, "announcer", "3 distinct keys found: 1 active, 1 disabled, 1 unknown.")

        tab_to(page, lambda f: f["text"] == "Disable all 1 active")
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Disable 1 leaked key?").wait_for()
        # Into the question, on its safe answer: Enter now would not disable anything.
        assert wait_for_focus(page, lambda f: f["text"] == "Cancel")

        tab_to(page, lambda f: f["text"] == "Disable 1 key", presses=3)
        page.keyboard.press("Enter")
        # Focus lands on the outcome (which reads it out), where reading on goes through
        # each key's new state; the live region does not say it a second time.
        focused = wait_for_focus(page, lambda f: "1 key disabled under incident" in f["text"])
        assert focused["tag"] == "p"
        assert "1 key disabled" not in page.locator("#announcer").inner_text()
        assert not gateway_accepts(keys.active.secret)
        assert page.locator("#leak-result").get_by_text(public_id).count() >= 1
    finally:
        page.context.close()


@WIDTHS
def test_focus_goes_into_each_dialog_and_back(
    browser: Any, server_url: str, keys: Keys, admin_user: Any, viewport: dict[str, int]
) -> None:
    public_id = keys.active.api_key.public_id
    page = browser_page(browser, server_url, admin_user, viewport)
    try:
        page.goto(server_url + "/api-keys")
        for opener, first in [
            ("Generate API Key", "id_description"),
            (f"Rotate {public_id}", "id_grace"),
            (f"Disable {public_id}", None),
        ]:
            tab_to(page, lambda f, opener=opener: f["text"] == opener)  # type: ignore[misc]
            page.keyboard.press("Enter")
            inside = wait_for_focus(page, lambda f: f["in_dialog"])
            if first:
                assert inside["id"] == first
            page.keyboard.press("Escape")
            page.locator("dialog#modal:not([open])").wait_for(state="attached")
            assert wait_for_focus(page, lambda f: not f["in_dialog"])["text"] == opener

        # Edit swaps the row for a form: focus follows into its field, then back to the row.
        tab_to(page, lambda f: f["text"] == f"Edit description of {public_id}")
        page.keyboard.press("Enter")
        assert wait_for_focus(page, lambda f: f["id"] == "id_description")["row"] == (
            f"key-{public_id}"
        )
        page.keyboard.insert_text(" (renamed)")
        page.keyboard.press("Enter")
        page.locator(f"#key-{public_id} td.description", has_text="(renamed)").wait_for()
        assert wait_for_focus(page, lambda f: f["row"] == f"key-{public_id}")["text"] == (
            f"Edit description of {public_id}"
        )
    finally:
        page.context.close()


def test_copy_and_errors_are_announced(browser: Any, server_url: str, admin_user: Any) -> None:
    page = browser_page(browser, server_url, admin_user, a11y.PHONE)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    try:
        page.goto(server_url + "/api-keys")
        tab_to(page, lambda f: f["text"] == "Generate API Key")
        page.keyboard.press("Enter")
        wait_for_focus(page, lambda f: f["id"] == "id_description")
        page.keyboard.press("Tab")
        page.keyboard.press("End")  # the last choice: Custom
        page.get_by_label("Expires at").fill("2001-01-01T00:00")
        tab_to(page, lambda f: f["text"] == "Generate Key", presses=10)
        page.keyboard.press("Enter")
        heard(page, "dialog-announcer", "Expiration must be in the future.")
        assert wait_for_focus(page, lambda f: f["in_dialog"])["id"] == "id_expires_at"

        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Home")  # the first choice: Never
        tab_to(page, lambda f: f["text"] == "Generate Key", presses=10)
        page.keyboard.press("Enter")
        heard(page, "dialog-announcer", "Copy this key now.")
        # The first thing in the dialog showing the key is its Copy button.
        assert wait_for_focus(page, lambda f: f["in_dialog"])["text"] == "Copy"
        page.keyboard.press("Enter")
        heard(page, "dialog-announcer", "Copied")
        key = page.locator("pre#new-key").inner_text().strip()
        assert page.evaluate("navigator.clipboard.readText()") == key
    finally:
        page.context.close()


@pytest.mark.parametrize("width", a11y.PHONE_WIDTHS)
def test_new_key_fits_a_phone_with_its_copy_button_in_view(
    browser: Any, server_url: str, admin_user: Any, width: int
) -> None:
    page = browser_page(browser, server_url, admin_user, {"width": width, "height": 640})
    try:
        page.goto(server_url + "/api-keys")
        page.get_by_role("link", name="Generate API Key").click()
        page.get_by_role("button", name="Generate Key").click()
        key = page.locator("pre#new-key")
        key.wait_for()
        # The whole key wraps inside its box: nothing hidden to scroll to.
        assert key.evaluate("e => e.scrollWidth <= e.clientWidth")
        box = page.get_by_role("button", name="Copy the API key").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
        assert box["y"] >= 0 and box["y"] + box["height"] <= 640
        assert min(box["width"], box["height"]) >= a11y.TAP_TARGET
        assert a11y.sideways_overflow(page) == []
    finally:
        page.context.close()


def test_phone_tap_targets_are_44_px(
    browser: Any, server_url: str, keys: Keys, admin_user: Any
) -> None:
    page = browser_page(browser, server_url, admin_user, a11y.PHONE)
    try:
        page.goto(server_url + "/api-keys")
        assert page.locator("td.actions a").count() >= 6
        assert a11y.small_tap_targets(page, "td.actions a") == []
        assert a11y.small_tap_targets(page, ".topbar a, .topbar button") == []
        assert a11y.small_tap_targets(page, "main button, main .button") == []
        page.get_by_role("link", name=f"Disable {keys.active.api_key.public_id}").click()
        page.locator("dialog#modal[open]").wait_for()
        assert a11y.small_tap_targets(page, "dialog .buttons a, dialog button") == []
        # Desktop keeps its plain links.
        page.set_viewport_size(a11y.DESKTOP)
        assert a11y.small_tap_targets(page, "td.actions a") != []
        page.set_viewport_size(a11y.PHONE)

        # The other pages an incident goes through: filters, a key's page, a leak's keys.
        assert a11y.small_tap_targets(page, ".key-filters a, td .select") == []
        page.goto(server_url + f"/api-keys/{keys.active.api_key.public_id}")
        assert a11y.small_tap_targets(page, "main a, main button") == []
        leaked_found(page, server_url, keys)
        assert page.locator("#leak-result td.actions a").count() >= 1
        assert a11y.small_tap_targets(page, "#leak-result a, main button") == []
    finally:
        page.context.close()


@pytest.mark.parametrize(
    "env, status",
    [
        ({"T0ADMIN_AUTH": "proxy", "T0ADMIN_TRUSTED_PROXIES": "10.0.0.5"}, 403),
        ({"T0ADMIN_AUTH": "proxy", "T0ADMIN_TRUSTED_PROXIES": "127.0.0.1"}, 403),
        ({"TENSORZERO_POSTGRES_URL": "postgresql://t0admin@127.0.0.1:1/gone"}, 503),
    ],
    ids=["proxy refused: reached directly", "proxy refused: no identity", "database down"],
)
def test_pages_of_a_server_set_up_otherwise_are_accessible_and_fit_a_phone(
    browser: Any, django_db_blocker: Any, env: dict[str, str], status: int, request: Any
) -> None:
    """The pages a server of its own shows: behind a sign-in proxy, the refusal (the proxy
    bypassed, or no identity sent); with the database unreachable, the 503 page. The same
    audit at both widths as every other page."""
    from tests.servers import gunicorn, test_database_url

    with django_db_blocker.unblock():
        database_url = test_database_url()
    with gunicorn(database_url, env=env) as server:
        page = browser_page(browser, server.url, None)
        # A returning admin: their session must be read from the database.
        page.context.add_cookies([{"name": "sessionid", "value": "x" * 32, "url": server.url}])
        try:
            response = page.goto(server.url + "/api-keys")
            assert response is not None and response.status == status
            assert page.get_by_role("heading").count() >= 1
            problems = a11y.audit(page, request.node.callspec.id)
            assert not problems, "\n".join(problems)
        finally:
            page.context.close()


def test_a_dialog_opens_only_once_its_form_is_wired(
    browser: Any, server_url: str, keys: Keys, admin_user: Any
) -> None:
    """The moment the dialog shows (and showModal() puts focus on its first control), Enter
    must already go through htmx: a dialog opened before htmx wired its form sent a quick
    Tab and Enter as a plain POST, leaving the page."""
    page = browser_page(browser, server_url, admin_user)
    try:
        page.goto(server_url + "/api-keys")
        page.evaluate(
            """() => {
            const dialog = document.getElementById("modal");
            window.sentThroughHtmx = [];
            new MutationObserver(() => {
                if (!dialog.open) return;
                // What Enter on the form's button does, at the very moment it opens: a
                // submit that htmx takes over (default prevented) or a plain page load.
                const submit = new SubmitEvent("submit", {bubbles: true, cancelable: true});
                dialog.querySelector("form").dispatchEvent(submit);
                window.sentThroughHtmx.push(submit.defaultPrevented);
            }).observe(dialog, {attributes: true, attributeFilter: ["open"]});
        }"""
        )
        page.get_by_role("link", name="Generate API Key").click()
        page.locator("dialog#modal[open]").wait_for()
        assert page.evaluate("window.sentThroughHtmx") == [True]
        # ...and htmx did send it: the new key shows in the same dialog.
        page.locator("dialog#modal").get_by_role("heading", name="API Key Generated").wait_for()
    finally:
        page.context.close()


def test_a_dialog_closed_as_its_new_key_arrives_stays_closed(
    browser: Any, server_url: str, keys: Keys, admin_user: Any
) -> None:
    """Escape pressed the instant the new key shows (before htmx has settled it): the
    dialog closes, forgets the key, and nothing opens it again."""
    page = browser_page(browser, server_url, admin_user)
    try:
        page.goto(server_url + "/api-keys")
        page.get_by_role("link", name="Generate API Key").click()
        page.get_by_role("button", name="Generate Key").wait_for()
        page.evaluate(
            """() => {
            const dialog = document.getElementById("modal");
            window.closedAtArrival = false;
            new MutationObserver(() => {
                if (window.closedAtArrival || !document.getElementById("new-key")) return;
                dialog.close();  // what Escape does
                window.closedAtArrival = true;
            }).observe(document.getElementById("modal-body"), {childList: true, subtree: true});
        }"""
        )
        page.get_by_role("button", name="Generate Key").click()
        page.locator("dialog#modal:not([open])").wait_for(state="attached")
        page.wait_for_timeout(300)  # well past htmx's settle (20 ms)
        assert page.evaluate("window.closedAtArrival")
        assert page.locator("dialog#modal[open]").count() == 0
        assert page.locator("#new-key").count() == 0
        page.get_by_role("button", name="Sign out").click()  # nothing modal in the way
        page.wait_for_url("**/sign-in")
    finally:
        page.context.close()
