"""The gateway's key format: generate, parse, hash. Pure Python, no Django.

A key reads `sk-t0-<public_id>-<long_key>`: 12 and 48 characters of [A-Za-z0-9] from a
cryptographically secure source. The database keeps `public_id` and the lowercase hex
SHA-256 of `long_key` alone; the key itself is never stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass

ALPHABET = string.ascii_letters + string.digits
PREFIX = "sk"
VERSION = "t0"
PUBLIC_ID_LENGTH = 12
LONG_KEY_LENGTH = 48


class InvalidKey(ValueError):
    """The text is not a TensorZero API key."""


@dataclass(frozen=True)
class ParsedKey:
    public_id: str
    long_key: str = ""

    @property
    def hash(self) -> str:
        return hash_long_key(self.long_key)

    def __repr__(self) -> str:  # never let the secret reach a log through repr()
        return f"ParsedKey(public_id={self.public_id!r}, long_key=<hidden>)"


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def generate() -> str:
    return f"{PREFIX}-{VERSION}-{_random(PUBLIC_ID_LENGTH)}-{_random(LONG_KEY_LENGTH)}"


def hash_long_key(long_key: str) -> str:
    return hashlib.sha256(long_key.encode("utf-8")).hexdigest()


def _alphanumeric(part: str, length: int) -> bool:
    return len(part) == length and all(char in ALPHABET for char in part)


def is_public_id(text: str) -> bool:
    return _alphanumeric(text, PUBLIC_ID_LENGTH)


def parse(key: str) -> ParsedKey:
    """Split a key as the gateway does; anything else raises InvalidKey."""
    parts = key.split("-")
    if (
        len(parts) != 4
        or parts[0] != PREFIX
        or parts[1] != VERSION
        or not _alphanumeric(parts[2], PUBLIC_ID_LENGTH)
        or not _alphanumeric(parts[3], LONG_KEY_LENGTH)
    ):
        raise InvalidKey("not a TensorZero API key (sk-t0-<12 characters>-<48 characters>)")
    return ParsedKey(public_id=parts[2], long_key=parts[3])


# Word processors and chat apps turn "-" into these; a key pasted from them is still a key.
_DASHES = str.maketrans(
    dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-")
)


def plain_dashes(text: str) -> str:
    """`text` with typographic dashes made plain, character for character (same length)."""
    return text.translate(_DASHES)


_KEY_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-t0-)?([A-Za-z0-9]{12})-([A-Za-z0-9]{48})(?![A-Za-z0-9])"
)
_LONG_KEY_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{48}(?![A-Za-z0-9])")
_SECRET_LIKE = re.compile(r"[A-Za-z0-9]{40,}")


def may_hold_secret(text: str) -> bool:
    """True for text that may carry a key or its secret part: `Bearer sk-t0-…`,
    `export TENSORZERO_API_KEY=…`, the 48 characters a double click selects, a key
    with typographic dashes. Such text is a secret: never a URL, never a log line."""
    return f"{PREFIX}-{VERSION}-" in plain_dashes(text).lower() or bool(_SECRET_LIKE.search(text))


def extract(text: str) -> ParsedKey | None:
    """The first key inside `text`, with or without its `sk-t0-`, as the gateway would
    read it once the dashes are plain; or just its secret part (public_id empty)."""
    plain = plain_dashes(text)
    found = _KEY_IN_TEXT.search(plain)
    if found:
        return ParsedKey(public_id=found.group(1), long_key=found.group(2))
    alone = _LONG_KEY_IN_TEXT.search(plain)
    return ParsedKey(public_id="", long_key=alone.group(0)) if alone else None


def redact(text: str, mark: str) -> str:
    """`text` with every secret part (48 characters, alone or inside a whole key, whatever
    its dashes) replaced by `mark`; public IDs stay, they are not secret."""
    return _LONG_KEY_IN_TEXT.sub(mark, text)
