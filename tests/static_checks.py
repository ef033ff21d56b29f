"""What a running t0admin must do with static files, wherever it runs (gunicorn, the image)."""

from __future__ import annotations

import gzip
import re
import urllib.request

import brotli

from tests.conftest import ROOT

# Our own files, as linked from every page; Django's admin files follow the same path.
LINKED = ["css/t0admin.css", "favicon.svg", "vendor/htmx.min.js", "js/t0admin.js"]


def fetch(url: str, encoding: str) -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": encoding})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {k.lower(): v for k, v in response.headers.items()}, response.read()


def assert_collected_static_served(base_url: str) -> None:
    """The sign-in page links to collectstatic's hash-named files, and those are served
    pre-compressed (brotli, gzip), cached for a year, with the source files' content."""
    _, page = fetch(base_url + "/sign-in", "identity")
    links = {
        unhash(link): link for link in re.findall(r'(?:href|src)="(/static/[^"]+)"', page.decode())
    }
    assert sorted(links) == sorted(LINKED), links
    for name, link in links.items():
        assert link != f"/static/{name}", f"{link} is not a hash-named copy"
        source = (ROOT / "static" / name).read_bytes()

        headers, body = fetch(base_url + link, "br")
        assert headers.get("content-encoding") == "br", (link, headers)
        assert brotli.decompress(body) == source
        assert "immutable" in headers["cache-control"], headers
        assert int(re.search(r"max-age=(\d+)", headers["cache-control"])[1]) >= 365 * 24 * 3600

        headers, body = fetch(base_url + link, "gzip")
        assert headers.get("content-encoding") == "gzip", (link, headers)
        assert gzip.decompress(body) == source

        headers, body = fetch(base_url + link, "identity")
        assert "content-encoding" not in headers
        assert body == source


def unhash(link: str) -> str:
    """`/static/css/t0admin.0123456789ab.css` -> `css/t0admin.css`."""
    return re.sub(r"\.[0-9a-f]{12}(\.\w+)$", r"\1", link.removeprefix("/static/"))
