"""The session's user and their permissions, read in one query (t0admin.auth.ModelBackend),
give the same answers as Django's ModelBackend."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import backends
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from keys import roles
from keys.models import ApiKey, Session
from t0admin.auth import ModelBackend
from t0admin.proxy import ProxyUserBackend
from t0admin.sessions import SessionStore
from tests.test_views import new_form

pytestmark = pytest.mark.django_db


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def djangos(user: User) -> set[str]:
    """What Django's own backend finds, from a fresh copy of the user."""
    return backends.ModelBackend().get_all_permissions(User.objects.get(pk=user.pk))


@pytest.fixture
def users() -> dict[str, User]:
    made = {
        name: User.objects.create_user(name, password="a long password 123")
        for name in ("none", "viewer", "admin", "direct", "both", "two_groups")
    }
    roles.set_role(made["viewer"], roles.VIEWERS)
    roles.set_role(made["admin"], roles.ADMINS)
    made["direct"].user_permissions.add(permission("keys.add_apikey"))
    roles.set_role(made["both"], roles.VIEWERS)
    made["both"].user_permissions.add(
        permission("keys.change_apikey"), permission("auth.view_user")
    )
    extra = Group.objects.create(name="another group")
    extra.permissions.add(permission("keys.view_apikey"), permission("auth.view_group"))
    made["two_groups"].groups.add(extra, Group.objects.get(name=roles.ADMINS))
    return made


@pytest.mark.parametrize("backend", [ModelBackend(), ProxyUserBackend()])
def test_the_same_permissions_as_djangos_backend(users: dict[str, User], backend) -> None:  # type: ignore[no-untyped-def]
    for name, user in users.items():
        loaded = backend.get_user(user.pk)
        assert loaded == user
        assert loaded.get_all_permissions() == djangos(user), name
        assert sorted(loaded.group_names) == sorted(user.groups.values_list("name", flat=True))
        fresh = User.objects.get(pk=user.pk)
        for field in User._meta.concrete_fields:
            assert getattr(loaded, field.attname) == getattr(fresh, field.attname), field
    assert djangos(users["none"]) == set()
    assert djangos(users["both"]) == {
        *roles.VIEWER_PERMISSIONS,
        "keys.change_apikey",
        "auth.view_user",
    }


def test_one_query_for_the_user_and_every_permission_check(users: dict[str, User]) -> None:
    with CaptureQueriesContext(connection) as queries:
        user = ModelBackend().get_user(str(users["viewer"].pk))  # as the session keeps it
        assert user.has_perm("keys.view_apikey") and user.has_perm("keys.view_auditevent")
        assert not user.has_perm("keys.change_apikey")
        assert roles.role_of(user) == "viewer"
    assert len(queries) == 1
    # Django's backend: the user, then their own permissions, then their groups'.
    with CaptureQueriesContext(connection) as queries:
        user = backends.ModelBackend().get_user(users["viewer"].pk)
        assert user.has_perm("keys.view_apikey")
    assert len(queries) == 3


def test_a_role_changed_within_the_request_is_seen(users: dict[str, User]) -> None:
    # As AuthenticationMiddleware hands it to the views: a lazy object around the user.
    user = SimpleLazyObject(lambda: ModelBackend().get_user(users["viewer"].pk))
    assert not user.has_perm("keys.change_apikey")
    roles.set_role(user, roles.ADMINS)
    assert user.has_perm("keys.change_apikey")
    roles.set_role(user, None)
    assert not user.has_perm("keys.view_apikey")


def test_the_proxy_role_sync_sees_its_own_changes_within_the_request(
    users: dict[str, User],
) -> None:
    user = SimpleLazyObject(lambda: ModelBackend().get_user(users["viewer"].pk))
    roles.sync_proxy_role(user, admin=True)
    assert user.has_perm("keys.change_apikey")
    # Had the group names read with the user stayed, this would see "Key viewers" still
    # and leave the admin role in place.
    roles.sync_proxy_role(user, admin=False)
    assert not user.has_perm("keys.change_apikey") and user.has_perm("keys.view_apikey")
    assert roles.role_of(User.objects.get(pk=users["viewer"].pk)) == "viewer"
    assert not hasattr(user, "permission_names")  # read once, into Django's cache


def test_superusers_keep_every_permission() -> None:
    root = User.objects.create_superuser("root", password="a long password 123")
    loaded = ModelBackend().get_user(root.pk)
    assert loaded.has_perm("keys.change_apikey") and loaded.has_perm("auth.delete_user")
    assert loaded.get_all_permissions() == djangos(root)
    assert len(loaded.get_all_permissions()) == Permission.objects.count()


def test_unknown_inactive_and_malformed_ids_are_nobody(users: dict[str, User]) -> None:
    backend = ModelBackend()
    gone = users["admin"].pk
    User.objects.filter(pk=gone).delete()
    assert backend.get_user(gone) is None
    users["viewer"].is_active = False
    users["viewer"].save()
    assert backend.get_user(users["viewer"].pk) is None
    assert backend.get_user("not a number") is None
    assert backend.get_user(None) is None


def test_a_key_admin_signed_in_lists_and_creates_keys(users: dict[str, User]) -> None:
    client = Client()
    signed_in = client.post("/sign-in", {"username": "admin", "password": "a long password 123"})
    assert signed_in.status_code == 302
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/api-keys")
    assert page.status_code == 200 and b"Generate API Key" in page.content
    # The session, then the user with their permissions; none asked for again.
    sent = [query["sql"] for query in queries]
    assert sum("user_with_permissions" in sql for sql in sent) == 1, sent
    assert not any("auth_permission" in sql or "auth_user_groups" in sql for sql in sent)
    created = client.post("/api-keys/new", new_form(client, description="by a key admin"))
    assert created.status_code == 200
    assert ApiKey.objects.filter(description="by a key admin").exists()
    assert client.session["_auth_user_backend"] == "t0admin.auth.ModelBackend"


def test_sessions_from_before_are_carried_over_by_the_migrations(users: dict[str, User]) -> None:
    """Sessions in django_session, one naming Django's backend: 0006 and 0010 carry both
    over, with their users, and neither is signed out."""
    from django.contrib.sessions.backends import db

    def djangos_session(user: User, backend: str) -> str:
        old = db.SessionStore()  # Django's own store: django_session
        old.update({"_auth_user_id": str(user.pk), "_auth_user_backend": backend})
        old["_auth_user_hash"] = user.get_session_auth_hash()
        old.create()
        return str(old.session_key)

    before = djangos_session(users["admin"], "django.contrib.auth.backends.ModelBackend")
    unchanged = djangos_session(users["viewer"], "t0admin.auth.ModelBackend")
    stored = db.SessionStore(unchanged).load()
    for name in ("0006_sessions_to_t0admin_backend", "0010_session_with_user"):
        migration = importlib.import_module(f"keys.migrations.{name}")
        step = getattr(migration, "to_t0admin_backend", None) or migration.forwards
        step(django_apps, None)
    # Left where they were too, for an instance still on the older version.
    assert db.SessionStore().exists(before) and db.SessionStore().exists(unchanged)
    assert Session.objects.get(pk=before).user_id == users["admin"].pk
    assert Session.objects.get(pk=unchanged).user_id == users["viewer"].pk
    for key, name in ((before, "admin"), (unchanged, "viewer")):
        client = Client()
        client.cookies["sessionid"] = key
        page = client.get("/api-keys")
        assert page.status_code == 200 and name.encode() in page.content
        assert client.session["_auth_user_backend"] == "t0admin.auth.ModelBackend"
    assert SessionStore(unchanged).load() == stored

    # Undone, the newer copies go back where they were.
    SessionStore(unchanged).save()  # used since: a later expiry
    newer = Session.objects.get(pk=unchanged).expire_date
    importlib.import_module("keys.migrations.0010_session_with_user").backwards(django_apps, None)
    assert db.SessionStore(unchanged).load() == stored
    assert db.SessionStore().get_model_class().objects.get(pk=unchanged).expire_date == newer


def test_a_session_naming_djangos_backend_signs_in_again_without_an_error(
    users: dict[str, User],
) -> None:
    """One made by a process still running the old code while the new one migrated."""
    client = Client()
    client.force_login(users["admin"], backend="django.contrib.auth.backends.ModelBackend")
    page = client.get("/api-keys")
    assert page.status_code == 302 and page["Location"] == "/sign-in?next=/api-keys"
    signed_in = client.post("/sign-in", {"username": "admin", "password": "a long password 123"})
    assert signed_in.status_code == 302
    assert client.get("/api-keys").status_code == 200


def test_the_loaded_user_saves_as_the_row_it_came_from(users: dict[str, User]) -> None:
    """Built from a plain cursor, the user is a stored row to the ORM, not a new one."""
    loaded = ModelBackend().get_user(users["admin"].pk)
    assert loaded._state.adding is False and loaded._state.db == "default"
    loaded.first_name = "Ada"
    loaded.save()  # an UPDATE: an INSERT would collide with the row's primary key
    assert User.objects.get(pk=users["admin"].pk).first_name == "Ada"
    assert User.objects.count() == len(users)


def test_a_session_reads_as_djangos_store_reads_it(users: dict[str, User]) -> None:
    from django.contrib.sessions.backends import db

    # Django's own store on t0admin's table; named as both are, since the name is in the
    # salt of the data's signature.
    djangos = type(
        "SessionStore", (db.SessionStore,), {"get_model_class": classmethod(lambda cls: Session)}
    )

    stored = SessionStore()
    stored.update({"_auth_user_id": str(users["admin"].pk), "note": "ü" * 300})
    stored.create()
    key = stored.session_key
    ours, djangos_store = SessionStore(key), djangos(key)
    assert ours.load() == djangos_store.load() == {**stored._session}
    assert ours.stored_expiry == Session.objects.get(pk=key).expire_date
    assert ours.session_key == key

    Session.objects.filter(pk=key).update(expire_date=timezone.now())
    gone = SessionStore(key)
    assert gone.load() == {} and gone.session_key is None and gone.stored_expiry is None
    assert SessionStore("no-such-session-key-0123456789ab").load() == {}


def test_a_function_of_the_same_name_in_public_decides_nothing() -> None:
    """The gateway's role may create in `public`, which is on t0admin's search path: its
    own user_with_permissions(integer) would match auth_user.id exactly."""
    nobody = User.objects.create_user("nobody", password="a long password 123")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION public.user_with_permissions(of_user integer) "
            "RETURNS TABLE (permission_names text[], group_names text[]) LANGUAGE sql AS "
            "$$ SELECT ARRAY['keys.change_apikey', 'keys.view_apikey'], ARRAY['Key admins'] $$"
        )
    loaded = ModelBackend().get_user(nobody.pk)
    assert loaded.get_all_permissions() == set()
    assert loaded.group_names == []
    assert roles.role_of(loaded) is None


def test_an_operator_in_public_is_not_in_the_way(users: dict[str, User]) -> None:
    """Found in review: with `public` on the search path, an exact-match operator there
    (varchar = varchar) answered Django's own user lookups instead of PostgreSQL's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION public.always(varchar, varchar) RETURNS boolean "
            "LANGUAGE sql AS 'SELECT true'"
        )
        cursor.execute(
            "CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, "
            "FUNCTION = public.always)"
        )
    assert not User.objects.filter(username="no-such-user").exists()


def signed_in(username: str) -> Client:
    client = Client()
    answer = client.post("/sign-in", {"username": username, "password": "a long password 123"})
    assert answer.status_code == 302
    return client


def statements(client: Client, path: str = "/api-keys") -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        status = client.get(path).status_code
    return status, [query["sql"] for query in queries]


def test_the_session_brings_its_user_and_permissions_in_its_own_query(
    users: dict[str, User],
) -> None:
    client = signed_in("admin")
    assert Session.objects.get(pk=client.session.session_key).user_id == users["admin"].pk
    status, sent = statements(client)
    assert status == 200
    with_user = [sql for sql in sent if "auth_user" in sql]
    assert len(with_user) == 1 and "keys_session" in with_user[0], sent
    assert "user_with_permissions" in with_user[0]
    # Who is signed in is still decided by the session's signed data, and a change to the
    # user is seen on the next page, read with the session.
    roles.set_role(users["admin"], roles.VIEWERS)
    page = client.get("/api-keys")
    assert page.status_code == 200 and b"Generate API Key" not in page.content


def test_a_session_without_its_user_reads_the_user_on_its_own(users: dict[str, User]) -> None:
    """A session moved by the migration whose data it could not read, or a column that
    disagrees with the signed data: the data decides, with a query of its own."""
    client = signed_in("viewer")
    ours = Session.objects.filter(pk=client.session.session_key)
    for column in (None, users["admin"].pk):
        ours.update(user_id=column)
        status, sent = statements(client)
        assert status == 200
        assert sum("user_with_permissions" in sql for sql in sent) == 2, sent
        page = client.get("/api-keys")
        assert b"viewer" in page.content and b"Generate API Key" not in page.content


def test_a_session_whose_user_is_gone_or_inactive_is_signed_out(users: dict[str, User]) -> None:
    gone, inactive = signed_in("admin"), signed_in("viewer")
    User.objects.filter(pk=users["admin"].pk).delete()
    User.objects.filter(pk=users["viewer"].pk).update(is_active=False)
    for client in (gone, inactive):
        status, sent = statements(client)
        assert status == 302
        assert sum("auth_user" in sql for sql in sent) == 1, sent


def test_a_changed_password_still_ends_other_sessions(users: dict[str, User]) -> None:
    client = signed_in("admin")
    users["admin"].set_password("another long password 456")
    users["admin"].save()
    assert client.get("/api-keys").status_code == 302


def test_every_save_path_keeps_the_user_id(users: dict[str, User]) -> None:
    from asgiref.sync import async_to_sync

    data = {"_auth_user_id": str(users["admin"].pk)}
    store = SessionStore("k" * 32)
    assert store.create_model_instance(data).user_id == users["admin"].pk
    assert async_to_sync(store.acreate_model_instance)(data).user_id == users["admin"].pk
    assert store.create_model_instance({}).user_id is None
    assert store.create_model_instance({"_auth_user_id": "x"}).user_id is None
