"""Descriptions: what may be stored, and how any stored text is shown. No database.

Two descriptions that look the same must be the same, and no description may carry a
secret. Our forms refuse both (keys.service.clean_description); rows written by other
tools may hold either, so every screen and the command line show such text with its
invisible characters made visible and its secrets hidden.
"""

from __future__ import annotations

import html
import re
import unicodedata

from django.utils.safestring import SafeString, mark_safe

from keys import tokens

ZWJ = "\u200d"  # joins emoji into one (👩‍💻): kept between two emoji, refused elsewhere
VARIATION_SELECTOR_16 = "\ufe0f"
SKIN_TONES = range(0x1F3FB, 0x1F400)
BLACK_FLAG = "\U0001f3f4"  # with tag characters: the flags of England, Scotland, Wales
TAG_CHARACTERS = range(0xE0020, 0xE007F)
CANCEL_TAG = "\U000e007f"
# Letters by category that render as nothing: the Hangul fillers and the combining
# grapheme joiner are the usual way to make a blank-looking name.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u034f")
SECRET_MARK = "[secret hidden]"  # noqa: S105  the marker shown in place of a secret


def _emoji_before(text: str, index: int) -> bool:
    """An emoji ends just before `index`, possibly with its skin tone or presentation."""
    while index > 0 and (
        text[index - 1] == VARIATION_SELECTOR_16 or ord(text[index - 1]) in SKIN_TONES
    ):
        index -= 1
    return index > 0 and unicodedata.category(text[index - 1]) == "So"


def _in_flag_tags(text: str, index: int) -> bool:
    """Part of 🏴 + tag letters + cancel tag (a subdivision flag)."""
    start = index
    while start > 0 and ord(text[start - 1]) in TAG_CHARACTERS:
        start -= 1
    end = index + (text[index] != CANCEL_TAG)
    while end < len(text) and ord(text[end]) in TAG_CHARACTERS:
        end += 1
    return (
        start > 0
        and text[start - 1] == BLACK_FLAG
        and end < len(text)
        and text[end] == CANCEL_TAG
        and end > start
    )


def _is_hidden(text: str, index: int) -> bool:
    char = text[index]
    if char in BLANK_LETTERS:
        return True
    if unicodedata.category(char) not in {"Cf", "Zl", "Zp"}:
        return False
    if char == ZWJ:
        following = text[index + 1 : index + 2]
        return not (
            _emoji_before(text, index) and following and unicodedata.category(following) == "So"
        )
    if ord(char) in TAG_CHARACTERS or char == CANCEL_TAG:
        return not _in_flag_tags(text, index)
    return True


def invisible_characters(text: str) -> list[int]:
    """Where `text` holds characters that show as nothing (format characters such as
    U+200B to U+200F, U+2060 to U+2064, U+FEFF, U+061C, U+180E, line and paragraph
    separators), other than those that build an emoji."""
    if text.isprintable() and not BLANK_LETTERS.intersection(text):
        return []
    return [index for index in range(len(text)) if _is_hidden(text, index)]


def name(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"


def holds_secret(text: str) -> bool:
    """A whole key, typographic dashes or not, or the 48-character secret part alone."""
    return tokens.extract(text) is not None


def _to_show(text: str) -> set[int]:
    """Where `text` holds what must be shown as a code: invisible and control characters."""
    if text.isprintable() and not BLANK_LETTERS.intersection(text):
        return set()
    return {
        index
        for index, char in enumerate(text)
        if unicodedata.category(char) == "Cc" or _is_hidden(text, index)
    }


def _passed_over(char: str) -> bool:
    """A character a secret may be split by without a reader noticing: one that shows as
    nothing (a zero-width space, a variation selector, a combining mark on nothing) or
    breaks the line."""
    return char in BLANK_LETTERS or unicodedata.category(char) in _PASSED_OVER


_PASSED_OVER = frozenset({"Cc", "Cf", "Mn", "Me", "Zl", "Zp"})
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")


def hide_secrets(text: str) -> str:
    """`text` with every secret replaced by SECRET_MARK, also one that invisible or control
    characters split (a zero-width space, a line break). A secret is 48 letters or digits
    that stand apart; read with those characters passed over, each of them may also be
    where a secret begins or ends (a key on one line, a note on the next), and the whole
    stretch a secret covers is hidden."""
    if text.isascii() and text.isprintable():
        return tokens.redact(text, SECRET_MARK)
    kept = [index for index, char in enumerate(text) if not _passed_over(char)]
    if len(kept) == len(text):
        return tokens.redact(text, SECRET_MARK)
    joined = "".join(text[index] for index in kept)
    size = tokens.LONG_KEY_LENGTH
    spans: list[list[int]] = []
    for run in _ALNUM_RUN.finditer(joined):
        first, last = run.span()
        if last - first < size:
            continue
        edges = {first, last}
        edges.update(j for j in range(first + 1, last) if kept[j] != kept[j - 1] + 1)
        for start in sorted(edges):
            if start + size in edges:
                low, high = kept[start], kept[start + size - 1] + 1
                if spans and low <= spans[-1][1]:
                    spans[-1][1] = max(spans[-1][1], high)
                else:
                    spans.append([low, high])
    pieces, done = [], 0
    for low, high in spans:
        pieces += [text[done:low], SECRET_MARK]
        done = high
    return "".join([*pieces, text[done:]])


def secrets_hidden(text: str | None) -> str | None:
    """Stored text another tool wrote, as t0admin may copy it into a row of its own (an
    audit record, a replacement key): any key or secret in it replaced by SECRET_MARK."""
    return hide_secrets(text) if text else text


def visible_html(text: str | None) -> SafeString:
    """HTML for stored text: secrets hidden, invisible and control characters shown as
    their code point (named in a tooltip), everything else escaped."""
    return mark_safe(visible(text))  # noqa: S308  every piece escaped in visible()


def visible(text: str | None) -> str:
    """visible_html as a plain str, for HTML built in Python (keys/rows.py): marking each
    description safe cost more than escaping it, 10,000 times a page."""
    if not text:
        return ""
    if text.isascii() and text.isprintable():  # the usual case, 10,000 times a page
        return html.escape(tokens.redact(text, SECRET_MARK))
    text = hide_secrets(text)
    hidden = _to_show(text)
    if not hidden:
        return html.escape(text)
    return "".join(
        f'<span class="hidden-char" title="{html.escape(name(char))}">U+{ord(char):04X}</span>'
        if index in hidden
        else html.escape(char)
        for index, char in enumerate(text)
    )


def printable(text: str) -> str:
    """Stored text for a terminal: secrets hidden, invisible and control characters as
    escapes (another tool may have stored what our forms refuse)."""
    text = hide_secrets(text)
    hidden = _to_show(text)
    return "".join(
        char.encode("unicode_escape").decode() if index in hidden else char
        for index, char in enumerate(text)
    )


def editable(text: str | None) -> str | None:
    """Stored text as the edit form starts from: secrets hidden, invisible and control
    characters dropped, so that what the person sees is what saving stores."""
    if not text:
        return text
    text = hide_secrets(text)
    hidden = _to_show(text)
    return "".join(char for index, char in enumerate(text) if index not in hidden)
