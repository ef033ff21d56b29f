"""On a fresh install, make one superuser so that somebody can sign in at all."""

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from t0admin import hints

USERNAME = "admin"


class Command(BaseCommand):
    help = "Create the user 'admin' with a random password when there is no user at all."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.AUTH_MODE == "proxy":
            return  # behind a proxy nobody signs in with a password
        User = get_user_model()
        with transaction.atomic():
            if User.objects.select_for_update().exists():
                return
            password = secrets.token_urlsafe(18)
            User.objects.create_superuser(USERNAME, password=password)
        # Printed once, to the terminal of whoever started t0admin; never logged.
        self.stdout.write(
            f"t0admin: created the first user. Sign in as '{USERNAME}' with the password\n"
            f"t0admin:     {password}\n"
            "t0admin: it is shown only now: change it after signing in "
            f"({hints.manage_py()} changepassword {USERNAME})."
        )
