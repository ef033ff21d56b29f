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


_KEY_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])sk-t0-[A-Za-z0-9]{12}-[A-Za-z0-9]{48}(?![A-Za-z0-9])")


def mentions_key(text: str) -> bool:
    """True for anything that may carry a key, in any case and anywhere in the text
    (`Bearer sk-t0-…`, `export TENSORZERO_API_KEY=sk-t0-…`): such text is a secret."""
    return f"{PREFIX}-{VERSION}-" in text.lower()


def extract(text: str) -> str | None:
    """The first whole key inside `text`, as the gateway would read it, if any."""
    found = _KEY_IN_TEXT.search(text)
    return found.group(0) if found else None
