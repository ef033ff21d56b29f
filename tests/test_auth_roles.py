"""Roles: two groups with permissions, `manage.py grant`, and the superuser-only admin site."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory

from keys import permissions, roles, service

pytestmark = pytest.mark.django_db


def perms_of(group: str) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=group).permissions.all()
    }


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="bob's long password 1")


def grant(*args: str) -> str:
    out = StringIO()
    call_command("grant", *args, stdout=out)
    return out.getvalue()


def request_as(user: User):  # type: ignore[no-untyped-def]
    request = RequestFactory().get("/api-keys")
    request.user = User.objects.get(pk=user.pk)  # fresh: no permission cache
    return request


def test_viewers_see_keys_and_the_audit_trail_only() -> None:
    assert perms_of(roles.VIEWERS) == {"keys.view_apikey", "keys.view_auditevent"}


def test_admins_also_create_and_change_keys() -> None:
    assert perms_of(roles.ADMINS) == {
        "keys.view_apikey",
        "keys.view_auditevent",
        "keys.add_apikey",
        "keys.change_apikey",
    }


def test_grant_viewer_lets_see_but_not_write(bob: User) -> None:
    grant("viewer", "bob")
    request = request_as(bob)
    assert permissions.can_view(request)
    assert not permissions.can_write(request)


def test_grant_admin_lets_write(bob: User) -> None:
    assert "bob is now a key admin." in grant("admin", "bob")
    assert permissions.can_write(request_as(bob))


def test_grant_replaces_the_earlier_role(bob: User) -> None:
    grant("admin", "bob")
    grant("viewer", "bob")
    assert set(bob.groups.values_list("name", flat=True)) == {roles.VIEWERS}


def test_grant_none_takes_every_role_away(bob: User) -> None:
    grant("admin", "bob")
    grant("none", "bob")
    assert not permissions.can_view(request_as(bob))


def test_grant_unknown_role_is_refused_in_words(bob: User) -> None:
    with pytest.raises(CommandError, match="Unknown role 'owner': use viewer, admin or none"):
        grant("owner", "bob")


def test_grant_unknown_user_is_refused_in_words() -> None:
    with pytest.raises(CommandError, match="No user 'carol'"):
        grant("viewer", "carol")


def test_superuser_is_an_admin_without_groups() -> None:
    root = User.objects.create_superuser("root", password="root's long password 1")
    assert permissions.can_write(request_as(root))
    assert roles.role_of(root) == "admin"


def test_django_admin_site_opens_for_superusers(client: Client) -> None:
    client.force_login(User.objects.create_superuser("root", password="x" * 20))
    assert client.get("/django-admin/").status_code == 200


def test_django_admin_site_stays_closed_to_staff_key_admins(client: Client, bob: User) -> None:
    grant("admin", "bob")
    User.objects.filter(pk=bob.pk).update(is_staff=True)
    client.force_login(bob)
    response = client.get("/django-admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/django-admin/login/")


@pytest.fixture
def viewer_client(client: Client, bob: User) -> Client:
    grant("viewer", "bob")
    client.force_login(bob)
    return client


def test_user_without_role_is_refused_the_keys_page(client: Client, bob: User) -> None:
    client.force_login(bob)
    assert client.get("/api-keys").status_code == 403


def test_viewer_sees_the_keys_without_write_controls(viewer_client: Client) -> None:
    response = viewer_client.get("/api-keys")
    assert response.status_code == 200
    assert "/api-keys/new" not in response.content.decode()


def test_viewer_post_to_create_is_refused(viewer_client: Client) -> None:
    response = viewer_client.post("/api-keys/new", {"description": "x", "expiration": "never"})
    assert response.status_code == 403
    assert "may see API keys but not change them" in response.content.decode()


def test_viewer_post_to_disable_is_refused(viewer_client: Client) -> None:
    assert viewer_client.post("/api-keys/AAAAAAAAAAAA/disable").status_code == 403


def test_viewer_post_to_describe_is_refused(viewer_client: Client) -> None:
    response = viewer_client.post("/api-keys/AAAAAAAAAAAA/description", {"description": "x"})
    assert response.status_code == 403


def test_a_refusal_by_htmx_is_words_in_the_dialog_not_a_second_page(
    viewer_client: Client,
) -> None:
    # A role taken away while the page was open: the inline edit's answer would
    # otherwise put a whole page, a second dialog and all, in place of the row.
    public_id = service.create_key(actor="t", description="old").api_key.public_id
    response = viewer_client.post(
        f"/api-keys/{public_id}/description",
        {"description": "new"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET=f"key-{public_id}",
    )
    assert response.status_code == 403
    assert (response["HX-Retarget"], response["HX-Reswap"]) == ("#modal-body", "innerHTML")
    body = response.content.decode()
    assert "may see API keys but not change them" in body
    assert "<html" not in body and 'id="modal"' not in body


def test_admin_sees_the_create_control(client: Client, bob: User) -> None:
    grant("admin", "bob")
    client.force_login(bob)
    assert "/api-keys/new" in client.get("/api-keys").content.decode()
