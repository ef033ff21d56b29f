"""`{% key_rows keys %}`: the list's rows (keys.rows) inside a Django template."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template
from django.utils.safestring import SafeString

from keys import rows

register = template.Library()


@register.simple_tag(takes_context=True)
def key_rows(context: Any, keys: Iterable[rows.Row]) -> SafeString:
    return rows.render(
        keys,
        can_write=bool(context.get("can_write")),
        api_keys_url=context["api_keys_url"],
        last_used=context.get("last_used"),
    )
