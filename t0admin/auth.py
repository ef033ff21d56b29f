"""Sign-in pages, the throttled sign-in's answer, and what every page knows of the user."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import backends
from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render, resolve_url
from django.utils.functional import SimpleLazyObject
from django.views.decorators.cache import never_cache

from keys import roles, text
from keys.permissions import return_to
from t0admin.sessions import MISSING, SessionStore


def context(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    return {
        "auth_mode": settings.AUTH_MODE,
        "user_role": roles.role_of(user) if user is not None and user.is_authenticated else None,
    }


# A signed-in user, the names of their permissions (given to them or to their groups,
# spelled as ModelBackend spells them: "keys.view_apikey") and of their groups: one query.
# Django's backend asks three times on every page (the user, their permissions, their
# groups'), and the last two cost 1 ms of each page a member of a role sees; behind a
# proxy the role's check asked a fourth time (bench/RESULTS.md). The permissions and groups
# come from a function (migrations keys 0007 and 0008), whose plan the server keeps per
# connection. Called by its schema-qualified name: another one in `public` never answers.
USER_WITH_PERMISSIONS = """
SELECT u.*, f.permission_names, f.group_names
FROM auth_user u CROSS JOIN LATERAL t0admin.user_with_permissions(u.id) AS f
WHERE u.id = %s
"""


# The session of the request whose user is being read (AuthenticationMiddleware): the
# user's row came with it (t0admin/sessions.py), and ModelBackend.get_user takes it there.
_reading: ContextVar[SessionBase | None] = ContextVar("t0admin_reading_user", default=None)


class AuthenticationMiddleware(auth_middleware.AuthenticationMiddleware):
    """Django's, whose request.user is read from the row that came with the session."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: _user(request))  # type: ignore[assignment]


def _user(request: HttpRequest) -> Any:
    """Django's lazy user (read once per request), with the session at hand."""
    reading = _reading.set(request.session)
    try:
        return auth_middleware.get_user(request)
    finally:
        _reading.reset(reading)


class ModelBackend(backends.ModelBackend):
    """Django's, but a session's user comes with their permissions and the names of their
    groups (`group_names`, for keys.roles): in the session's own query when the page reads
    its session (t0admin.sessions), else in one query of their own."""

    def get_user(self, user_id: Any) -> Any:
        # The query names auth.User's tables: t0admin keeps Django's user model.
        try:
            pk = User._meta.pk.to_python(user_id)  # type: ignore[union-attr]
        except ValidationError:
            return None
        database = router.db_for_read(User)
        session = _reading.get()
        found = session.user_row(pk) if isinstance(session, SessionStore) else MISSING
        if found is MISSING:
            found = _read_user(database, pk)
        if found is None:
            return None
        fields = User._meta.concrete_fields
        user: Any = User.from_db(
            database, [f.attname for f in fields], [found[f.attname] for f in fields]
        )
        user.group_names = found["group_names"]
        if not self.user_can_authenticate(user):
            return None
        if not user.is_superuser:  # a superuser's checks are answered without asking
            # Where ModelBackend.get_all_permissions keeps the same set for the request.
            user._perm_cache = set(found["permission_names"])
        return user

    async def aget_user(self, user_id: Any) -> Any:
        return await sync_to_async(self.get_user)(user_id)


def _read_user(database: str, pk: Any) -> dict[str, Any] | None:
    # A plain cursor: RawQuerySet's mapping of columns cost a third of this query's time
    # on every page (bench/RESULTS.md, 2026-12-03).
    with connections[database].cursor() as cursor:
        cursor.execute(USER_WITH_PERMISSIONS, [pk])
        row = cursor.fetchone()
        names = [column.name for column in cursor.description or ()]
    return None if row is None else dict(zip(names, row, strict=True))


def _in_words(delay: timedelta) -> str:
    seconds = max(1, round(delay.total_seconds()))
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute" + ("s" if minutes != 1 else "")
    return f"{seconds} second" + ("s" if seconds != 1 else "")


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' answer once a name or an address failed too often: the sign-in page
    again, saying when to try again, with Retry-After for scripts."""
    delay: timedelta = settings.AXES_COOLOFF_TIME
    form = AuthenticationForm(request, data=None)
    message = (
        f"Too many failed sign-ins for this user name or from this address. "
        f"Try again in {_in_words(delay)}."
    )
    response = render(
        request,
        "registration/login.html",
        {"form": form, "lockout": message},
        status=429,
    )
    response["Retry-After"] = str(round(delay.total_seconds()))
    return response


class SignInForm(AuthenticationForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "User name"

    def clean_username(self) -> str:
        """Refused before anyone is asked (the sign-in throttle would store what is sent):
        a name longer than any user's, and an API key pasted in the wrong box, which is
        then not shown again either."""
        username: str = self.cleaned_data["username"]
        if text.holds_secret(username):
            self.data = {**self.data, "username": ""}  # not shown again in the box
            raise ValidationError(
                "That looks like an API key, not a user name. It was not stored or sent anywhere; "
                "if someone else may have seen it, disable it.",
                code="api_key",
            )
        longest = User._meta.get_field("username").max_length or 150
        if len(username) > longest:
            raise ValidationError(
                f"A user name has at most {longest} characters.", code="max_length"
            )
        return username


@login_not_required
@never_cache
def sign_in(request: HttpRequest) -> HttpResponseBase:
    # Behind a proxy nobody signs in here: the proxy already said who this is.
    if settings.AUTH_MODE == "proxy":
        return redirect(settings.LOGIN_REDIRECT_URL)
    return auth_views.LoginView.as_view(
        authentication_form=SignInForm, redirect_authenticated_user=True
    )(request)


sign_out = auth_views.LogoutView.as_view()


class SignInRequiredMiddleware(LoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware, but an htmx request whose session ended sends the
    whole page to sign-in instead of swapping the sign-in page into a table cell."""

    # The stubs promise a redirect; htmx needs anything but one (XHR would follow it).
    def handle_no_permission(  # type: ignore[override]
        self, request: HttpRequest, view_func: Any
    ) -> HttpResponse:
        # As Django's, but a form sent (POST) returns to the page it was sent from.
        response = redirect_to_login(
            return_to(request),
            resolve_url(self.get_login_url(view_func)),
            self.get_redirect_field_name(view_func),
        )
        if request.headers.get("HX-Request") != "true":
            return response
        whole_page = HttpResponse(status=204)
        whole_page["HX-Redirect"] = response["Location"]
        return whole_page
