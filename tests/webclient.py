"""A small cookie-keeping HTTP client for tests that talk to a real gunicorn from threads.

Django's test client runs the app in the test process; these tests need the real server,
several requests at once, and a say over exactly when each is sent.
"""

from __future__ import annotations

import http.client
import re
import secrets
import string
import threading
import uuid
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

KEY_RE = re.compile(r"sk-t0-[A-Za-z0-9]{12}-[A-Za-z0-9]{48}")


@dataclass
class Response:
    status: int
    body: str
    headers: dict[str, str]


class WebClient:
    """One browser: its cookies, and a CSRF token it chose itself (Django accepts any
    32-letter secret in the cookie that the header repeats)."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        csrf = "".join(secrets.choice(string.ascii_letters) for _ in range(32))
        self.cookies: dict[str, str] = {"csrftoken": csrf}
        self._lock = threading.Lock()

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, **headers: str
    ) -> Response:
        with self._lock:
            cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            # Sign-in rotates the token: the header repeats whatever the cookie now holds.
            csrf = self.cookies.get("csrftoken", "")
        all_headers = {"Cookie": cookie, "X-CSRFToken": csrf, **headers}
        body = None
        if form is not None:
            body = urlencode(form)
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=all_headers)
            answer = connection.getresponse()
            text = answer.read().decode("utf-8", "replace")
            for header, value in answer.getheaders():
                if header.lower() == "set-cookie":
                    jar: SimpleCookie = SimpleCookie()
                    jar.load(value)
                    with self._lock:
                        for name, morsel in jar.items():
                            if morsel.value:
                                self.cookies[name] = morsel.value
                            else:
                                self.cookies.pop(name, None)
            return Response(answer.status, text, {k.lower(): v for k, v in answer.getheaders()})
        finally:
            connection.close()

    def get(self, path: str, **headers: str) -> Response:
        return self.request("GET", path, **headers)

    def post(self, path: str, form: dict[str, str] | None = None, **headers: str) -> Response:
        return self.request("POST", path, form or {}, **headers)

    def sign_in(self, username: str, password: str) -> None:
        answer = self.post("/sign-in", {"username": username, "password": password})
        assert answer.status == 302, (answer.status, answer.body[:500])
        assert "sessionid" in self.cookies

    def create_form(self, description: str = "") -> dict[str, str]:
        """The create form as the page would send it, with a fresh one-time token."""
        return {
            "form_token": str(uuid.uuid4()),
            "description": description,
            "expiration": "never",
        }
