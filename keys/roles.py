"""The two roles, as Django groups with permissions. Superusers are admins without them.

The groups are (re)made after every migrate and every test flush (post_migrate), so their
permissions follow this file: a new model's permission is one line below.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.models import Group
from django.db import transaction

VIEWERS = "Key viewers"
ADMINS = "Key admins"

# Role names as `manage.py grant` spells them.
ROLE_NAMES = {"viewer": VIEWERS, "admin": ADMINS}

# Viewers see keys and the audit trail; a new model viewers may read is one line here.
VIEWER_PERMISSIONS = ["keys.view_apikey", "keys.view_auditevent"]
ADMIN_PERMISSIONS = [*VIEWER_PERMISSIONS, "keys.add_apikey", "keys.change_apikey"]

ROLES = {VIEWERS: VIEWER_PERMISSIONS, ADMINS: ADMIN_PERMISSIONS}


def _permissions(names: list[str], apps: Any) -> list[Any]:
    permission_model = apps.get_model("auth", "Permission")
    found = []
    for name in names:
        app_label, codename = name.split(".", 1)
        found.append(
            permission_model.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return found


def ensure_roles(apps: Any = global_apps, **kwargs: Any) -> None:
    """Create both groups, with exactly the permissions above."""
    group_model = apps.get_model("auth", "Group")
    with transaction.atomic():
        for name, permissions in ROLES.items():
            group, _ = group_model.objects.get_or_create(name=name)
            group.permissions.set(_permissions(permissions, apps))


def on_post_migrate(sender: Any, apps: Any = global_apps, **kwargs: Any) -> None:
    # Runs after django.contrib.auth's own handler has created the permissions.
    ensure_roles(apps)


def set_role(user: Any, role: str | None) -> None:
    """Make `user` a member of exactly one role's group (or of none)."""
    if role is not None and not Group.objects.filter(name=role).exists():
        ensure_roles()
    with transaction.atomic():
        user.groups.remove(*Group.objects.filter(name__in=ROLES))
        if role is not None:
            user.groups.add(Group.objects.get(name=role))
    # Django caches permissions on the user object, and t0admin.auth.ModelBackend the
    # names of its groups: the next check must see the change. delattr, not __dict__: a
    # request's user is a lazy object, which passes delattr on to the user inside it.
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache", "group_names"):
        with suppress(AttributeError):
            delattr(user, cache)


def sync_proxy_role(user: Any, admin: bool) -> None:
    """Behind a proxy the role follows its configuration on every request."""
    if user.is_superuser:
        return
    wanted = ADMINS if admin else VIEWERS
    # Read with the user by t0admin.auth.ModelBackend; asked for a user signed in just now.
    names = getattr(user, "group_names", None)
    if names is None:
        names = user.groups.values_list("name", flat=True)
    if set(names) & set(ROLES) != {wanted}:
        set_role(user, wanted)


def role_of(user: Any) -> str | None:
    if user.is_superuser or user.has_perm("keys.change_apikey"):
        return "admin"
    if user.has_perm("keys.view_apikey"):
        return "viewer"
    return None
