"""{% url %} and {% static %} as Django's, remembering the address of each URL name given
without arguments, and of each static file.

Such an address depends only on the URLconf, the script prefix (where t0admin is mounted)
and the application namespace: fixed for a process, once those are known. The list page
names about a dozen, and each of Django's lookups costs about 20 µs, a tenth of the page's
own work besides the database (bench/RESULTS.md, 2026-12-03 night). A name with arguments
(`{% url 'keys:detail' key.public_id %}`) or `as var` is looked up as Django does.

A static file's address (its hashed name, from the manifest collectstatic wrote) is fixed
for a process as well: Django's lookup costs about 20 µs, and every page names four.

TEMPLATES lists this library among the builtins, after Django's own: every template's
{% url %} and {% static %} are these, without a {% load %} line.
"""

from __future__ import annotations

import functools
from typing import Any

from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.base import Parser, Token
from django.template.context import Context
from django.template.defaulttags import URLNode
from django.template.defaulttags import url as djangos_url
from django.templatetags.static import StaticNode, do_static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape

register = template.Library()


@functools.lru_cache(maxsize=256)
def _fixed(name: str, current_app: str | None, prefix: str, urlconf: Any) -> str:
    # reverse() reads the script prefix itself: the key only keeps prefixes apart.
    return reverse(name, urlconf=urlconf, current_app=current_app)


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    """Settings change only in tests (override_settings); Django then forgets its own URL
    caches, and this one goes with them."""
    if setting in {"ROOT_URLCONF", "FORCE_SCRIPT_NAME"}:
        _fixed.cache_clear()
    # The settings Django's own static file storage is reset for, and DEBUG, under which
    # the manifest's names are not used.
    if setting in {"STATIC_URL", "STATIC_ROOT", "STORAGES", "DEBUG", "FORCE_SCRIPT_NAME"}:
        _static.cache_clear()


def fixed_url(name: str, current_app: str | None = None) -> str:
    """reverse(name), for a URL name without arguments."""
    return _fixed(name, current_app, get_script_prefix(), get_urlconf())


class FixedURLNode(URLNode):
    def render(self, context: Context) -> str:
        if self.args or self.kwargs or self.asvar:
            return str(super().render(context))
        request = getattr(context, "request", None)
        # The application namespace, found as Django's URLNode finds it.
        current_app = getattr(request, "current_app", None)
        if current_app is None:
            current_app = getattr(getattr(request, "resolver_match", None), "namespace", None)
        url = fixed_url(self.view_name.resolve(context), current_app)
        return str(conditional_escape(url)) if context.autoescape else url


@register.tag
def url(parser: Parser, token: Token) -> FixedURLNode:
    node = djangos_url(parser, token)
    return FixedURLNode(node.view_name, node.args, node.kwargs, node.asvar)


@functools.lru_cache(maxsize=256)
def _static(path: str, prefix: str) -> str:
    # A relative STATIC_URL is read under the script prefix: the key keeps prefixes apart.
    return str(StaticNode.handle_simple(path))


class FixedStaticNode(StaticNode):
    def url(self, context: Context) -> str:
        return _static(self.path.resolve(context), get_script_prefix())


@register.tag
def static(parser: Parser, token: Token) -> FixedStaticNode:
    node = do_static(parser, token)
    return FixedStaticNode(varname=node.varname, path=node.path)
