"""{% url %} and {% static %} remember the addresses of names without arguments and of
static files (keys/templatetags/fixed_urls.py): the same text as Django's tags."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.template import engines
from django.templatetags.static import StaticNode
from django.urls import NoReverseMatch, get_script_prefix, reverse, set_script_prefix

from keys.templatetags.fixed_urls import FixedStaticNode, FixedURLNode, fixed_url


@pytest.fixture
def prefix() -> Iterator[None]:
    before = get_script_prefix()
    yield
    set_script_prefix(before)


def render(source: str, **context: object) -> str:
    return str(engines["django"].from_string(source).render(context))


def test_every_template_gets_the_remembering_tag() -> None:
    template = engines["django"].from_string("{% url 'keys:list' %}")
    assert isinstance(template.template.nodelist[0], FixedURLNode)


def test_the_address_is_djangos_under_each_script_prefix(prefix: None) -> None:
    source = "{% url 'keys:list' %} {% url 'keys:leaked' %} {% url 'keys:detail' public_id %}"
    for mounted in ("/", "/t0admin/", "/keys/", "/"):
        set_script_prefix(mounted)
        expected = [reverse("keys:list"), reverse("keys:leaked")]
        expected.append(reverse("keys:detail", args=["abcdefABCDEF"]))
        assert render(source, public_id="abcdefABCDEF") == " ".join(expected)
        assert expected[0] == mounted + "api-keys"
        assert fixed_url("keys:list") == expected[0]


def test_a_name_that_is_no_url_fails_as_with_djangos_tag() -> None:
    assert render("{% url 'keys:nosuch' as found %}[{{ found }}]") == "[]"
    with pytest.raises(NoReverseMatch):
        render("{% url 'keys:nosuch' %}")


def test_an_overridden_urlconf_is_followed(settings) -> None:  # type: ignore[no-untyped-def]
    assert render("{% url 'keys:list' %}") == "/api-keys"
    settings.ROOT_URLCONF = "tests.urls_elsewhere"
    assert render("{% url 'keys:list' %}") == "/mounted-elsewhere/api-keys"


def test_every_template_gets_the_remembering_static_tag() -> None:
    template = engines["django"].from_string("{% static 'css/t0admin.css' %}")
    assert isinstance(template.template.nodelist[0], FixedStaticNode)


def test_a_static_address_is_djangos_and_follows_the_settings(settings) -> None:  # type: ignore[no-untyped-def]
    source = "{% static 'css/t0admin.css' %} {% static 'js/t0admin.js' as js %}[{{ js }}]"
    expected = [StaticNode.handle_simple(p) for p in ("css/t0admin.css", "js/t0admin.js")]
    assert render(source) == f"{expected[0]} [{expected[1]}]"
    assert render(source) == f"{expected[0]} [{expected[1]}]"  # remembered: the same
    settings.STATIC_URL = "/elsewhere/static/"
    moved = StaticNode.handle_simple("css/t0admin.css")
    assert moved.startswith("/elsewhere/static/css/t0admin.")
    assert render("{% static 'css/t0admin.css' %}") == moved
    # Not collected: an error, as with Django's tag, never an address remembered.
    for _ in range(2):
        with pytest.raises(ValueError, match="Missing staticfiles manifest entry"):
            render("{% static 'css/no-such-file.css' %}")
