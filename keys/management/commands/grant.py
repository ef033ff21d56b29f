"""`manage.py grant ROLE USER`: make a user a key viewer or a key admin (or neither)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from keys import roles

CHOICES = [*roles.ROLE_NAMES, "none"]


class Command(BaseCommand):
    help = (
        "Give USER exactly one role: 'viewer' sees keys and the audit trail, 'admin' also "
        "creates, edits, rotates and disables them; 'none' takes both away."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="viewer, admin or none")
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        role = options["role"].strip().lower()
        if role not in CHOICES:
            raise CommandError(f"Unknown role {options['role']!r}: use viewer, admin or none.")
        User = get_user_model()
        try:
            user = User.objects.get_by_natural_key(options["username"])
        except User.DoesNotExist:
            raise CommandError(
                f"No user {options['username']!r}. Create one first "
                "(manage.py createsuperuser, or the Django admin at /django-admin/)."
            ) from None
        roles.set_role(user, roles.ROLE_NAMES.get(role))
        name = user.get_username()
        if role == "none":
            self.stdout.write(f"{name} now has no role.")
        else:
            self.stdout.write(f"{name} is now a key {role}.")
        if user.is_superuser:
            self.stdout.write(f"Note: {name} is a superuser, and superusers are always admins.")
