"""gzip for pages, except a response that shows a secret (README: "Compression and BREACH").

Pages are packed here with ISA-L's gzip (the `isal` package: the same gzip format, written
by Intel's library of vectorised compression routines) at its level 2, instead of zlib at
the level 6 that Django's GZipMiddleware fixes. Measured on the key list (one process,
best of 7 and of 200):

    packer          10,000 rows (8.7 MB)    100 rows (91 KB)
    zlib, level 6   75 ms     795 KB        0.71 ms   10.2 KB
    zlib, level 2   22 ms     848 KB        0.19 ms   10.9 KB
    zlib, level 1   22 ms     897 KB        0.18 ms   11.4 KB
    isal, level 1  5.5 ms     917 KB        0.06 ms   11.6 KB
    isal, level 2  5.5 ms     914 KB        0.06 ms   11.5 KB
    isal, level 3   17 ms     921 KB        0.17 ms   11.6 KB

ISA-L's level 2 packs four times as fast as zlib's quickest level, for 8 % more bytes than
zlib at level 2; the pages stay well under the byte targets (bench/RESULTS.md). Streamed
responses (the audit exports) still go through Django's middleware (zlib).

Either way the gzip header carries a random file name of random length, Django's BREACH
mitigation: lengths do not line up from one request to the next. Static files are not
this middleware's business: WhiteNoise, before it in MIDDLEWARE, answers those itself.
"""

from __future__ import annotations

import io
import secrets

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.gzip import GZipMiddleware, re_accepts_gzip
from django.utils.cache import patch_vary_headers
from isal import igzip

_UNCOMPRESSED = "t0admin_never_compress"
LEVEL = 2  # ISA-L's levels run from 0 to 3
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
    with igzip.IGzipFile(name, "wb", LEVEL, buffer, mtime=0) as out:
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
