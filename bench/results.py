"""bench/RESULTS.md is shared: paging.py writes the file, other scripts keep a marked
section of their own in it, which a rewrite by paging.py carries over."""

from __future__ import annotations

import re
from pathlib import Path

_SECTION = re.compile(r"<!-- (bench/\S+): begin -->.*?<!-- \1: end -->", re.DOTALL)


def markers(script: str) -> tuple[str, str]:
    return f"<!-- {script}: begin -->", f"<!-- {script}: end -->"


def write_section(results: Path, script: str, body: str) -> None:
    """Put `body` in `script`'s section of `results`, in place or at the end."""
    begin, end = markers(script)
    section = f"{begin}\n{body}\n{end}"
    old = results.read_text(encoding="utf-8") if results.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + section + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(new, encoding="utf-8")


def rewrite(results: Path, text: str) -> None:
    """Replace `results` with `text`, keeping the other scripts' sections."""
    old = results.read_text(encoding="utf-8") if results.exists() else ""
    kept = [match.group(0) for match in _SECTION.finditer(old)]
    results.write_text(
        text.rstrip("\n") + "".join(f"\n\n{s}" for s in kept) + "\n", encoding="utf-8"
    )
