"""Error pages: t0admin's style everywhere, and "nothing was changed" only when it is true."""

from __future__ import annotations

import pytest
from django.core.signals import request_started
from django.db import OperationalError
from django.test import Client, RequestFactory

from keys import service
from t0admin import errors

HOUSE_STYLE = '<header class="topbar">'


def failing(error: Exception, **headers: str):  # type: ignore[no-untyped-def]
    """The error page for `error`, produced as Django's handler produces it."""
    request = RequestFactory().post("/api-keys/new", headers=headers)
    try:
        raise error
    except Exception:
        return errors.server_error(request)


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_a_commit_names_what_was_saved() -> None:
    request_started.send(sender=None)
    created = service.create_key(actor="t", description="saved").api_key
    response = failing(OperationalError("server closed the connection unexpectedly"))
    page = response.content.decode()
    assert response.status_code == 503
    assert "Nothing was changed" not in page
    assert f"creating key {created.public_id}" in page
    # The next request starts afresh.
    request_started.send(sender=None)
    assert "Nothing was changed" in failing(OperationalError("gone")).content.decode()


def test_a_database_failure_with_nothing_saved_says_so() -> None:
    request_started.send(sender=None)
    response = failing(OperationalError("connection refused"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    page = response.content.decode()
    assert "Nothing was changed" in page
    assert HOUSE_STYLE in page
    assert "connection refused" not in page  # the driver's words stay in the log


def test_an_unknown_outcome_never_says_nothing_changed() -> None:
    response = failing(service.OutcomeUnknown("creating key abcdefABCDEF"))
    page = response.content.decode()
    assert response.status_code == 503
    assert "Nothing was changed" not in page
    assert "creating key abcdefABCDEF" in page
    assert 'href="/api-keys/audit"' in page


def test_htmx_error_pages_go_into_the_dialog() -> None:
    response = failing(RuntimeError("boom"), **{"HX-Request": "true"})
    assert response.status_code == 500
    assert response["HX-Retarget"] == "#modal-body"
    assert "<html" not in response.content.decode()


@pytest.mark.django_db
def test_unknown_page_is_in_house_style(admin_client: Client) -> None:
    response = admin_client.get("/no-such-page")
    assert response.status_code == 404
    assert HOUSE_STYLE in response.content.decode()
    assert "There is no page at /no-such-page." in response.content.decode()


def test_unknown_host_is_in_house_style(client: Client) -> None:
    response = client.get("/api-keys", HTTP_HOST="evil.example")
    assert response.status_code == 400
    page = response.content.decode()
    assert HOUSE_STYLE in page
    assert "T0ADMIN_ALLOWED_HOSTS" in page


@pytest.mark.django_db
def test_csrf_failure_is_in_house_style() -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/sign-in", {"username": "x", "password": "y"})
    assert response.status_code == 403
    page = response.content.decode()
    assert HOUSE_STYLE in page
    assert "This form has expired" in page


@pytest.mark.django_db
def test_a_wrong_method_gets_a_page_not_a_blank(admin_client: Client) -> None:
    response = admin_client.get("/api-keys/find")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    page = response.content.decode()
    assert HOUSE_STYLE in page
    assert "It answers POST, not GET." in page


@pytest.mark.django_db
def test_a_new_keys_answer_needs_no_query_after_its_commit(client: Client) -> None:
    """Everything the page with the secret needs is read before the write: a database
    that goes away right after the commit cannot take the secret with it."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from keys import roles
    from tests.test_views import new_form

    admin = User.objects.create_user("group-admin", password="not-used-" + "g" * 12)
    roles.set_role(admin, roles.ADMINS)  # permissions through a group, not superuser
    client.force_login(admin)
    form = new_form(client, description="x")
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api-keys/new", form)
    assert response.status_code == 200
    # In a test the service's transaction is a savepoint: its release is the commit.
    assert queries[-1]["sql"].startswith("RELEASE SAVEPOINT"), [q["sql"][:60] for q in queries]
