"""Descriptions: no secrets and no invisible characters stored; stored ones shown safely."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from keys import service, text, tokens
from keys.models import ApiKey, AuditEvent
from tests.test_views import new_form

pytestmark = pytest.mark.django_db

KEY = tokens.generate()
PUBLIC_ID, LONG_KEY = KEY.split("-")[2], KEY.split("-")[3]


@pytest.mark.parametrize(
    "description",
    [
        KEY,
        f"billing bot, key {KEY} (do not share)",
        f"sk\u2013t0\u2013{PUBLIC_ID}\u2013{LONG_KEY}",  # en dashes, as word processors make them
        f"sk\u2011t0\u2011{PUBLIC_ID}\u2011{LONG_KEY}",  # non-breaking hyphens
        f"{PUBLIC_ID}-{LONG_KEY}",  # without its prefix
        f"secret: {LONG_KEY}",  # the secret part alone
    ],
)
def test_a_description_holding_a_key_is_refused(description: str) -> None:
    with pytest.raises(service.ServiceError, match="seems to hold an API key") as refused:
        service.create_key(actor="t", description=description)
    assert "must never be stored" in str(refused.value)
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize(
    "description",
    [
        f"replaces {PUBLIC_ID}",  # a public ID is not a secret
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # 40 hex digits
        "sha256 " + "ab" * 32,  # 64
        "a-b-c-d sk-t0 notes",
    ],
)
def test_text_that_only_resembles_a_key_is_kept(description: str) -> None:
    assert service.create_key(actor="t", description=description).api_key.description == description


INVISIBLE = [
    "\u200b",  # zero width space
    "\u200c",  # zero width non-joiner
    "\u200d",  # zero width joiner between letters
    "\u200e",  # left-to-right mark
    "\u200f",
    "\u2028",  # line separator
    "\u2029",
    "\ufeff",  # byte order mark
    "\u061c",  # Arabic letter mark
    "\u2060",  # word joiner
    "\u2061",
    "\u2064",
    "\u180e",  # Mongolian vowel separator
    "\u00ad",  # soft hyphen
    "\u3164",  # Hangul filler
    "\U000e0041",  # a tag character outside a flag
]


@pytest.mark.parametrize("char", INVISIBLE, ids=[f"U+{ord(c):04X}" for c in INVISIBLE])
def test_invisible_characters_are_refused_by_name_and_place(char: str) -> None:
    with pytest.raises(service.ServiceError, match="invisible characters") as refused:
        service.create_key(actor="t", description=f"billing{char}bot")
    assert f"U+{ord(char):04X}" in str(refused.value)
    assert "at position 8" in str(refused.value)


EMOJI = [
    "\U0001f469\u200d\U0001f4bb",  # woman technologist
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # family
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag
    "\U0001f469\U0001f3fd\u200d\U0001f4bb",  # with a skin tone
    "\u2764\ufe0f\u200d\U0001f525",  # heart on fire
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland
]


@pytest.mark.parametrize("emoji", EMOJI)
def test_emoji_sequences_are_kept(emoji: str) -> None:
    description = f"team {emoji} bot"
    assert service.create_key(actor="t", description=description).api_key.description == description


def test_the_form_says_why_and_never_shows_the_secret_again(admin_client: Client) -> None:
    response = admin_client.post("/api-keys/new", new_form(admin_client, description=f"ci {KEY}"))
    page = response.content.decode()
    assert response.status_code == 400
    assert "seems to hold an API key" in page
    assert LONG_KEY not in page
    assert ApiKey.objects.count() == 0


def test_editing_in_an_invisible_character_is_refused(admin_client: Client) -> None:
    public_id = service.create_key(actor="t", description="ok").api_key.public_id
    response = admin_client.post(f"/api-keys/{public_id}/description", {"description": "o\u200bk"})
    assert response.status_code == 400
    assert "U+200B ZERO WIDTH SPACE at position 2" in response.content.decode()
    assert ApiKey.objects.get().description == "ok"


# Rows another tool wrote


@pytest.fixture
def foreign_row() -> ApiKey:
    """A key whose description another tool stored: a secret and a zero-width space."""
    api_key = service.create_key(actor="t").api_key
    stored = f"bil\u200bling {KEY}"
    ApiKey.objects.filter(pk=api_key.pk).update(description=stored)
    AuditEvent.objects.create(
        actor="other-tool",
        action=AuditEvent.Action.DESCRIBE,
        public_id=api_key.public_id,
        detail={"before": None, "after": stored},
    )
    api_key.refresh_from_db()
    return api_key


def shown_safely(client: Client, path: str) -> str:
    """The page at `path`, which must hold neither the secret nor the raw invisible one."""
    page = client.get(path).content.decode()
    assert LONG_KEY not in page
    assert "\u200b" not in page
    return page


def test_the_list_shows_invisible_characters_and_hides_secrets(
    admin_client: Client, foreign_row: ApiKey
) -> None:
    page = shown_safely(admin_client, "/api-keys")
    assert 'title="U+200B ZERO WIDTH SPACE">U+200B</span>' in page
    assert f"{PUBLIC_ID}-[secret hidden]" in page


def test_the_audit_trail_shows_them_safely_too(admin_client: Client, foreign_row: ApiKey) -> None:
    page = shown_safely(admin_client, "/api-keys/audit")
    assert ">U+200B</span>" in page


def test_rotating_such_a_row_keeps_its_text_but_never_shows_the_secret(
    admin_client: Client, foreign_row: ApiKey
) -> None:
    confirm = shown_safely(admin_client, f"/api-keys/{foreign_row.public_id}/rotate")
    token = re.search(r'name="form_token" value="([0-9a-f-]{36})"', confirm)
    assert token
    shown = admin_client.post(
        f"/api-keys/{foreign_row.public_id}/rotate",
        {"form_token": token.group(1), "grace": "now"},
    ).content.decode()
    # The new key's own secret is shown once; the one in the description is not.
    assert LONG_KEY not in shown
    assert "[secret hidden]" in shown
    # Nor is it copied into the replacement, or its record: t0admin never writes one.
    replacement = ApiKey.objects.exclude(pk=foreign_row.pk).get()
    assert replacement.description == f"bil\u200bling sk-t0-{PUBLIC_ID}-[secret hidden]"
    assert not AuditEvent.objects.filter(detail__icontains=LONG_KEY).exclude(actor="other-tool")


def test_the_key_page_and_its_history_show_them_safely(
    admin_client: Client, foreign_row: ApiKey
) -> None:
    page = shown_safely(admin_client, f"/api-keys/{foreign_row.public_id}")
    assert page.count(f"{PUBLIC_ID}-[secret hidden]") == 2  # the description, the history
    assert ">U+200B</span>" in page


def test_the_disable_selected_confirmation_shows_them_safely(
    admin_client: Client, foreign_row: ApiKey
) -> None:
    page = admin_client.post(
        "/api-keys/disable-selected", {"public_id": [foreign_row.public_id]}
    ).content.decode()
    assert "Disable 1 API key" in page
    assert LONG_KEY not in page and f"{PUBLIC_ID}-[secret hidden]" in page


def test_editing_such_a_row_records_what_it_was_without_the_secret(
    foreign_row: ApiKey,
) -> None:
    service.set_description(actor="alice", public_id=foreign_row.public_id, description="billing")
    record = AuditEvent.objects.filter(actor="alice").get()
    assert record.detail["before"] == f"bil\u200bling sk-t0-{PUBLIC_ID}-[secret hidden]"


def test_editing_such_a_row_starts_from_what_can_be_seen(
    admin_client: Client, foreign_row: ApiKey
) -> None:
    page = shown_safely(admin_client, f"/api-keys/{foreign_row.public_id}/description")
    assert f'value="billing sk-t0-{PUBLIC_ID}-[secret hidden]"' in page


def test_the_command_line_list_escapes_and_hides_too(foreign_row: ApiKey) -> None:
    out = StringIO()
    call_command("list_api_keys", stdout=out)
    assert LONG_KEY not in out.getvalue()
    assert "bil\\u200bling" in out.getvalue()
    out = StringIO()
    call_command("list_api_keys", "--json", stdout=out)
    assert LONG_KEY not in out.getvalue()


def test_plain_text_renders_as_plain_escaped_text() -> None:
    assert text.visible_html("R&D <team>") == "R&amp;D &lt;team&gt;"
    assert text.visible_html(None) == ""


@pytest.mark.parametrize(
    "split",
    [
        f"{LONG_KEY[:40]}\u200b{LONG_KEY[40:]}",  # a zero-width space
        f"{LONG_KEY[:7]}\u2060{LONG_KEY[7:30]}\u200b{LONG_KEY[30:]}",  # two of them
        f"{LONG_KEY[:24]}\n{LONG_KEY[24:]}",  # a line break
    ],
    ids=["zwsp", "two", "newline"],
)
def test_a_secret_split_by_invisible_characters_is_hidden_too(
    admin_client: Client, split: str
) -> None:
    api_key = service.create_key(actor="t").api_key
    ApiKey.objects.filter(pk=api_key.pk).update(description=f"bot sk-t0-{PUBLIC_ID}-{split} x")
    hidden = f"bot sk-t0-{PUBLIC_ID}-[secret hidden] x"
    for path in ("/api-keys", f"/api-keys/{api_key.public_id}"):
        page = admin_client.get(path).content.decode()
        assert LONG_KEY[:20] not in page and LONG_KEY[-8:] not in page
    # The edit box drops invisible characters after hiding, never before: no key is rejoined.
    edit = admin_client.get(f"/api-keys/{api_key.public_id}/description").content.decode()
    assert f'value="{hidden}"' in edit
    assert LONG_KEY[:20] not in edit
    # Rotation copies the text with the secret hidden.
    service.rotate_key(actor="t", public_id=api_key.public_id)
    replacement = ApiKey.objects.exclude(pk=api_key.pk).get()
    assert replacement.description is not None
    assert LONG_KEY[:20] not in replacement.description
    out = StringIO()
    call_command("list_api_keys", "--json", stdout=out)
    assert LONG_KEY[:20] not in out.getvalue()


def shows_secret(shown: str, run: int = 20) -> bool:
    """Whether `shown` holds `run` characters of the secret in a row (code points shown as
    U+XXXX spans left out)."""
    shown = re.sub(r"<span[^>]*>[^<]*</span>", "", shown)
    return any(LONG_KEY[i : i + run] in shown for i in range(len(LONG_KEY) - run + 1))


NEIGHBOURS = {
    "key, newline, next line": f"old key {KEY}\nrotated 2026-11",
    "key, CRLF, next line": f"old key {KEY}\r\nsee INC-42",
    "word, newline, secret": f"secret\n{LONG_KEY}",
    "word, zwsp, secret": f"x\u200b{LONG_KEY}",
    "split between two lines": f"note\n{LONG_KEY[:20]}\u200b{LONG_KEY[20:]}\nmore",
    "two keys, tab": f"{KEY}\t{tokens.generate()}",
    "variation selector": f"{LONG_KEY[:24]}\ufe0f{LONG_KEY[24:]}",
    "combining mark": f"{LONG_KEY[:10]}\u0301{LONG_KEY[10:]}",
}


@pytest.mark.parametrize("stored", NEIGHBOURS.values(), ids=NEIGHBOURS.keys())
@pytest.mark.parametrize("show", ["visible", "printable", "editable", "secrets_hidden"])
def test_a_secret_beside_or_split_by_what_shows_as_nothing_is_hidden(
    stored: str, show: str
) -> None:
    assert not shows_secret(getattr(text, show)(stored))


def test_hiding_leaves_the_words_around_a_secret() -> None:
    assert text.hide_secrets(f"old key {KEY}\nrotated 2026-11") == (
        f"old key sk-t0-{PUBLIC_ID}-[secret hidden]\nrotated 2026-11"
    )
    assert text.hide_secrets(f"a{LONG_KEY[:30]}\u200b{LONG_KEY[30:]}") == (
        f"a{LONG_KEY[:30]}\u200b{LONG_KEY[30:]}"  # 49 letters: no secret stands apart
    )
