from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest
from django.urls import include, path
from django.views.generic import RedirectView

from t0admin import auth, health


def _superusers_only(request: HttpRequest) -> bool:
    # Roles live in groups; Django's admin site decides who is who, so only superusers.
    return bool(request.user.is_active and request.user.is_superuser)


admin.site.has_permission = _superusers_only  # type: ignore[method-assign]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="keys:list", permanent=False)),
    path("healthz", login_not_required(health.healthz), name="healthz"),
    path("readyz", login_not_required(health.readyz), name="readyz"),
    path("sign-in", auth.sign_in, name="login"),
    path("sign-out", auth.sign_out, name="logout"),
    path("", include("keys.urls")),
    path("django-admin/", admin.site.urls),
]

handler400 = "t0admin.errors.bad_request"
handler403 = "t0admin.errors.permission_denied"
handler404 = "t0admin.errors.page_not_found"
handler500 = "t0admin.errors.server_error"
