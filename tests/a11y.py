"""What the accessibility and phone-layout tests check on a page: axe-core's audit, sideways
scrolling, tap-target sizes, where focus is. Used by tests/test_browser_a11y.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

# Installed by `make test` from tests/axe/package-lock.json (npm ci), never from a CDN.
AXE_JS = ROOT / "tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"]
BLOCKING_IMPACTS = {"serious", "critical"}

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# The narrowest and widest phones the layout is for, besides the usual 390.
PHONE_WIDTHS = [360, 390, 430]
TAP_TARGET = 44  # CSS px, WCAG 2.5.5


def axe_script() -> str:
    assert AXE_JS.exists(), f"{AXE_JS} is missing: `make test` installs it (npm ci)."
    return AXE_JS.read_text()


def install_axe(context: Any) -> None:
    """Every page of the context gets axe before its own scripts. An init script goes in
    through the DevTools protocol, so the page's CSP (script-src 'self') stays in force
    for everything else and is tested as it is."""
    context.add_init_script(script=axe_script())


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings, one readable line each."""
    results = page.evaluate(
        """tags => axe.run(document, {
            runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]})""",
        AXE_TAGS,
    )
    found = []
    for violation in results["violations"]:
        if violation["impact"] not in BLOCKING_IMPACTS:
            continue
        targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
        found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return found


def sideways_overflow(page: Any) -> list[str]:
    """Whatever makes the page, or an open dialog, scroll sideways (empty when none)."""
    return list(
        page.evaluate(
            """() => {
            const found = [];
            const root = document.scrollingElement;
            if (root.scrollWidth > root.clientWidth)
                found.push(`page is ${root.scrollWidth}px wide in ${root.clientWidth}px`);
            for (const dialog of document.querySelectorAll("dialog[open]")) {
                const box = dialog.getBoundingClientRect();
                if (box.left < 0 || box.right > root.clientWidth)
                    found.push(`dialog spans ${box.left}..${box.right}px of ${root.clientWidth}px`);
                if (dialog.scrollWidth > dialog.clientWidth)
                    found.push(`dialog content is ${dialog.scrollWidth}px in ${dialog.clientWidth}px`);
            }
            // The widest culprits, to say what to fix.
            const limit = root.clientWidth;
            for (const el of document.querySelectorAll("body *")) {
                const box = el.getBoundingClientRect();
                if (box.width && box.right > limit + 0.5 && getComputedStyle(el).position !== "fixed")
                    found.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}`
                        + `${el.className ? "." + String(el.className).split(" ").join(".") : ""}`
                        + ` ends at ${Math.round(box.right)}px`);
                if (found.length > 8) break;
            }
            return found;
        }"""
        )
    )


def small_tap_targets(page: Any, selector: str) -> list[str]:
    """Visible links and buttons under `selector` smaller than 44 by 44 CSS px."""
    return list(
        page.evaluate(
            """([selector, size]) => {
            const small = [];
            for (const el of document.querySelectorAll(selector)) {
                const box = el.getBoundingClientRect();
                if (!box.width) continue;
                if (box.width < size || box.height < size)
                    small.push(`${el.textContent.trim()}: ${box.width}x${box.height}`);
            }
            return small;
        }""",
            [selector, TAP_TARGET],
        )
    )


def focused(page: Any) -> dict[str, Any]:
    """The focused element: its tag, id, text, and the ids of its dialog and key row."""
    return dict(
        page.evaluate(
            """() => {
            const el = document.activeElement;
            return {
                tag: el ? el.tagName.toLowerCase() : null,
                id: el ? el.id : null,
                text: el ? el.textContent.trim().replace(/\\s+/g, " ") : "",
                in_dialog: !!(el && el.closest("dialog[open]")),
                row: el && el.closest("tr") ? el.closest("tr").id : null,
            };
        }"""
        )
    )


def screenshots(page: Any, name: str) -> None:
    """With T0ADMIN_SCREENSHOTS=DIR, a picture of the screen at each width, to look at."""
    folder = os.environ.get("T0ADMIN_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        slug = "".join(c if c.isalnum() else "-" for c in name)
        page.screenshot(path=f"{folder}/{slug}-{size['width']}.png", full_page=True)


def audit(page: Any, name: str) -> list[str]:
    """axe at desktop and phone widths, then sideways scrolling at each phone width."""
    problems = [f"at 1280 px: {found}" for found in serious_violations(page)]
    page.set_viewport_size(PHONE)
    problems += [f"at 390 px: {found}" for found in serious_violations(page)]
    for width in PHONE_WIDTHS:
        page.set_viewport_size({"width": width, "height": PHONE["height"]})
        problems += [f"at {width} px: {found}" for found in sideways_overflow(page)]
    screenshots(page, name)
    return problems
