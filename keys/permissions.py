"""Who may read and who may write keys. Checked in every view, not only in templates:
any partial can be requested on its own."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

VIEW_PERMISSION = "keys.view_apikey"
AUDIT_PERMISSION = "keys.view_auditevent"
WRITE_PERMISSION = "keys.change_apikey"

View = Callable[..., HttpResponseBase]


def can_view(request: HttpRequest) -> bool:
    return request.user.is_authenticated and request.user.has_perm(VIEW_PERMISSION)


def can_view_audit(request: HttpRequest) -> bool:
    return request.user.is_authenticated and request.user.has_perm(AUDIT_PERMISSION)


def can_write(request: HttpRequest) -> bool:
    """False in read-only mode, whoever asks."""
    return (
        not settings.READ_ONLY
        and request.user.is_authenticated
        and request.user.has_perm(WRITE_PERMISSION)
    )


SIGNED_OUT_NOT_DONE = (
    "Your session had ended, so what you sent was not done: nothing was changed. "
    "Now that you are signed in again, do it once more."
)


def return_to(request: HttpRequest) -> str:
    """Where sign-in sends someone whose session had ended: the address they asked for. A
    form they sent cannot be sent again by a redirect, and its address answers only POST:
    for that, the page they sent it from (htmx says which), told that it was not done."""
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    messages.warning(request, SIGNED_OUT_NOT_DONE)
    current = request.headers.get("HX-Current-URL", "")
    if url_has_allowed_host_and_scheme(
        current, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        found = urlsplit(current)
        return found.path + (f"?{found.query}" if found.query else "")
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _guard(
    check: Callable[[HttpRequest], bool], reason: Callable[[], str]
) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(return_to(request))
            if not check(request):
                raise PermissionDenied(reason())
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _write_refusal() -> str:
    if settings.READ_ONLY:
        return "t0admin is read-only (TENSORZERO_UI_READ_ONLY=1): nothing can be changed."
    return "Your role may see API keys but not change them."


require_viewer = _guard(can_view, lambda: "Your account has no role that may see API keys.")
require_writer = _guard(can_write, _write_refusal)
require_audit_viewer = _guard(
    can_view_audit, lambda: "Your account has no role that may see the audit trail."
)
