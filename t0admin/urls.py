from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from t0admin import health

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="keys:list", permanent=False)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("keys.urls")),
    path("django-admin/", admin.site.urls),
]

handler500 = "t0admin.errors.server_error"
