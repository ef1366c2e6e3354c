"""The console as a user walks it, in Debian's headless Chromium, on the shared stack: runs,
one run (its graph, parameters, a step's log), compare, the registry (approve with a
reason), deployments, monitoring, automation; a run in progress updating by itself. Every
page loads with no console error (a script or an outside resource the policy blocks is
one). A failing walk leaves a screenshot beside the test's temporary files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipelines.config.deployment import Deployment
from pipelines.console import app
from pipelines.console.source import Source
from pipelines.definition.parameters import check_arguments
from pipelines.launch import prepare
from tests.console.serving import console_server
from tests.monitoring.browser import chromium_path

pytestmark = pytest.mark.e2e


@contextmanager
def browser_page(screenshot: Path) -> Iterator:
    """A Chromium page that records console and page errors; on failure, a screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.errors = []
            page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            try:
                yield page
            except BaseException as error:
                page.screenshot(path=str(screenshot), full_page=True)
                error.add_note(f"screenshot of the page: {screenshot}")
                raise
        finally:
            browser.close()


def succeeded_runs(local_stack, count: int) -> list[str]:
    found = [e for e in local_stack.backend.list_executions(limit=50) if e.status == "Succeeded"]
    while len(found) < count:
        found.insert(0, local_stack.run())
        assert found[0].status == "Succeeded", found[0].failure_reason
    return [e.execution_id for e in found]


def test_a_user_walks_the_console(local_stack, tmp_path):
    newest = succeeded_runs(local_stack, 2)[0]
    source = Source(local_stack.settings, Deployment.parse("local"))
    with console_server(source) as running, browser_page(tmp_path / "walk.png") as page:
        page.goto(app.url(running.port, running.keys))
        assert page.locator("#runs tbody tr").count() >= 2
        page.click(f"#runs a:text-is('{newest}')")
        page.wait_for_selector("svg#graph")
        graph = page.locator("svg#graph").text_content() or ""
        for step in ("PreprocessData", "TrainModel", "EvaluateModel", "CheckModelQuality"):
            assert step in graph
        assert "NEstimators" in page.inner_text("#parameters")
        assert "sha256" in page.inner_text("#lineage")

        page.click("#steps tr:has-text('TrainModel') a:text-is('log')")
        assert page.inner_text("#log").strip(), "the training step's log is empty"
        page.go_back()

        page.click("text=compare with the previous run")
        page.wait_for_selector("#runs-compared")
        assert newest in page.inner_text("#runs-compared")
        assert page.locator(f"[id='diff-{newest}']").count() == 1
        assert page.errors == []


def test_a_run_in_progress_updates_without_a_reload(local_stack, tmp_path):
    """The run page of an executing run refreshes itself until the run ends."""
    overrides = check_arguments(["NEstimators=31"], None)  # not cached: its training runs
    prepared = prepare.prepare_run(
        local_stack.stack.connection, local_stack.config, overrides, None
    )
    execution = local_stack.backend.start(prepared)
    source = Source(local_stack.settings, Deployment.parse("local"))
    try:
        with console_server(source) as running, browser_page(tmp_path / "live.png") as page:
            page.goto(app.url(running.port, running.keys))
            page.goto(f"{running.base}/runs/{execution.execution_id}")
            heading = page.locator("h1 .status")
            assert heading.inner_text() in ("Executing", "Starting")
            page.wait_for_function(
                "() => document.querySelector('h1 .status').textContent.trim() === 'Succeeded'",
                timeout=120_000,
            )
            assert page.errors == []
    finally:
        local_stack.backend.wait(execution.execution_id, timeout=300)
