"""Liveness and readiness, for load balancers, Docker and `make run`'s own wait."""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.http import require_safe

from keys import gateway_schema
from t0admin.postgres.base import silence

log = logging.getLogger("t0admin.health")


@never_cache
@xframe_options_deny
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# /readyz answers within this many seconds whatever the database does: load balancers
# give up on a probe after a few seconds and would count silence as neither answer.
READY_TIMEOUT = 2.0

_checks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz")
_check_lock = threading.Lock()
_check: Future[str | None] | None = None


def _check_database() -> str | None:
    """The reason t0admin is not ready, or None. Runs on the readiness thread, on a
    connection of its own that is closed afterwards (probes are seconds apart)."""
    try:
        with silence.probing():
            gateway_schema.verify()
    except DatabaseError as error:
        # The driver's words name the database host and port: for the log, not for
        # whoever can reach this unauthenticated URL.
        log.warning("readyz: database unreachable: %s", str(error).strip().splitlines()[:1])
        return "database unreachable (details in t0admin's log)"
    except gateway_schema.GatewaySchemaError as error:
        return str(error)
    finally:
        connections.close_all()
    return None


def _current_check() -> Future[str | None]:
    """One check at a time per process: probes that arrive while the database is slow
    wait for the check already running instead of piling up threads and connections."""
    global _check
    with _check_lock:
        if _check is None or _check.done():
            _check = _checks.submit(_check_database)
        return _check


@never_cache
@xframe_options_deny
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    try:
        reason = _current_check().result(timeout=READY_TIMEOUT)
    except TimeoutError:
        log.warning("readyz: the database did not answer within %g seconds", READY_TIMEOUT)
        reason = f"database did not answer within {READY_TIMEOUT:g} seconds"
    if reason is not None:
        return JsonResponse({"status": "unavailable", "reason": reason}, status=503)
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
