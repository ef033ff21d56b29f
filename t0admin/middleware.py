"""The viewer's time zone, for every page."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

TIMEZONE_COOKIE = "t0admin_tz"  # set by static/js/t0admin.js from the browser's own zone


class TimezoneMiddleware:
    """Show dates in the viewer's time zone (stored in UTC); UTC until the browser says."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = unquote(request.COOKIES.get(TIMEZONE_COOKIE, ""))
        try:
            zone = zoneinfo.ZoneInfo(name) if name else None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = None  # a stale or forged cookie: fall back, never fail
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        return self.get_response(request)


# Read and dropped, so that the client hears the 413 instead of a reset connection.
DRAIN_AT_MOST = 16 * 2**20


class RequestTooLargeMiddleware:
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE gets a 413 in words. It runs before the
    CSRF check, which reads the body first and would turn it into a bare 400."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from django.conf import settings

        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = request.META.get("CONTENT_LENGTH") or "0"
        length = int(raw) if raw.isascii() and raw.isdigit() else 0
        if limit is None or length <= limit:
            return self.get_response(request)
        left = min(length, DRAIN_AT_MOST)
        while left > 0:
            chunk = request.read(min(2**16, left))
            if not chunk:
                break
            left -= len(chunk)
        return HttpResponse(
            f"This request is {length / 2**20:.1f} MB; t0admin takes at most "
            f"{limit / 2**20:.1f} MB in one request, and a pasted leak at most 1 MB. Split "
            "the text into parts, or run manage.py find_leaked_keys on the file, which "
            "reads any size.\n",
            status=413,
            content_type="text/plain; charset=utf-8",
        )
