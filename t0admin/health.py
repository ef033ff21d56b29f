"""Liveness and readiness, for load balancers, Docker and `make run`'s own wait."""

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from keys import gateway_schema


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    try:
        gateway_schema.verify()
    except DatabaseError as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        reason = f"database unreachable: {first_line}"
        return JsonResponse({"status": "unavailable", "reason": reason}, status=503)
    except gateway_schema.GatewaySchemaError as error:
        return JsonResponse({"status": "unavailable", "reason": str(error)}, status=503)
    return JsonResponse({"status": "ready"})
