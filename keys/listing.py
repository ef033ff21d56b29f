"""The key list, paged by keyset on the primary key so every page costs the same.

`ORDER BY created_at DESC OFFSET n` (the TensorZero UI's query) has no index to use and
reads every skipped row; `WHERE id < cursor ORDER BY id DESC` walks the primary key from
the cursor. The cursor in links is a public ID, since `id` is never shown to users.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from keys import tokens
from keys.models import ApiKey, KeyLastUsed, key_status

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


CURSOR_ID = "SELECT id FROM public.tensorzero_auth_api_key WHERE public_id = %s"  # ApiKey's


def _cursor(public_id: str, name: str) -> RawSQL:
    """The cursor key's id, looked up inside the page's own statement (one round trip for a
    deep page, not two). An unknown cursor matches no row: _check_cursor tells that apart
    from a page that is empty. In SQL: the ORM's Subquery cost 0.15 ms more to build than
    the rest of the page's statement."""
    if not tokens.is_public_id(public_id):
        raise _no_such_cursor(name)
    # A constant statement; the public ID goes as a parameter.
    return RawSQL(CURSOR_ID, [public_id])  # noqa: S611


def _check_cursor(public_id: str, name: str) -> None:
    if not ApiKey.objects.filter(public_id=public_id).exists():
        raise _no_such_cursor(name)


def _no_such_cursor(name: str) -> BadPageRequest:
    return BadPageRequest(f"{name} must be the public ID of a listed key.")


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


STATUSES = ("active", "disabled", "expired")
UNUSED_DAYS = (30, 90)


@dataclass(frozen=True)
class Filters:
    """?status= and ?unused= (days): the list's filters, combined with the search."""

    status: str = ""
    unused_days: int | None = None

    def params(self) -> dict[str, str | int]:
        found: dict[str, str | int] = {"status": self.status} if self.status else {}
        if self.unused_days:
            found["unused"] = self.unused_days
        return found


def parse_filters(status: str | None, unused: str | None) -> Filters:
    status = (status or "").strip().lower()
    if status and status not in STATUSES:
        raise BadPageRequest("status must be active, disabled or expired.")
    days = None
    if unused:
        if unused not in {str(d) for d in UNUSED_DAYS}:
            raise BadPageRequest("unused must be 30 or 90 (days without an inference).")
        days = int(unused)
    return Filters(status, days)


def _status_q(status: str, now: datetime) -> Q:
    # The gateway's rules: disabled wins; an expiry at or before now has expired.
    live = Q(disabled_at__isnull=True)
    if status == "disabled":
        return ~live
    expired = live & Q(expires_at__lte=now)
    if status == "expired":
        return expired
    return live & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def _used_since(cutoff: datetime) -> Exists:
    return Exists(
        KeyLastUsed.objects.filter(public_id=OuterRef("public_id"), last_used__gte=cutoff)
    )


def filtered(
    keys: QuerySet[ApiKey], filters: Filters, now: datetime | None = None
) -> QuerySet[ApiKey]:
    """Keys matching the filters. "Not used in N days": no inference in the last N days
    and created before them (a key made yesterday is new, not stale)."""
    now = now or timezone.now()
    if filters.status:
        keys = keys.filter(_status_q(filters.status, now))
    if filters.unused_days:
        cutoff = now - timedelta(days=filters.unused_days)
        keys = keys.filter(created_at__lt=cutoff).filter(~_used_since(cutoff))
    return keys


def counts(query: str, now: datetime | None = None) -> dict[str, int]:
    """How many keys each filter shows (within the search): one pass over the key table,
    and the recently used keys (one row each in KeyLastUsed) taken off the old ones."""
    now = now or timezone.now()
    keys = matching(query)
    cutoffs = {days: now - timedelta(days=days) for days in UNUSED_DAYS}
    aggregates = {status: Count("id", filter=_status_q(status, now)) for status in STATUSES}
    for days, cutoff in cutoffs.items():
        aggregates[f"older_{days}"] = Count("id", filter=Q(created_at__lt=cutoff))
    found = keys.order_by().aggregate(all=Count("id"), **aggregates)
    for days, cutoff in cutoffs.items():
        recent = KeyLastUsed.objects.filter(last_used__gte=cutoff).values("public_id")
        used = keys.order_by().filter(created_at__lt=cutoff, public_id__in=recent).count()
        found[f"unused_{days}"] = found.pop(f"older_{days}") - used
    return found


def page(
    limit: int,
    before: str | None = None,
    after: str | None = None,
    query: str = "",
    filters: Filters = Filters(),  # noqa: B008  frozen, never mutated
) -> Page:
    """Newest first. `before`: keys older than that one; `after`: newer ones."""
    if before and after:
        raise BadPageRequest("Use either before or after, not both.")
    keys = filtered(matching(query), filters)
    if after:
        # Walk upwards from the cursor, then show that slice newest first.
        rows = _listed(keys.filter(id__gt=_cursor(after, "after")).order_by("id")[: limit + 1])
        more_newer = len(rows) > limit
        rows = rows[:limit][::-1]
        if not rows:  # nothing newer than the cursor any more: that is the first page
            _check_cursor(after, "after")
            return page(limit, query=query, filters=filters)
        return Page(
            keys=rows,
            previous_cursor=rows[0].public_id if more_newer else None,
            next_cursor=rows[-1].public_id,  # the cursor itself is older: there is more
        )
    if before:
        keys = keys.filter(id__lt=_cursor(before, "before"))
    rows = _listed(keys.order_by("-id")[: limit + 1])
    if before and not rows:
        _check_cursor(before, "before")
    more_older = len(rows) > limit
    rows = rows[:limit]
    return Page(
        keys=rows,
        previous_cursor=rows[0].public_id if rows and before else None,
        next_cursor=rows[-1].public_id if rows and more_older else None,
    )
