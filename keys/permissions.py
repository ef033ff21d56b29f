"""Who may read and who may write keys. Checked in every view, not only in templates:
any partial can be requested on its own."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase

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


def _guard(
    check: Callable[[HttpRequest], bool], reason: Callable[[], str]
) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
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
