"""The leaked keys table's rows, built in Python: a paste holds up to thousands of keys,
and the template engine spent most of the 300 ms budget on them (bench/RESULTS.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

MEANING = {
    "active": "Works at the gateway now.",
    "disabled": "Already dead: the gateway refuses it.",
    "expired": "Already dead: the gateway refuses it.",
    "unknown": "No such public ID here: another deployment's key, or made up.",
}


def _when(value: Any) -> SafeString:
    if value is None:
        return SafeString("")
    local = timezone.localtime(value)
    return format_html(
        ' <span class="since">since <time datetime="{}">{}</time></span>',
        local.isoformat(),
        local.strftime("%Y-%m-%d %H:%M %Z"),
    )


@register.simple_tag(takes_context=True)
def leak_rows(context: template.Context) -> SafeString:
    prefix = context["api_keys_url"]
    since = quote(context["since"].isoformat(), safe="")
    can_write = context.get("can_write", False)
    incident = quote(context.get("incident") or "", safe="")
    show_gateway = bool(context.get("report"))
    rows = []
    for row in context["rows"]:
        public_id = row.public_id
        if row.state == "unknown":
            id_cell = format_html("<code>{}</code>", public_id)
        else:
            id_cell = format_html(
                '<a href="{}/{}?since={}"><code>{}</code></a>', prefix, public_id, since, public_id
            )
        meaning = MEANING.get(row.state) or (
            "Wrong secret for a real key: the gateway refuses it. The real key is "
            f"{row.real_state} and not leaked by this."
        )
        gateway = (
            format_html(
                '<td class="gateway{}">{}</td>',
                " loud" if row.answer and row.answer.loud else "",
                row.answer.text if row.answer else "—",
            )
            if show_gateway
            else ""
        )
        rotate = (
            format_html(
                '<a href="{0}/{1}/rotate?incident={2}" hx-get="{0}/{1}/rotate?incident={2}" '
                'hx-target="#modal-body">Rotate<span class="visually-hidden"> {1}</span></a>',
                prefix,
                public_id,
                incident,
            )
            if can_write and row.state == "active"
            else ""
        )
        rows.append(
            (
                row.state,
                public_id,
                id_cell,
                row.state,
                row.label,
                _when(row.since),
                format_html(' <span class="outcome">({})</span>', row.outcome)
                if row.outcome
                else "",
                meaning,
                gateway,
                rotate,
            )
        )
    return format_html_join(
        "\n",
        '<tr class="leak-{}" data-public-id="{}"><td>{}</td>'
        '<td><span class="badge {}">{}</span>{}{}</td><td class="description">{}</td>{}'
        '<td class="actions">{}</td></tr>',
        rows,
    )
