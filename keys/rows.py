"""The key list's rows, rendered by Jinja2 (templates/jinja2/keys/rows.html).

The rest of the site is the Django template language; the rows are not, because they are
the one place that repeats up to 10,000 times a page. Measured on the same rows
(bench/RESULTS.md): the Django template cost about 0.2 ms a row, the same markup in Jinja2
(compiled to Python, escaping in C) a tenth of that. Dates are formatted here once per
value rather than through Django's `date` filter, the slowest part of the old row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any, Protocol

import jinja2
from django.template import engines
from django.utils import timezone
from markupsafe import Markup

from keys import text


class Row(Protocol):
    """What a row reads: keys.listing.Listed, or an ApiKey (Find, an edited row)."""

    public_id: str
    description: str | None
    disabled_at: datetime | None
    created_at: datetime
    expires_at: datetime | None

    def status(self, now: datetime | None = None) -> str: ...


# Both take the viewer's zone (TimezoneMiddleware) as render() found it once: looking it up
# per value (timezone.localtime) was a third of a row's cost.


def when(value: datetime, zone: tzinfo) -> str:
    """As Django's `date:"Y-m-d H:i T"` shows it, in `zone`."""
    local = value.astimezone(zone)
    return (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d} "
        f"{local.hour:02d}:{local.minute:02d} {local.tzname()}"
    )


def iso(value: datetime, zone: tzinfo) -> str:
    """As Django's `date:"c"`, in `zone`."""
    return value.astimezone(zone).isoformat()


def environment(**options: Any) -> jinja2.Environment:
    """Django's Jinja2 backend calls this (settings.TEMPLATES)."""
    # Always on (Django's backend sets it too): descriptions are anyone's text.
    options.pop("autoescape", None)
    env = jinja2.Environment(autoescape=True, **options)
    env.filters.update(when=when, iso=iso, visible=text.visible_html)
    return env


def render(
    keys: Iterable[Row],
    *,
    can_write: bool,
    api_keys_url: str,
    last_used: dict[str, datetime] | None = None,
) -> Markup:
    """`last_used`: each key's last use (keys.usage), for a Last used cell; None: no cell."""
    template = engines["jinja2"].get_template("keys/rows.html").template  # type: ignore[attr-defined]
    html = template.render(
        keys=keys,
        can_write=can_write,
        api_keys_url=api_keys_url,
        now=timezone.now(),
        zone=timezone.get_current_timezone(),
        last_used=last_used,
    )
    return Markup(html)  # noqa: S704  Jinja2 escaped every value (autoescape is on)
