"""Security headers, https behind a trusted proxy only, and configuration refused in words."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from typing import Any

import pytest
from django.test import Client

from tests.conftest import ROOT, manage_env

STRANGER = "203.0.113.9"


@pytest.fixture(autouse=True)
def loopback_proxy(settings: Any) -> Any:
    """As with T0ADMIN_TRUSTED_PROXIES=127.0.0.1: the test client's address is a proxy."""
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    return settings


@pytest.fixture
def https(settings: Any) -> Any:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    return settings


def csp_directives(response: Any) -> dict[str, str]:
    parts = [part.strip() for part in response["Content-Security-Policy"].split(";")]
    return {part.split(" ", 1)[0]: part.partition(" ")[2] for part in parts if part}


def test_csp_allows_scripts_from_self_only(client: Client) -> None:
    directives = csp_directives(client.get("/sign-in"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


def test_csp_never_allows_inline_or_eval(client: Client) -> None:
    header = client.get("/sign-in")["Content-Security-Policy"]
    assert "unsafe-inline" not in header
    assert "unsafe-eval" not in header


def test_htmx_is_configured_for_the_csp(client: Client) -> None:
    page = client.get("/sign-in").content.decode()
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)[1])
    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False


def test_pages_carry_the_other_security_headers(client: Client) -> None:
    response = client.get("/sign-in")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_no_hsts_over_plain_http(client: Client) -> None:
    assert "Strict-Transport-Security" not in client.get("/sign-in")


def test_https_setting_redirects_plain_http(client: Client, https: Any) -> None:
    response = client.get("/sign-in")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/sign-in"


def test_forwarded_https_from_trusted_proxy_is_served_with_hsts(client: Client, https: Any) -> None:
    response = client.get("/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000"


def test_secure_cookies_over_https(client: Client, https: Any) -> None:
    response = client.get("/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert response.cookies["csrftoken"]["secure"] is True


def test_forwarded_https_from_untrusted_address_is_ignored(client: Client, https: Any) -> None:
    response = client.get("/sign-in", REMOTE_ADDR=STRANGER, headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 301


def test_health_is_not_redirected_to_https(client: Client, https: Any) -> None:
    assert client.get("/healthz").status_code == 200


def test_forwarded_host_from_trusted_proxy_is_honoured(client: Client, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["keys.example.com", "testserver"]
    response = client.get("/api-keys", headers={"X-Forwarded-Host": "keys.example.com"})
    assert response.wsgi_request.get_host() == "keys.example.com"


def test_forwarded_host_from_untrusted_address_is_ignored(client: Client, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["keys.example.com", "testserver"]
    response = client.get(
        "/api-keys", REMOTE_ADDR=STRANGER, headers={"X-Forwarded-Host": "keys.example.com"}
    )
    assert response.wsgi_request.get_host() == "testserver"


def test_trusted_proxies_decide_what_counts(client: Client, settings: Any) -> None:
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    response = client.get("/api-keys", headers={"X-Forwarded-Host": "evil.example"})
    assert response.wsgi_request.get_host() == "testserver"


@pytest.mark.django_db
def test_https_post_with_csrf_token_and_same_origin_passes(client: Client, https: Any) -> None:
    secure = {"X-Forwarded-Proto": "https"}
    client.get("/sign-in", headers=secure)
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/sign-in",
        {"username": "nobody", "password": "wrong", "csrfmiddlewaretoken": token},
        headers={**secure, "Origin": "https://testserver"},
        enforce_csrf_checks=True,
    )
    assert response.status_code == 200  # the form answers (wrong password), not CSRF's 403


def manage_check(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = manage_env("postgresql://nobody@127.0.0.1:1/none")
    # Set by the Playwright fixture for the test process only; no deployment has it.
    full.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    full.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_deploy_check_passes_with_https_and_a_real_secret_key() -> None:
    result = manage_check(
        "--deploy",
        "--fail-level",
        "WARNING",
        T0ADMIN_HTTPS="1",
        T0ADMIN_TRUSTED_PROXIES="127.0.0.1",
        DJANGO_SECRET_KEY="Zq8-real-looking-secret-" + "k3Y9x" * 10,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("T0ADMIN_AUTH", "ldap", "T0ADMIN_AUTH must be password or proxy"),
        ("T0ADMIN_TRUSTED_PROXIES", "10.0.0.0/33", "T0ADMIN_TRUSTED_PROXIES must be"),
        ("T0ADMIN_PROXY_USER_HEADER", "X_Forwarded_Email", "an HTTP header name"),
        ("T0ADMIN_BASE_PATH", "t0admin", "T0ADMIN_BASE_PATH must look like /t0admin"),
        ("T0ADMIN_SESSION_IDLE_MINUTES", "0", "T0ADMIN_SESSION_IDLE_MINUTES must be"),
        ("T0ADMIN_HTTPS", "1", "T0ADMIN_HTTPS=1 needs T0ADMIN_TRUSTED_PROXIES"),
        ("T0ADMIN_DB_STATEMENT_TIMEOUT", "5s", "T0ADMIN_DB_STATEMENT_TIMEOUT must be a whole"),
        ("T0ADMIN_DB_CONNECT_TIMEOUT", "0", "T0ADMIN_DB_CONNECT_TIMEOUT must be a whole"),
        ("T0ADMIN_AUTH", "proxy", "T0ADMIN_AUTH=proxy needs T0ADMIN_TRUSTED_PROXIES"),
    ],
)
def test_bad_setting_is_refused_in_one_line(variable: str, value: str, message: str) -> None:
    result = manage_check(**{variable: value})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def test_no_proxy_is_trusted_until_one_is_configured() -> None:
    """Loopback included: any local process could otherwise claim to be a proxy."""
    env = manage_env(
        "postgresql://nobody@127.0.0.1:1/none", DJANGO_SETTINGS_MODULE="t0admin.settings"
    )
    env.pop("T0ADMIN_TRUSTED_PROXIES", None)
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "from t0admin import gunicorn_conf; "
            "print(settings.TRUSTED_PROXIES, repr(gunicorn_conf.forwarded_allow_ips))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout.strip() == "[] ''", shown.stderr
