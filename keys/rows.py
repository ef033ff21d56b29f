"""The key list's rows: the one piece of markup that repeats up to 10,000 times a page.

Written as one Python function rather than a template. Measured on the same 10,000 rows
(bench/RESULTS.md): the Django template language took about 0.2 ms a row, Jinja2 18 µs,
this 5 µs. Jinja2's cost was its autoescaping, which wraps every one of a row's twenty-odd
values in a Markup object. Here each value is escaped once, where it is read, and the
rest of the row is fixed text. Dates are formatted here once per value, in the zone the
request chose (TimezoneMiddleware), as Django's `date` filter would show them.

Ids, classes and the visually hidden texts are what tests, CSS and screen readers rely
on. No htmx attribute on the links: the <tbody> carries one set for all (hx-boost,
hx-target), and the edit view retargets itself to its row.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, tzinfo
from html import escape
from typing import Any, Protocol, cast
from urllib.parse import quote

from django.http import HttpResponse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from keys import text


class Row(Protocol):
    """What a row reads: keys.listing.Listed, or an ApiKey (Find, an edited row)."""

    @property
    def public_id(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def disabled_at(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime | None: ...

    def status(self, now: datetime | None = None) -> str: ...


def when(value: datetime, zone: tzinfo) -> str:
    """As Django's `date:"Y-m-d H:i T"` shows it, in `zone`."""
    return _local(value, zone)[1]


def _local(value: datetime, zone: tzinfo) -> tuple[str, str]:
    """`value` in `zone`, as ISO 8601 for machines and as `when` for people. The second is
    cut from the first (a year is always four digits there): half the cost of formatting
    both, in a function that runs once or twice a row."""
    local = value.astimezone(zone)
    machine = local.isoformat()
    return machine, f"{machine[:10]} {machine[11:16]} {_zone_name(local.tzname())}"


@functools.cache
def _zone_name(name: str | None) -> str:
    """A zone's abbreviation (UTC, CET, CEST...), escaped: the same few, thousands of times
    on a big page."""
    return escape(name or "")


def _time(value: datetime | None, zone: tzinfo) -> str:
    """A <time> element for `value`, or Never."""
    if value is None:
        return "Never"
    machine, human = _local(value, zone)
    return f'<time datetime="{machine}">{human}</time>'


def place() -> SafeString:
    """A mark for a page to hold where its rows go (see splice): new for each response, so
    that nothing else in the page can be taken for it."""
    return mark_safe(f"<!-- t0admin: the key rows {secrets.token_hex(8)} -->")  # noqa: S308


def splice(response: HttpResponse, mark: str, keys: Sequence[Row], **options: Any) -> HttpResponse:
    """The rows put where the rendered page holds `mark` (the list's table).

    A template copies what a tag returns at each level it is nested in, twice (a join,
    then a SafeString): 8.6 MB of rows on a 10,000-row page, nested five deep in list.html
    and base.html. Put in afterwards, each row encoded on its own, they are copied once
    (measured in-process on that page: 148 ms through the template, 66 ms spliced). The
    page is split before the rows go in, so nothing in them can be taken for the mark.
    """
    head, found, tail = response.content.partition(mark.encode())
    if not found:
        if keys:  # a page showing "no keys" for keys that exist would mislead: a bug
            raise RuntimeError("the page has no place for its rows (rows.place)")
        return response
    # Each row encoded on its own and joined once: no 10,000-row str, which (with one
    # "—" in a description) would hold two bytes a character, beside its encoded copy.
    charset = response.charset  # a property that parses Content-Type: read once
    rows = (row.encode(charset) for row in _rows(keys, **options))
    response.content = b"".join([head, *rows, tail])
    return response


def render(keys: Iterable[Row], **options: Any) -> SafeString:
    """The rows, for a template (`{% key_rows %}`); options as for _rows."""
    return mark_safe("".join(_rows(keys, **options)))  # noqa: S308  all escaped in _rows


def _rows(
    keys: Iterable[Row],
    *,
    can_write: bool,
    api_keys_url: str,
    last_used: dict[str, datetime] | None = None,
) -> Iterator[str]:
    """Each key's row. `last_used`: each key's last use (keys.usage), for a Last used cell;
    None: no such cell."""
    now = timezone.now()
    zone = timezone.get_current_timezone()
    base = escape(api_keys_url)
    for key in keys:
        status = key.status(now)  # Active, Disabled or Expired: fixed words, no escaping
        css = status.lower()
        pid = ref = key.public_id
        if not (pid.isascii() and pid.isalnum()):  # not what the gateway makes: another
            # tool wrote the row. Escaped in the page; in links percent-encoded, so that a
            # "/" or ".." in it cannot point the link elsewhere.
            pid, ref = escape(pid), quote(pid, safe="")
        if status == "Active":
            badge = '<span class="badge active">Active</span>'
        else:
            # key_status: Disabled means disabled_at is set; Expired, that expires_at is.
            since = when(cast(datetime, key.disabled_at or key.expires_at), zone)
            badge = (
                f'<span class="badge {css}" title="{status} {since}">{status}'
                f'<span class="visually-hidden"> since {since}</span></span>'
            )
        used = ""
        if last_used is not None:
            used = f'<td class="last-used">{_time(last_used.get(key.public_id), zone)}</td>\n'
        # Details last in the row: a redrawn row still returns focus to its first link, Edit.
        actions = ""
        if can_write:
            actions = (
                f'<a href="{base}/{ref}/description">Edit'
                f'<span class="visually-hidden"> description of {pid}</span></a>'
            )
            if status == "Active":
                actions += (
                    f'<a href="{base}/{ref}/rotate">Rotate'
                    f'<span class="visually-hidden"> {pid}</span></a>'
                )
            if status != "Disabled":
                # The checkbox joins the bulk form above the table (list.html) through
                # form=: no form per row. After the actions, so that focus returns to Edit.
                actions += (
                    f'<a class="danger" href="{base}/{ref}/disable">Disable'
                    f'<span class="visually-hidden"> {pid}</span></a>'
                    f'\n<input type="checkbox" class="select" name="public_id" value="{pid}"'
                    f' form="keys-bulk" aria-label="Select {pid}">'
                )
        # visible: secrets hidden, invisible characters shown (keys/text.py), escaped.
        # No description: an em dash, written as a reference so that the row stays ASCII,
        # which Python builds and encodes as plain bytes (10,000 rows: 5 ms less).
        yield (
            f'<tr id="key-{pid}" class="status-{css}">\n'
            f"<td><code>{pid}</code></td>\n"
            f'<td class="description">{text.visible(key.description) or "&#8212;"}</td>\n'
            f"<td>{badge}</td>\n"
            f"<td>{_time(key.expires_at, zone)}</td>\n"
            f"<td>{_time(key.created_at, zone)}</td>\n"
            f'{used}<td class="actions">{actions}'
            f'<a href="{base}/{ref}">Details<span class="visually-hidden"> of {pid}</span></a>\n'
            "</td>\n</tr>\n"
        )
