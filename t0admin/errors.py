"""Error pages: never a traceback, and a 503 that says so when the database is down."""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its exception handler, wherever the error arose (a view or
    # a middleware loading the session), so the cause is still in sys.exc_info().
    error = sys.exc_info()[1]
    if isinstance(error, OperationalError | InterfaceError):
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = "5"
        return response
    return HttpResponse(render_to_string("500.html"), status=500)
