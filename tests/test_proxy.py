"""T0ADMIN_AUTH=proxy in process: who the header makes you, and when it is refused.

The same rules through real Nginx and gunicorn are in test_proxy_nginx.py.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from keys import roles

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.5"
STRANGER = "203.0.113.9"


@pytest.fixture(autouse=True)
def proxy_mode(settings: Any) -> Any:
    settings.AUTH_MODE = "proxy"
    settings.AXES_ENABLED = False
    settings.AUTHENTICATION_BACKENDS = ["t0admin.proxy.ProxyUserBackend"]
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/24")]
    settings.PROXY_USER_HEADER = "X-Forwarded-Email"
    settings.PROXY_GROUPS_HEADER = "X-Forwarded-Groups"
    settings.PROXY_ADMINS = ["boss@example.com"]
    settings.PROXY_ADMIN_GROUPS = []
    return settings


def words(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(response.content.decode().split())


def get(client: Client, path: str = "/api-keys", addr: str = PROXY, **headers: str):  # type: ignore[no-untyped-def]
    return client.get(path, REMOTE_ADDR=addr, headers=headers)


def test_header_from_trusted_proxy_signs_in_a_new_viewer(client: Client) -> None:
    response = get(client, **{"X-Forwarded-Email": "Ann@Example.com"})
    assert response.status_code == 200
    ann = User.objects.get(username="ann@example.com")
    assert ann.email == "ann@example.com"
    assert roles.role_of(ann) == "viewer"


def test_listed_identity_becomes_an_admin(client: Client) -> None:
    get(client, **{"X-Forwarded-Email": "boss@example.com"})
    assert roles.role_of(User.objects.get(username="boss@example.com")) == "admin"


def test_star_makes_everyone_an_admin(client: Client, settings: Any) -> None:
    settings.PROXY_ADMINS = ["*"]
    get(client, **{"X-Forwarded-Email": "ann@example.com"})
    assert roles.role_of(User.objects.get(username="ann@example.com")) == "admin"


def test_mapped_group_makes_an_admin(client: Client, settings: Any) -> None:
    settings.PROXY_ADMIN_GROUPS = ["key-admins"]
    get(
        client, **{"X-Forwarded-Email": "ann@example.com", "X-Forwarded-Groups": "staff,key-admins"}
    )
    assert roles.role_of(User.objects.get(username="ann@example.com")) == "admin"


def test_a_known_user_costs_one_query_for_who_they_are(client: Client, settings: Any) -> None:
    """The user, their permissions and their groups (for the role's check) in one query."""
    get(client, **{"X-Forwarded-Email": "ann@example.com"})
    with CaptureQueriesContext(connection) as queries:
        assert get(client, **{"X-Forwarded-Email": "ann@example.com"}).status_code == 200
    asked = [q["sql"] for q in queries if re.search(r"\bauth_(user|group|perm)", q["sql"])]
    assert len(asked) == 1 and "group_names" in asked[0], asked
    # The role still follows the proxy, from the names read with the user.
    settings.PROXY_ADMINS = ["ann@example.com"]
    assert b"Generate API Key" in get(client, **{"X-Forwarded-Email": "ann@example.com"}).content
    assert roles.role_of(User.objects.get(username="ann@example.com")) == "admin"
    # Taken away again: this very request may no longer write.
    settings.PROXY_ADMINS = []
    assert (
        b"Generate API Key" not in get(client, **{"X-Forwarded-Email": "ann@example.com"}).content
    )
    refused = client.post(
        "/api-keys/new", REMOTE_ADDR=PROXY, headers={"X-Forwarded-Email": "ann@example.com"}
    )
    assert refused.status_code == 403


def test_groups_header_is_ignored_unless_groups_are_mapped(client: Client) -> None:
    get(client, **{"X-Forwarded-Email": "ann@example.com", "X-Forwarded-Groups": "key-admins"})
    assert roles.role_of(User.objects.get(username="ann@example.com")) == "viewer"


def test_role_follows_the_proxy_on_later_requests(client: Client, settings: Any) -> None:
    get(client, **{"X-Forwarded-Email": "boss@example.com"})
    settings.PROXY_ADMINS = []
    get(client, **{"X-Forwarded-Email": "boss@example.com"})
    assert roles.role_of(User.objects.get(username="boss@example.com")) == "viewer"


def test_another_identity_through_the_same_browser_gets_its_own_session(client: Client) -> None:
    get(client, **{"X-Forwarded-Email": "boss@example.com"})
    first = client.session.session_key
    response = get(client, **{"X-Forwarded-Email": "ann@example.com"})
    assert response.wsgi_request.user.get_username() == "ann@example.com"
    assert client.session.session_key != first


def test_header_from_untrusted_address_is_refused_and_logged(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="t0admin.proxy"):
        response = get(client, addr=STRANGER, **{"X-Forwarded-Email": "boss@example.com"})
    assert response.status_code == 403
    assert "does not come from a trusted proxy" in words(response)
    assert f"untrusted address {STRANGER}" in caplog.text
    assert not User.objects.exists()


def test_groups_header_alone_from_untrusted_address_is_refused(client: Client) -> None:
    response = get(client, addr=STRANGER, **{"X-Forwarded-Groups": "key-admins"})
    assert response.status_code == 403


def test_trusted_request_without_identity_is_refused_with_the_reason(client: Client) -> None:
    response = get(client)
    assert response.status_code == 403
    assert "without saying who you are" in words(response)
    assert "tagged Tailscale devices" in words(response)


def test_direct_request_without_identity_is_refused(client: Client) -> None:
    response = get(client, addr=STRANGER)
    assert response.status_code == 403
    assert "did not come through it" in words(response)


def test_health_needs_no_identity(client: Client) -> None:
    assert get(client, "/healthz").status_code == 200
    assert get(client, "/healthz", addr=STRANGER).status_code == 200


def test_identity_longer_than_a_user_name_is_refused(client: Client) -> None:
    response = get(client, **{"X-Forwarded-Email": "a" * 140 + "@example.com"})
    assert response.status_code == 403
    assert not User.objects.exists()


def test_deactivated_user_is_refused(client: Client) -> None:
    User.objects.create_user("ann@example.com", is_active=False)
    response = get(client, **{"X-Forwarded-Email": "ann@example.com"})
    assert response.status_code == 403
    assert "deactivated" in words(response)


def test_password_sign_in_page_sends_proxy_users_to_the_keys(client: Client) -> None:
    response = get(client, "/sign-in", **{"X-Forwarded-Email": "ann@example.com"})
    assert response.status_code == 302
    assert response["Location"] == "/api-keys"


def test_nav_offers_no_sign_out_behind_a_proxy(client: Client) -> None:
    page = get(client, **{"X-Forwarded-Email": "ann@example.com"}).content.decode()
    assert "ann@example.com" in page
    assert 'action="/sign-out"' not in page


def test_custom_header_name_is_the_only_one_that_counts(client: Client, settings: Any) -> None:
    settings.PROXY_USER_HEADER = "Tailscale-User-Login"
    response = get(client, **{"X-Forwarded-Email": "boss@example.com"})
    assert response.status_code == 403
    response = get(client, **{"Tailscale-User-Login": "ann@github"})
    assert response.status_code == 200


def test_no_password_admin_is_made_behind_a_proxy() -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("ensure_first_admin", stdout=out)
    assert not User.objects.exists()
    assert out.getvalue() == ""
