"""Liveness and readiness, for load balancers, Docker and `make run`'s own wait."""

import logging
from collections.abc import Callable

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.http import require_GET

from keys import gateway_schema

log = logging.getLogger("t0admin.health")


@never_cache
@xframe_options_deny
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@xframe_options_deny
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    try:
        gateway_schema.verify()
    except DatabaseError as error:
        # The driver's words name the database host and port: for the log, not for
        # whoever can reach this unauthenticated URL.
        log.warning("readyz: database unreachable: %s", str(error).strip().splitlines()[:1])
        reason = "database unreachable (details in t0admin's log)"
        return JsonResponse({"status": "unavailable", "reason": reason}, status=503)
    except gateway_schema.GatewaySchemaError as error:
        return JsonResponse({"status": "unavailable", "reason": str(error)}, status=503)
    return JsonResponse({"status": "ready"})


class HealthMiddleware:
    """Answers /healthz and /readyz before anything else looks at the request.

    Load balancers, Docker's HEALTHCHECK and Kubernetes probes call by IP address or
    `localhost`, not by the host name in T0ADMIN_ALLOWED_HOSTS; the host check, the
    https redirect and sign-in are for people, not for probes. Both answers are JSON
    that says nothing about keys or users.
    """

    ROUTES = {"/healthz": healthz, "/readyz": readyz}

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.ROUTES.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
