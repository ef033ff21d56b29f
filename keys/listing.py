"""The key list, paged by keyset on the primary key so every page costs the same.

`ORDER BY created_at DESC OFFSET n` (the TensorZero UI's query) has no index to use and
reads every skipped row; `WHERE id < cursor ORDER BY id DESC` walks the primary key from
the cursor. The cursor in links is a public ID, since `id` is never shown to users.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.db.models import QuerySet

from keys import tokens
from keys.models import ApiKey, key_status

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_QUERY = 255


class BadPageRequest(ValueError):
    """A paging parameter the user can correct; str() says how."""


class Listed(NamedTuple):
    """What a list row shows. Read as plain tuples: building a model instance per row cost
    more than the query (bench/RESULTS.md). Duck-types ApiKey for the row template."""

    public_id: str
    description: str | None
    disabled_at: datetime | None
    created_at: datetime
    expires_at: datetime | None

    def status(self, now: datetime | None = None) -> str:
        return key_status(self.disabled_at, self.expires_at, now)


def _listed(keys: QuerySet[ApiKey]) -> list[Listed]:
    return [Listed._make(row) for row in keys.values_list(*Listed._fields)]


@dataclass(frozen=True)
class Page:
    keys: list[Listed]
    previous_cursor: str | None  # ?after=<public_id>: the page before this one
    next_cursor: str | None  # ?before=<public_id>: the page after this one


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadPageRequest(f"limit must be a whole number from 1 to {MAX_LIMIT:,}.")
    return int(raw)


def _cursor_id(public_id: str, name: str) -> int:
    # public_id is unique: no ORDER BY (the model's default ordering would add one).
    found = (
        list(ApiKey.objects.filter(public_id=public_id).order_by().values_list("id", flat=True)[:1])
        if tokens.is_public_id(public_id)
        else []
    )
    if not found:
        raise BadPageRequest(f"{name} must be the public ID of a listed key.")
    return int(found[0])


def parse_query(raw: str | None) -> str:
    query = (raw or "").strip()
    if len(query) > MAX_QUERY or "\x00" in query:
        raise BadPageRequest(f"Search for at most {MAX_QUERY} characters, without NUL bytes.")
    if tokens.may_hold_secret(query):
        # Never a whole key in a URL (it ends up in logs and history): the Find box posts it.
        raise BadPageRequest(
            "That looks like a whole API key. Never put one in a URL: paste it into the "
            "Find box, which sends it privately, or search by its public ID."
        )
    return query


def matching(query: str) -> QuerySet[ApiKey]:
    """Keys whose public ID is `query`, or whose description contains it (any case).

    The gateway's table has no index on description (t0admin adds none): a search walks
    the primary key from the cursor until it has a page of matches.
    """
    keys = ApiKey.objects.all()
    if not query:
        return keys
    if tokens.is_public_id(query):
        # One probe of uniq_public_id; OR-ed with the ILIKE it would read the whole table.
        exact = keys.filter(public_id=query)
        if exact.exists():
            return exact
    return keys.filter(description__icontains=query)


def page(limit: int, before: str | None = None, after: str | None = None, query: str = "") -> Page:
    """Newest first. `before`: keys older than that one; `after`: newer ones."""
    if before and after:
        raise BadPageRequest("Use either before or after, not both.")
    keys = matching(query)
    if after:
        # Walk upwards from the cursor, then show that slice newest first.
        rows = _listed(keys.filter(id__gt=_cursor_id(after, "after")).order_by("id")[: limit + 1])
        more_newer = len(rows) > limit
        rows = rows[:limit][::-1]
        if not rows:  # nothing newer than the cursor any more: that is the first page
            return page(limit, query=query)
        return Page(
            keys=rows,
            previous_cursor=rows[0].public_id if more_newer else None,
            next_cursor=rows[-1].public_id,  # the cursor itself is older: there is more
        )
    if before:
        keys = keys.filter(id__lt=_cursor_id(before, "before"))
    rows = _listed(keys.order_by("-id")[: limit + 1])
    more_older = len(rows) > limit
    rows = rows[:limit]
    return Page(
        keys=rows,
        previous_cursor=rows[0].public_id if rows and before else None,
        next_cursor=rows[-1].public_id if rows and more_older else None,
    )
