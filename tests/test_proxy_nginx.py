"""Real Nginx in front of real gunicorn, set up the three ways t0admin is placed.

- oauth2: as OAuth2 Proxy hands requests over: X-Forwarded-Email and X-Forwarded-Groups set
  by the proxy, client copies replaced, headers with underscores passed on (OAuth2 Proxy
  does; Nginx does not by default, so this set-up turns that on).
- tailscale: as `tailscale serve --set-path /t0admin` does: Tailscale-User-Login, prefix
  stripped.
- tls: under the sub-path /keys behind TLS termination (X-Forwarded-Proto: https,
  X-Forwarded-Host), identity in X-Auth-Request-Email as with Nginx's auth_request.

A session cookie stands for the proxy's own sign-in: Nginx maps it to the identity. Nginx
reaches gunicorn from 127.0.0.2, the only trusted proxy, so the test itself, talking to
gunicorn straight from 127.0.0.1, is an untrusted client.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests import servers
from tests.conftest import free_port

# django_db: so that pytest-django creates the test database even when only these run.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

NGINX = "/usr/sbin/nginx"
PROXY_ADDRESS = "127.0.0.2"
ADMIN = "admin@example.com"
VIEWER = "viewer@example.com"


@dataclass
class Setup:
    name: str
    header: str
    prefix: str
    location: str
    env: dict[str, str]
    scheme: str = "http"


SETUPS = {
    "oauth2": Setup(
        "oauth2",
        "X-Forwarded-Email",
        "",
        """
        underscores_in_headers on;
        ignore_invalid_headers off;
        location / {
            proxy_pass http://t0admin;
            proxy_set_header X-Forwarded-Email $identity;
            proxy_set_header X-Forwarded-Groups $groups;
            proxy_set_header X-Forwarded-Proto $scheme;
            COMMON
        }
        """,
        {"T0ADMIN_PROXY_ADMIN_GROUPS": "key-admins"},
    ),
    "tailscale": Setup(
        "tailscale",
        "Tailscale-User-Login",
        "/t0admin",
        """
        location = /t0admin { return 301 /t0admin/; }
        location /t0admin/ {
            proxy_pass http://t0admin/;
            proxy_set_header Tailscale-User-Login $identity;
            proxy_set_header Tailscale-User-Name "";
            COMMON
        }
        """,
        {"T0ADMIN_PROXY_USER_HEADER": "Tailscale-User-Login", "T0ADMIN_BASE_PATH": "/t0admin"},
    ),
    "tls": Setup(
        "tls",
        "X-Auth-Request-Email",
        "/keys",
        """
        location /keys/ {
            proxy_pass http://t0admin/;
            proxy_set_header X-Auth-Request-Email $identity;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $http_host;
            COMMON
        }
        """,
        {
            "T0ADMIN_PROXY_USER_HEADER": "X-Auth-Request-Email",
            "T0ADMIN_BASE_PATH": "/keys",
            "T0ADMIN_HTTPS": "1",
        },
        scheme="https",
    ),
}

COMMON = """
            proxy_bind 127.0.0.2;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
"""

NGINX_CONF = """
daemon off;
worker_processes 1;
USER
pid TMP/nginx.pid;
error_log TMP/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path TMP/client_body;
    proxy_temp_path TMP/proxy;
    fastcgi_temp_path TMP/fastcgi;
    uwsgi_temp_path TMP/uwsgi;
    scgi_temp_path TMP/scgi;
    # The proxy's own sign-in, reduced to a cookie: it decides who the user is.
    map $cookie_proxy_session $identity {
        default "";
        admin-session "admin@example.com";
        viewer-session "viewer@example.com";
        group-session "grouped@example.com";
    }
    map $cookie_proxy_session $groups {
        default "";
        group-session "staff,key-admins";
    }
    # Round robin, Nginx's default, over every t0admin instance.
    upstream t0admin { UPSTREAMS }
    server {
        listen 127.0.0.1:PORT;
        LOCATION
    }
}
"""


@contextlib.contextmanager
def nginx(tmp: Path, location: str, *upstreams: int) -> Iterator[int]:
    port = free_port()
    # As root, Nginx's workers would drop to `nobody`, who cannot use the temp dirs here.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = (
        NGINX_CONF.replace("LOCATION", location.replace("COMMON", COMMON))
        .replace("UPSTREAMS", " ".join(f"server 127.0.0.1:{up};" for up in upstreams))
        .replace("USER", user)
        .replace("TMP", str(tmp))
        .replace("PORT", str(port))
    )
    (tmp / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (tmp / "error.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    text: str


@dataclass
class Client:
    """Just enough of a browser: keeps cookies, even Secure ones over the test's plain
    http, since TLS ends in front of Nginx in the set-up it stands for."""

    port: int
    prefix: str = ""
    origin: str = ""
    cookies: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # the client's own address (any 127.x.y.z), if not the default

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        source = (self.source, 0) if self.source else None
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=20, source_address=source
        )
        body = urlencode(form) if form is not None else None
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["Origin"] = self.origin
        try:
            connection.request(method, self.prefix + path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        for line in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(line).items():
                self.cookies[name] = morsel.value
        return Response(response.status, response.headers, text)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: dict[str, str]) -> Response:
        return self.request("POST", path, form)


@dataclass
class Site:
    setup: Setup
    nginx_port: int
    app: servers.Server

    def client(self, session: str | None = None) -> Client:
        origin = f"{self.setup.scheme}://127.0.0.1:{self.nginx_port}"
        client = Client(self.nginx_port, self.setup.prefix, origin)
        if session:
            client.cookies["proxy_session"] = session
        return client


@pytest.fixture(scope="module", params=list(SETUPS))
def site(request, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    setup = SETUPS[request.param]
    env = {
        "T0ADMIN_AUTH": "proxy",
        "T0ADMIN_TRUSTED_PROXIES": f"{PROXY_ADDRESS}/32",
        "T0ADMIN_PROXY_ADMINS": ADMIN,
        **setup.env,
    }
    tmp = tmp_path_factory.mktemp(f"nginx-{setup.name}")
    with django_db_blocker.unblock():
        database = servers.test_database_url()
    try:
        with (
            servers.gunicorn(database, env=env) as app,
            nginx(tmp, setup.location, app.port) as port,
        ):
            yield Site(setup, port, app)
    finally:
        # Committed by gunicorn, outside any test transaction: leave the database as found.
        from django.contrib.auth.models import User

        from keys.models import ApiKey, AuditEvent

        with django_db_blocker.unblock():
            ApiKey.objects.all().delete()
            AuditEvent.objects.all().delete()
            User.objects.all().delete()


def csrf_form(client: Client, path: str) -> dict[str, str]:
    """The hidden fields of the form at `path`, as a browser would send them back."""
    page = client.get(path)
    assert page.status == 200, page.text
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    assert "csrfmiddlewaretoken" in hidden
    return hidden


def new_key_form(client: Client) -> dict[str, str]:
    return {**csrf_form(client, "/api-keys/new"), "description": "via nginx", "expiration": "never"}


def test_sign_in_by_header_opens_the_keys_page(site: Site) -> None:
    response = site.client("admin-session").get("/api-keys")
    assert response.status == 200, response.text
    assert "TensorZero API Keys" in response.text
    assert ADMIN in response.text


def test_links_and_forms_stay_under_the_prefix(site: Site) -> None:
    page = site.client("admin-session").get("/api-keys").text
    urls = re.findall(r'(?:href|src|action|hx-get|hx-post)="(/[^"]*)"', page)
    assert urls
    assert [url for url in urls if not url.startswith(site.setup.prefix + "/")] == []


def test_static_files_resolve(site: Site) -> None:
    client = site.client("admin-session")
    page = client.get("/api-keys").text
    assets = re.findall(r'(?:href|src)="([^"]*/static/[^"]*)"', page)
    assert len(assets) >= 3  # stylesheet, htmx, our script
    for asset in assets:
        client.prefix = ""
        assert client.get(asset).status == 200, asset


def test_admin_creates_a_key_with_csrf(site: Site) -> None:
    client = site.client("admin-session")
    response = client.post("/api-keys/new", new_key_form(client))
    assert response.status == 200, response.text
    assert re.search(r"sk-t0-[A-Za-z0-9]{12}-[A-Za-z0-9]{48}", response.text)


def test_write_without_csrf_token_is_refused(site: Site) -> None:
    client = site.client("admin-session")
    form = new_key_form(client)
    del form["csrfmiddlewaretoken"]
    assert client.post("/api-keys/new", form).status == 403


def test_viewer_cannot_write(site: Site) -> None:
    admin = site.client("admin-session")
    form = new_key_form(admin)
    viewer = site.client("viewer-session")
    assert viewer.get("/api-keys").status == 200  # the viewer's own session and CSRF cookie
    form["csrfmiddlewaretoken"] = viewer.cookies["csrftoken"]
    response = viewer.post("/api-keys/new", form)
    assert response.status == 403
    assert "may see API keys but not change them" in response.text


def test_request_without_identity_is_refused_with_the_reason(site: Site) -> None:
    response = site.client().get("/api-keys")
    assert response.status == 403
    assert "without saying who you are" in " ".join(response.text.split())


def test_client_copy_of_the_identity_header_is_replaced(site: Site) -> None:
    response = site.client("viewer-session").get("/api-keys", {site.setup.header: ADMIN})
    assert response.status == 200
    assert '<span class="who">viewer@example.com</span>' in response.text


def test_identity_header_straight_to_gunicorn_is_refused_and_logged(site: Site) -> None:
    direct = Client(site.app.port)
    response = direct.get("/api-keys", {site.setup.header: ADMIN})
    assert response.status == 403
    assert "does not come from a trusted proxy" in " ".join(response.text.split())
    assert "from untrusted address 127.0.0.1" in site.app.output()


@pytest.mark.parametrize("site", ["oauth2"], indirect=True)
def test_underscore_twin_of_the_identity_header_never_authenticates(site: Site) -> None:
    # Nginx passes it on here (as OAuth2 Proxy would); gunicorn must drop it.
    response = site.client().get("/api-keys", {"X_Forwarded_Email": ADMIN})
    assert response.status == 403
    assert "without saying who you are" in " ".join(response.text.split())


@pytest.mark.parametrize("site", ["oauth2"], indirect=True)
def test_mapped_proxy_group_makes_an_admin(site: Site) -> None:
    client = site.client("group-session")
    response = client.post("/api-keys/new", new_key_form(client))
    assert response.status == 200, response.text


@pytest.mark.parametrize("site", ["tls"], indirect=True)
def test_secure_cookies_and_hsts_behind_tls(site: Site) -> None:
    response = site.client("admin-session").get("/api-keys")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    cookies = response.headers.get_all("Set-Cookie") or []
    assert cookies, "the page sets its CSRF cookie; without one this test proves nothing"
    assert all("Secure" in line for line in cookies)
