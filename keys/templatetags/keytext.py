"""{{ text|visible }}: stored text with its secrets hidden and invisible characters shown."""

from django import template
from django.utils.safestring import SafeString

from keys import text

register = template.Library()


@register.filter(is_safe=True)
def visible(value: str | None) -> SafeString:
    return text.visible_html(value)
