"""Built-in sign-in: Argon2, pages closed to strangers, throttling, sign-out, idle expiry."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from keys import roles, service
from keys.models import Session
from tests.conftest import gateway_accepts

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def alice() -> User:
    user = User.objects.create_user("alice", password=PASSWORD)
    roles.set_role(user, roles.ADMINS)
    return user


def sign_in(client: Client, username: str, password: str, **extra: str):  # type: ignore[no-untyped-def]
    return client.post("/sign-in", {"username": username, "password": password}, **extra)


def test_keys_page_sends_strangers_to_sign_in(client: Client) -> None:
    response = client.get("/api-keys")
    assert response.status_code == 302
    assert response["Location"] == "/sign-in?next=/api-keys"


def test_htmx_request_of_a_stranger_redirects_the_whole_page(client: Client) -> None:
    response = client.get("/api-keys", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/sign-in?next=/api-keys"


def test_a_form_sent_after_the_session_ended_returns_to_its_page_once_signed_in(
    client: Client, alice: User
) -> None:
    """Found by a probe: an htmx Disable or Find whose session had ended came back, after
    signing in, to its POST-only address, which answered 405."""
    key = service.create_key(actor="alice")
    public_id = key.api_key.public_id
    htmx = {"HX-Request": "true", "HX-Current-URL": "http://localhost/api-keys?q=prod"}
    sent = client.post(f"/api-keys/{public_id}/disable", headers=htmx, HTTP_HOST="localhost")
    assert sent.status_code == 204
    assert sent["HX-Redirect"] == "/sign-in?next=/api-keys%3Fq%3Dprod"
    assert gateway_accepts(key.secret)  # nothing was done
    form = client.get(sent["HX-Redirect"], HTTP_HOST="localhost").content.decode()
    assert 'name="next" value="/api-keys?q=prod"' in form
    signed_in = client.post(
        "/sign-in",
        {"username": "alice", "password": PASSWORD, "next": "/api-keys?q=prod"},
        HTTP_HOST="localhost",
    )
    page = client.get(signed_in["Location"], HTTP_HOST="localhost")
    assert signed_in["Location"] == "/api-keys?q=prod" and page.status_code == 200
    assert "what you sent was not done: nothing was changed" in page.content.decode()


@pytest.mark.parametrize(
    "headers",
    [{}, {"HX-Request": "true", "HX-Current-URL": "https://elsewhere.example/api-keys"}],
    ids=["no-htmx", "another-site"],
)
def test_a_form_sent_after_the_session_ended_returns_to_the_list_otherwise(
    client: Client, headers: dict[str, str]
) -> None:
    sent = client.post("/api-keys/find", {"query": "x"}, headers=headers, HTTP_HOST="localhost")
    where = sent["HX-Redirect"] if headers else sent["Location"]
    assert where == "/sign-in?next=/api-keys"


def test_sign_in_page_is_open(client: Client) -> None:
    response = client.get("/sign-in")
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_health_is_open_to_strangers(client: Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_passwords_are_stored_with_argon2(alice: User) -> None:
    assert alice.password.startswith("argon2$argon2id$")


def test_right_password_signs_in_and_opens_keys(client: Client, alice: User) -> None:
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/api-keys"
    assert client.get("/api-keys").status_code == 200


def test_wrong_password_is_refused_in_words(client: Client, alice: User) -> None:
    response = sign_in(client, "alice", "wrong")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert client.get("/api-keys").status_code == 302


@pytest.mark.parametrize("length", [151, 256, 1000])
def test_a_user_name_longer_than_any_is_refused_in_words(client: Client, length: int) -> None:
    # The sign-in throttle would store it in a 255-character column: a 500 from 256 on.
    response = sign_in(client, "u" * length, "wrong")
    assert response.status_code == 200
    assert "A user name has at most 150 characters." in response.content.decode()


def test_an_api_key_typed_as_the_user_name_is_neither_stored_nor_shown(client: Client) -> None:
    from axes.models import AccessAttempt, AccessFailureLog

    key = service.create_key(actor="t").secret
    response = sign_in(client, f"Bearer {key}", "whatever")
    page = response.content.decode()
    assert "looks like an API key, not a user name" in page
    secret = key.split("-")[3]
    assert secret not in page
    stored = [*AccessAttempt.objects.values(), *AccessFailureLog.objects.values()]
    assert secret not in repr(stored)


def test_sixth_attempt_after_five_wrong_passwords_is_refused_even_when_right(
    client: Client, alice: User
) -> None:
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert "Try again in 1 minute." in response.content.decode()
    assert response["Retry-After"] == "60"
    assert client.get("/api-keys").status_code == 302


def test_failures_from_one_address_lock_out_other_user_names(client: Client, alice: User) -> None:
    for number in range(5):
        sign_in(client, f"nobody{number}", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 429


def test_failures_for_one_user_name_lock_it_out_from_other_addresses(
    client: Client, alice: User
) -> None:
    for number in range(5):
        sign_in(client, "alice", "wrong", REMOTE_ADDR=f"198.51.100.{number}")
    assert sign_in(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.7").status_code == 429


@pytest.fixture
def loopback_proxy(settings: Any) -> Any:
    """As with T0ADMIN_TRUSTED_PROXIES=127.0.0.1: the test client's address is a proxy."""
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    return settings


def test_forwarded_for_from_an_unconfigured_proxy_cannot_dodge_the_lockout(
    client: Client, alice: User
) -> None:
    """By default no proxy is trusted: a local process that makes up X-Forwarded-For for
    each attempt is still one address, and locked out after five failures."""
    for number in range(5):
        sign_in(client, f"nobody{number}", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{number}")
    response = sign_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert response.status_code == 429


def test_failures_through_a_trusted_proxy_count_per_forwarded_client(
    client: Client, alice: User, loopback_proxy: Any
) -> None:
    for number in range(5):
        sign_in(client, f"nobody{number}", "wrong", HTTP_X_FORWARDED_FOR="198.51.100.1")
    response = sign_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert response.status_code == 302


@pytest.mark.parametrize(
    "forwarded", ["unknown", "not-an-ip", "1.2.3.4, garbage", "1.2.3.4:5678", "[2001:db8::1]:443"]
)
def test_odd_forwarded_for_values_never_break_sign_in(
    client: Client, alice: User, forwarded: str, loopback_proxy: Any
) -> None:
    wrong = sign_in(client, "alice", "wrong", HTTP_X_FORWARDED_FOR=forwarded)
    assert wrong.status_code == 200 and "Please enter a correct" in wrong.content.decode()
    assert sign_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR=forwarded).status_code == 302


def test_lockout_ends_after_the_cool_off(client: Client, alice: User) -> None:
    from axes.models import AccessAttempt

    for _ in range(5):
        sign_in(client, "alice", "wrong")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=61))
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_sign_out_ends_the_session(client: Client, alice: User) -> None:
    sign_in(client, "alice", PASSWORD)
    response = client.post("/sign-out")
    assert response.status_code == 302
    assert response["Location"] == "/sign-in"
    assert client.get("/api-keys").status_code == 302


def test_sign_out_by_get_is_refused(client: Client, alice: User) -> None:
    client.force_login(alice)
    assert client.get("/sign-out").status_code == 405
    assert client.get("/api-keys").status_code == 200


def test_idle_session_expires(client: Client, alice: User) -> None:
    client.force_login(alice)
    ours = Session.objects.filter(pk=client.session.session_key)
    ours.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert client.get("/api-keys").status_code == 302


def test_a_request_restarts_the_idle_clock_once_some_of_it_passed(
    client: Client, alice: User
) -> None:
    client.force_login(alice)
    # Only this test's session: a module that ran before may have left others behind.
    ours = Session.objects.filter(pk=client.session.session_key)
    ours.update(expire_date=timezone.now() + timedelta(minutes=1))
    client.get("/api-keys")
    remaining = ours.get().expire_date - timezone.now()
    assert remaining > timedelta(hours=7, minutes=59)


def test_a_request_soon_after_the_last_save_writes_no_session(client: Client, alice: User) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(alice)
    # Saved 4 minutes ago: under 1% of the 8-hour idle period, so nothing to write.
    expiry = timezone.now() + timedelta(hours=8) - timedelta(minutes=4)
    ours = Session.objects.filter(pk=client.session.session_key)
    ours.update(expire_date=expiry)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api-keys").status_code == 200
    assert not [q for q in queries if "keys_session" in q["sql"] and "UPDATE" in q["sql"]]
    assert ours.get().expire_date == expiry


def test_nav_names_user_role_and_offers_sign_out_by_post(client: Client, alice: User) -> None:
    client.force_login(alice)
    page = client.get("/api-keys").content.decode()
    assert '<span class="who">alice</span>' in page
    assert "Key admin" in page
    assert '<form method="post" action="/sign-out"' in page


def test_first_admin_is_a_superuser_with_an_argon2_password() -> None:
    out = StringIO()
    call_command("ensure_first_admin", stdout=out)
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.password.startswith("argon2$")
    assert "Sign in as 'admin'" in out.getvalue()


def test_first_admin_is_not_made_when_a_user_exists(alice: User) -> None:
    out = StringIO()
    call_command("ensure_first_admin", stdout=out)
    assert not User.objects.filter(username="admin").exists()
    assert out.getvalue() == ""


def test_createsuperuser_noinput_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "root@example.com")
    call_command("createsuperuser", interactive=False, stdout=StringIO())
    root = User.objects.get(username="root")
    assert root.is_superuser
    assert root.check_password(PASSWORD)
