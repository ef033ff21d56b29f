"""For bench/paging.py only, in its own process: t0admin's URLs plus one signed-in view
that does nothing, to show what every signed-in page pays before its own work (the
session, the user and the middleware)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from keys.permissions import require_viewer
from t0admin.urls import urlpatterns as app


@require_viewer
def nothing(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"")


urlpatterns = [path("bench/nothing", nothing), *app]
