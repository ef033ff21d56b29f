"""For tests/test_fixed_urls.py: t0admin's key URLs under another path."""

from django.urls import include, path

urlpatterns = [path("mounted-elsewhere/", include("keys.urls"))]
