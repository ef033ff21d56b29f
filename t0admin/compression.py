"""gzip for pages, except a response that shows a secret (README: "Compression and BREACH").

Pages are packed here at zlib level 2 instead of the level 6 that Django's GZipMiddleware
fixes. Measured on the key list (one process, best of 5):

    level   10,000 rows (8.6 MB)      100 rows (87 KB)
    6       61 ms   796 KB            0.57 ms   10.3 KB
    4       27 ms   801 KB            0.24 ms   10.3 KB
    2       17 ms   848 KB            0.12 ms   10.8 KB
    1       17 ms   898 KB            0.13 ms   11.4 KB

Level 2 compresses as fast as 1, to 6 % more than 6 in a quarter of its time; the pages
stay well under the byte targets (bench/RESULTS.md). Streamed responses (the audit
exports) still go through Django's middleware.

Either way the gzip header carries a random file name of random length, Django's BREACH
mitigation: lengths do not line up from one request to the next. Static files are not
this middleware's business: WhiteNoise, before it in MIDDLEWARE, answers those itself.
"""

from __future__ import annotations

import gzip
import io
import secrets

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.gzip import GZipMiddleware, re_accepts_gzip
from django.utils.cache import patch_vary_headers

_UNCOMPRESSED = "t0admin_never_compress"
LEVEL = 2
SMALLEST = 200  # bytes: below this, gzip's own 18 bytes and the name outweigh the gain


def never_compress(response: HttpResponseBase) -> HttpResponseBase:
    """Send `response` as it is, whatever the client accepts."""
    setattr(response, _UNCOMPRESSED, True)
    return response


def packed(content: bytes, max_random_bytes: int) -> bytes:
    """`content` gzipped at LEVEL, under a random name of 1 to `max_random_bytes` bytes
    (none if it is 0, as in Django's)."""
    size = secrets.randbelow(max_random_bytes) + 1 if max_random_bytes else 0
    name = secrets.token_hex(size)[:size]
    buffer = io.BytesIO()
    with gzip.GzipFile(name, "wb", LEVEL, buffer, mtime=0) as out:
        out.write(content)
    return buffer.getvalue()


class CompressionMiddleware(GZipMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(response, _UNCOMPRESSED, False):
            return response
        if response.streaming:
            return super().process_response(request, response)
        content = response.content  # type: ignore[attr-defined]
        if len(content) < SMALLEST or response.has_header("Content-Encoding"):
            return response
        # Whether or not this one is compressed, caches must keep the two versions apart.
        patch_vary_headers(response, ("Accept-Encoding",))
        if not re_accepts_gzip.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
            return response
        compressed = packed(content, self.max_random_bytes)
        if len(compressed) >= len(content):
            return response
        response.content = compressed  # type: ignore[attr-defined]
        response.headers["Content-Length"] = str(len(compressed))
        response.headers["Content-Encoding"] = "gzip"
        etag = response.get("ETag")
        if etag and etag.startswith('"'):  # the bytes changed: a strong ETag becomes weak
            response.headers["ETag"] = "W/" + etag
        return response
