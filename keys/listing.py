"""The key list, paged by keyset on the primary key so every page costs the same.

`ORDER BY created_at DESC OFFSET n` (the TensorZero UI's query) has no index to use and
reads every skipped row; `WHERE id < cursor ORDER BY id DESC` walks the primary key from
the cursor. The cursor in links is a public ID, since `id` is never shown to users.
"""

from __future__ import annotations

from dataclasses import dataclass

from keys import tokens
from keys.models import ApiKey

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


class BadPageRequest(ValueError):
    """A paging parameter the user can correct; str() says how."""


@dataclass(frozen=True)
class Page:
    keys: list[ApiKey]
    limit: int
    previous_cursor: str | None  # ?after=<public_id>: the page before this one
    next_cursor: str | None  # ?before=<public_id>: the page after this one


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadPageRequest(f"limit must be a whole number from 1 to {MAX_LIMIT:,}.")
    return int(raw)


def _cursor_id(public_id: str, name: str) -> int:
    # A slice, not .first(): public_id is unique, so no ORDER BY is needed.
    found = (
        list(ApiKey.objects.filter(public_id=public_id).values_list("id", flat=True)[:1])
        if tokens.is_public_id(public_id)
        else []
    )
    if not found:
        raise BadPageRequest(f"{name} must be the public ID of a listed key.")
    return int(found[0])


def page(limit: int, before: str | None = None, after: str | None = None) -> Page:
    """Newest first. `before`: keys older than that one; `after`: newer ones."""
    if before and after:
        raise BadPageRequest("Use either before or after, not both.")
    keys = ApiKey.objects.all()
    if after:
        # Walk upwards from the cursor, then show that slice newest first.
        rows = list(keys.filter(id__gt=_cursor_id(after, "after")).order_by("id")[: limit + 1])
        more_newer = len(rows) > limit
        rows = rows[:limit][::-1]
        if not rows:  # nothing newer than the cursor any more: that is the first page
            return page(limit)
        return Page(
            keys=rows,
            limit=limit,
            previous_cursor=rows[0].public_id if rows and more_newer else None,
            next_cursor=rows[-1].public_id if rows else None,
        )
    if before:
        keys = keys.filter(id__lt=_cursor_id(before, "before"))
    rows = list(keys.order_by("-id")[: limit + 1])
    more_older = len(rows) > limit
    rows = rows[:limit]
    return Page(
        keys=rows,
        limit=limit,
        previous_cursor=rows[0].public_id if rows and before else None,
        next_cursor=rows[-1].public_id if rows and more_older else None,
    )
