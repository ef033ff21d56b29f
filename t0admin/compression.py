"""gzip for pages, except a response that shows a secret (README: "Compression and BREACH").

Django's own GZipMiddleware does the work, with its BREACH mitigation (random bytes in the
gzip header, so that lengths do not line up request after request). Static files are not
its business: WhiteNoise, before it in MIDDLEWARE, answers those itself.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.gzip import GZipMiddleware

_UNCOMPRESSED = "t0admin_never_compress"


def never_compress(response: HttpResponseBase) -> HttpResponseBase:
    """Send `response` as it is, whatever the client accepts."""
    setattr(response, _UNCOMPRESSED, True)
    return response


class CompressionMiddleware(GZipMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(response, _UNCOMPRESSED, False):
            return response
        return super().process_response(request, response)
