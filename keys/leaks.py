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
# A key that a line break (or an invisible character) cut: a hard wrap, quoted-printable's
# "=" at the end of a line, a wrapped line's indentation or a quoted reply's "> ", a soft
# hyphen or a zero-width space that a chat or a word processor slipped in. One pattern
# reads it with the breaks allowed between any two of its characters, and holds it to the
# same end as an uncut key.
_BREAK = re.compile(r"=?\r?\n[ \t>]*|[\u00ad\u200b-\u200d\u2060\ufeff]")
_B = rf"(?:{_BREAK.pattern})*"
_CUT_KEY = re.compile(
    rf"sk-t0-((?:{_B}[A-Za-z0-9]){{12}}){_B}-((?:{_B}[A-Za-z0-9]){{48}})"
    r"(?:(?![A-Za-z0-9])|(?=sk-t0-))"
)
# How far past a key's first character deciding it may look: a whole key and the character
# after it, or a cut one with its breaks.
WINDOW = 2 * LONGEST_MATCH
# What a chunk hands on to the next: every key not yet decided, with the characters
# before it that the look-behind needs.
CARRY = WINDOW + 8


def _keys_from(buffer: str, first: int, stop: int) -> Iterator[tokens.ParsedKey]:
    """The keys that start in buffer[first:stop], in the order they start: whole ones, and
    cut ones as the text reads once the break is taken out. A join that makes no real key
    (the next line just happened to follow) is classified as such, never as working."""
    found: list[tuple[int, tokens.ParsedKey]] = []
    # From a key's length before `first`: a key decided before (which ends by then) is
    # matched again and passed over, so that the part of it after its `sk-t0-` is never
    # taken for a key of its own.
    for match in KEY_PATTERN.finditer(buffer, max(first - LONGEST_MATCH, 0)):
        if match.start() >= stop:
            break
        if match.start() >= first:
            found.append((match.start(), tokens.ParsedKey(match.group(1), match.group(2))))
    for cut in _CUT_KEY.finditer(buffer, first):
        if cut.start() >= stop:
            break
        # Longer than a whole key: cut somewhere. At most WINDOW long, so that where the
        # chunks' edges fall decides nothing.
        if LONGEST_MATCH < cut.end() - cut.start() <= WINDOW:
            public_id, long_key = (_BREAK.sub("", part) for part in cut.groups())
            found.append((cut.start(), tokens.ParsedKey(public_id, long_key)))
    for _, key in sorted(found, key=lambda item: item[0]):
        yield key


def iter_keys(chunks: Iterable[str]) -> Iterator[tokens.ParsedKey]:
    """Every key in the text the chunks make up, in the order they start, repeats included.

    Streams: memory is one chunk plus a short carry, however long the text. A key is
    decided once WINDOW characters after its start are known (or the text has ended), and
    once only, by where it starts: so where the chunks' edges fall changes nothing.
    """
    buffer = ""
    offset = 0  # where in the text buffer[0] is
    decided = 0  # every key starting before this place in the text was decided
    for chunk in chunks:
        if not chunk:
            continue
        buffer += tokens.plain_dashes(chunk)
        ready = len(buffer) - WINDOW
        if ready > decided - offset:
            yield from _keys_from(buffer, decided - offset, ready)
            decided = offset + ready
        drop = max(0, len(buffer) - CARRY)
        buffer, offset = buffer[drop:], offset + drop
    yield from _keys_from(buffer, max(decided - offset, 0), len(buffer))


def distinct(found: Iterable[tokens.ParsedKey]) -> list[tokens.ParsedKey]:
    """Each key once, in order of first appearance."""
    return list(dict.fromkeys(found))


def extract(text: str) -> list[tokens.ParsedKey]:
    """Every distinct key in `text`, in order of first appearance."""
    return distinct(iter_keys([text]))


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
