"""Debian's Chromium, headless, for tests that must see a page render.

Found as ``MLOPS_CHROMIUM`` or ``chromium`` / ``chromium-browser`` on PATH (``.ci/run`` installs
Debian's package). Where none is found the test skips, except under CI (``CI=true``), where a
missing browser is a failure: the check must run somewhere.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def chromium_path() -> str:
    found = os.environ.get("MLOPS_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )
    if found:
        return found
    message = "no Chromium: install Debian's `chromium` package or set MLOPS_CHROMIUM"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class RenderedPage:
    errors: list[str] = field(default_factory=list)
    svg_count: int = 0
    trace_points: dict[str, int] = field(default_factory=dict)
    text: str = ""


def render(path: Path, chart_selector: str = ".main-svg") -> RenderedPage:
    """Load a file in headless Chromium; console errors, page errors, SVG charts and, per
    plotly chart, how many x values each trace plots."""
    from playwright.sync_api import sync_playwright

    page_result = RenderedPage()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: page_result.errors.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: page_result.errors.append(str(e)))
            page.on("requestfailed", lambda r: page_result.errors.append(f"request {r.url}"))
            page.goto(path.resolve().as_uri())
            page.wait_for_selector(chart_selector, timeout=30_000)
            page.wait_for_load_state("load")
            page_result.svg_count = page.locator(f"svg{chart_selector}").count()
            page_result.trace_points = page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')]
                     .map(d => [d.id, Math.max(0, ...d.data.map(t => (t.x || []).length))]))"""
            )
            page_result.text = page.inner_text("body")
        finally:
            browser.close()
    return page_result
