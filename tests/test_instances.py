"""Several t0admin instances behind one load balancer, sharing one database.

Two real gunicorn instances, each with its own processes, behind one real Nginx that
sends requests to them in turn (round robin), on one PostgreSQL. t0admin's own sign-in:
what must not depend on which instance answers is the session, the lockout, the guard
against a form sent twice, and every write.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests import servers
from tests.conftest import gateway_accepts
from tests.test_proxy_nginx import PROXY_ADDRESS, Client, Response, csrf_form, nginx

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

PASSWORD = "correct horse battery staple 42"
SECRET = re.compile(r"sk-t0-[A-Za-z0-9]{12}-[A-Za-z0-9]{48}")
LOCATION = """
        location / {
            proxy_pass http://t0admin;
            proxy_bind 127.0.0.2;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
"""


@dataclass
class Deployment:
    nginx_port: int
    instances: list[servers.Server]

    def client(self, source: str | None = None) -> Client:
        """A browser, at its own loopback address when given: lockouts stay its own."""
        origin = f"http://127.0.0.1:{self.nginx_port}"
        return Client(self.nginx_port, origin=origin, source=source)

    def direct(self, instance: int, like: Client) -> Client:
        """A client talking to one instance only, with `like`'s cookies."""
        port = self.instances[instance].port
        return Client(port, origin=f"http://127.0.0.1:{port}", cookies=like.cookies)

    def requests_served(self) -> list[int]:
        return [instance.output().count('"GET /api-keys ') for instance in self.instances]


@pytest.fixture(scope="module")
def deployment(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Deployment]:  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import User

    from keys import roles

    with django_db_blocker.unblock():
        database = servers.test_database_url()
        for name in ("alice", "bob"):
            roles.set_role(User.objects.create_user(name, password=PASSWORD), roles.ADMINS)
    env = {"T0ADMIN_TRUSTED_PROXIES": f"{PROXY_ADDRESS}/32"}
    tmp = tmp_path_factory.mktemp("nginx-instances")
    try:
        with (
            servers.gunicorn(database, env=env) as first,
            servers.gunicorn(database, env=env) as second,
            nginx(tmp, LOCATION, first.port, second.port) as port,
        ):
            yield Deployment(port, [first, second])
    finally:
        from axes.models import AccessAttempt

        from keys.models import ApiKey, AuditEvent, Session

        with django_db_blocker.unblock():
            for model in (ApiKey, AuditEvent, AccessAttempt, Session, User):
                model.objects.all().delete()


def sign_in(client: Client, password: str = PASSWORD, username: str = "alice") -> Response:
    form = {**csrf_form(client, "/sign-in"), "username": username, "password": password}
    return client.post("/sign-in", form)


def signed_in(deployment: Deployment) -> Client:
    client = deployment.client()
    response = sign_in(client)
    assert response.status == 302, response.text
    return client


def test_a_session_made_on_one_instance_works_on_both(deployment: Deployment) -> None:
    client = signed_in(deployment)
    before = deployment.requests_served()
    for _ in range(6):
        response = client.get("/api-keys")
        assert response.status == 200, response.text
        assert "alice" in response.text
    # Round robin: each instance answered half of them (its access log says so, a moment
    # after the answer).
    deadline = time.monotonic() + 5
    while True:
        now = deployment.requests_served()
        served = [after - then for after, then in zip(now, before, strict=True)]
        if sum(served) == 6 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert served == [3, 3]


def test_failures_on_both_instances_add_up_to_one_lockout(deployment: Deployment) -> None:
    client = deployment.client(source="127.0.0.3")
    failures = [sign_in(client, "wrong", "bob").status for _ in range(5)]
    assert failures == [200, 200, 200, 200, 429]  # the fifth failure locks
    assert sign_in(client, username="bob").status == 429  # the right one, on either instance
    elsewhere = deployment.client(source="127.0.0.4")
    assert sign_in(elsewhere, username="bob").status == 429  # locked by name, not address


def test_a_client_cannot_dodge_the_address_lockout_through_the_proxy(
    deployment: Deployment,
) -> None:
    """Nginx appends the real peer to X-Forwarded-For; made-up hops before it never count."""
    client = deployment.client(source="127.0.0.5")
    failures = []
    for number in range(5):
        form = {**csrf_form(client, "/sign-in"), "username": f"nobody{number}", "password": "x"}
        forged = {"X-Forwarded-For": f"198.51.100.{number}"}
        failures.append(client.request("POST", "/sign-in", form, forged).status)
    assert failures == [200, 200, 200, 200, 429]
    assert sign_in(client).status == 429  # alice, who never failed: the address is locked


def test_one_form_sent_to_both_instances_at_once_creates_one_key(deployment: Deployment) -> None:
    from keys.models import ApiKey

    client = signed_in(deployment)
    form = {
        **csrf_form(client, "/api-keys/new"),
        "description": "sent twice",
        "expiration": "never",
    }
    answers: list[Response] = []
    start = threading.Barrier(2)

    def send(instance: int) -> None:
        direct = deployment.direct(instance, client)
        start.wait()
        answers.append(direct.post("/api-keys/new", form))

    senders = [threading.Thread(target=send, args=(instance,)) for instance in (0, 1)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)
    assert sorted(answer.status for answer in answers) == [200, 409], answers
    (made,) = ApiKey.objects.filter(description="sent twice")
    shown = next(answer for answer in answers if answer.status == 200)
    refused = next(answer for answer in answers if answer.status == 409)
    assert made.public_id in SECRET.search(shown.text)[0]  # type: ignore[index]
    assert made.public_id in refused.text  # the refusal names the key the form made


def test_rotate_and_disable_through_the_balancer(deployment: Deployment) -> None:
    from keys.models import ApiKey

    client = signed_in(deployment)
    form = {**csrf_form(client, "/api-keys/new"), "description": "to rotate", "expiration": "never"}
    created = client.post("/api-keys/new", form)
    old_secret = SECRET.search(created.text)[0]  # type: ignore[index]
    old_id = old_secret.split("-")[2]

    rotate = {**csrf_form(client, f"/api-keys/{old_id}/rotate"), "grace": "now"}
    rotated = client.post(f"/api-keys/{old_id}/rotate", rotate)
    assert rotated.status == 200, rotated.text
    new_secret = SECRET.search(rotated.text)[0]  # type: ignore[index]
    assert client.post(f"/api-keys/{old_id}/rotate", rotate).status == 409  # sent again
    assert not gateway_accepts(old_secret) and gateway_accepts(new_secret)

    new_id = new_secret.split("-")[2]
    disable = csrf_form(client, f"/api-keys/{new_id}/disable")
    assert client.post(f"/api-keys/{new_id}/disable", disable).status == 302
    assert not gateway_accepts(new_secret)
    again = client.post(f"/api-keys/{new_id}/disable", disable)  # the other instance
    assert again.status == 302
    assert "already disabled" in client.get("/api-keys").text
    assert ApiKey.objects.filter(description="to rotate").count() == 2
