"""Find every key in a text and classify them all with one query.

The page, the Find box and `find_leaked_keys` all call this. It is pure but for the one
query in `classify`. Keys found are `tokens.ParsedKey`s, whose repr hides the secret; only
public IDs and states ever leave this module as text.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from keys import tokens
from keys.models import ApiKey

# A key as the gateway reads it, with its `sk-t0-` or without (someone trimmed it), in any
# surrounding: Bearer headers, JSON, `export X=`, `?api_key=`, quotes. It must stand apart
# from other letters and digits, or be followed straight by the next key's `sk-t0-` (a
# one-line field drops the newlines between pasted lines).
KEY_PATTERN = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-t0-)?([A-Za-z0-9]{12})-([A-Za-z0-9]{48})"
    r"(?:(?![A-Za-z0-9])|(?=sk-t0-))"
)
MAX_TEXT_BYTES = 2**20  # the page's limit; the command line streams any size
LONGEST_MATCH = len("sk-t0-") + tokens.PUBLIC_ID_LENGTH + 1 + tokens.LONG_KEY_LENGTH
# What a chunk hands on to the next: any match that a chunk boundary cut, with the one
# character before it that the look-behind needs, and room for the look-ahead.
CARRY = LONGEST_MATCH + 8


def iter_keys(chunks: Iterable[str]) -> Iterator[tokens.ParsedKey]:
    """Every key in the text the chunks make up, in order, repeats included.

    Streams: memory is one chunk plus a short carry, however long the text. A match is
    taken only once the characters on both sides of it are known (not cut off by a
    chunk's edge) and only once (a match inside the carry was decided with the chunk
    before), so a boundary neither loses a key nor invents one.
    """
    carry = ""
    carry_is_start = True  # the carry begins where the text begins: nothing precedes it
    for chunk in chunks:
        if not chunk:
            continue
        buffer = carry + tokens.plain_dashes(chunk)
        for match in KEY_PATTERN.finditer(buffer):
            left_known = carry_is_start or match.start() >= 1
            if left_known and len(carry) <= match.end() < len(buffer):
                yield tokens.ParsedKey(public_id=match.group(1), long_key=match.group(2))
        carry_is_start = carry_is_start and len(buffer) <= CARRY
        carry = buffer[-CARRY:]
    # The end of the text: only matches reaching it were held back.
    for match in KEY_PATTERN.finditer(carry):
        if (carry_is_start or match.start() >= 1) and match.end() == len(carry):
            yield tokens.ParsedKey(public_id=match.group(1), long_key=match.group(2))


def distinct(found: Iterable[tokens.ParsedKey]) -> list[tokens.ParsedKey]:
    """Each key once, in order of first appearance."""
    return list(dict.fromkeys(found))


# A key cut by a line break: a hard wrap, quoted-printable's "=" at the end of a line, a
# wrapped line's indentation or a quoted reply's "> ", and characters no one can see (a
# soft hyphen, a zero-width space) that a chat or a word processor slips in.
_BREAK = re.compile(r"=?\r?\n[ \t>]*|[\u00ad\u200b-\u200d\u2060\ufeff]")
_WHOLE_KEY_AT_START = re.compile(r"sk-t0-([A-Za-z0-9]{12})-([A-Za-z0-9]{48})")


def _rejoined(text: str) -> Iterator[tokens.ParsedKey]:
    """Keys that a break cuts, as the text reads once the break is taken out. Each `sk-t0-`
    is tried with what follows it; a join that makes no real key (the next line just
    happened to follow) is classified as such, never as a working key."""
    start = text.find("sk-t0-")
    while start != -1:
        piece = text[start : start + 2 * LONGEST_MATCH]
        cut = _BREAK.search(piece)
        if cut is not None and cut.start() < LONGEST_MATCH:
            match = _WHOLE_KEY_AT_START.match(_BREAK.sub("", piece))
            if match:
                yield tokens.ParsedKey(public_id=match.group(1), long_key=match.group(2))
        start = text.find("sk-t0-", start + 1)


def extract(text: str) -> list[tokens.ParsedKey]:
    """Every distinct key in `text`, in order of first appearance; then any that a line
    break (or an invisible character) cut in two."""
    return distinct([*iter_keys([text]), *_rejoined(tokens.plain_dashes(text))])


class State(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    NOT_A_KEY = "not_a_working_key"

    @property
    def label(self) -> str:
        return "not a working key" if self is State.NOT_A_KEY else self.value


@dataclass(frozen=True)
class Classified:
    key: tokens.ParsedKey = field(repr=False)
    state: State
    api_key: ApiKey | None  # the row with this public ID, genuine or not
    since: datetime | None = None  # disabled at, or expired at

    @property
    def public_id(self) -> str:
        return self.key.public_id

    @property
    def secret(self) -> str:
        """The whole key as found: only for asking the gateway, never for showing."""
        return f"{tokens.PREFIX}-{tokens.VERSION}-{self.key.public_id}-{self.key.long_key}"

    @property
    def real_state(self) -> str | None:
        """For a string that is not a working key: the state of the real key it imitates."""
        return self.api_key.status().lower() if self.api_key else None


def classify(keys: Sequence[tokens.ParsedKey]) -> list[Classified]:
    """The state of each key, as the gateway would judge it now, from ONE query.

    The query probes `uniq_public_id` once per distinct public ID and compares expiry with
    the database's clock, as the gateway does; the secret is checked here against the
    stored hash in constant time.
    """
    public_ids = list(dict.fromkeys(key.public_id for key in keys))
    # One array parameter, not an IN list of thousands of them: cheaper to send and to
    # plan. Cast to the column's type, or the planner cannot use uniq_public_id.
    wanted = RawSQL("public_id = ANY(%s::char(12)[])", (public_ids,), output_field=BooleanField())
    rows = (
        {
            row.public_id: row
            for row in ApiKey.objects.filter(wanted)
            .order_by()
            .annotate(
                expired=ExpressionWrapper(Q(expires_at__lte=Now()), output_field=BooleanField())
            )
        }
        if public_ids
        else {}
    )
    return [_judge(key, rows.get(key.public_id)) for key in keys]


def _judge(key: tokens.ParsedKey, row: ApiKey | None) -> Classified:
    if row is None:
        return Classified(key, State.UNKNOWN, None)
    if not hmac.compare_digest(row.hash, key.hash):
        return Classified(key, State.NOT_A_KEY, row)
    if row.disabled_at is not None:
        return Classified(key, State.DISABLED, row, row.disabled_at)
    if getattr(row, "expired", False):
        return Classified(key, State.EXPIRED, row, row.expires_at)
    return Classified(key, State.ACTIVE, row)


def counts(classified: Iterable[Classified]) -> dict[State, int]:
    totals = dict.fromkeys(State, 0)
    for item in classified:
        totals[item.state] += 1
    return totals
