"""The console as a user walks it, in Debian's headless Chromium, on the shared stack: runs,
one run (its graph, parameters, a step's log), compare, the registry (approve with a
reason), deployments, monitoring, automation; a run in progress updating by itself. Every
page loads with no console error (a script or an outside resource the policy blocks is
one). A failing walk leaves a screenshot beside the test's temporary files."""

from __future__ import annotations

import getpass
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipelines.config.deployment import Deployment
from pipelines.console import app
from pipelines.console.source import Source
from pipelines.definition.parameters import check_arguments
from pipelines.launch import prepare
from pipelines.registry import APPROVED, PENDING, Registry
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
    # The version approved from the page comes from a run with the defaults, so the
    # champion it becomes scores as every later default run does (the model-quality
    # check of the other tests on this stack compares with it).
    succeeded_runs(local_stack, 1)  # and the run below: two runs to compare
    latest = local_stack.run()
    assert latest.status == "Succeeded", latest.failure_reason
    registry = Registry(local_stack.stack.connection, local_stack.config.model_package_group_name)
    version = registry.get()
    assert version.execution_arn == latest.execution_arn
    assert version.status == PENDING
    pending, newest = version.version, latest.execution_id
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
        assert "definition sha256" in page.inner_text("#lineage").lower()

        page.click("#steps tr:has-text('TrainModel') a:text-is('log')")
        assert page.inner_text("#log").strip(), "the training step's log is empty"
        page.go_back()

        page.click("text=compare with the previous run")
        page.wait_for_selector("#runs-compared")
        assert newest in page.inner_text("#runs-compared")
        assert page.locator(f"[id='diff-{newest}']").count() == 1

        page.click("header nav a:text-is('Registry')")
        row = page.locator(f"#version-{pending}")
        row.locator("input[name=reason]").fill("checked in the console <b>R2</b>")
        row.locator("button[value=approve]").click()
        page.wait_for_selector(".flash")
        assert f"{pending}" in page.inner_text(".flash")
        assert APPROVED in page.inner_text(f"#version-{pending}")

        for section, selector in (
            ("Deployments", "#stages"),
            ("Monitoring", "h1"),
            ("Automation", "#agent"),
        ):
            page.click(f"header nav a:text-is('{section}')")
            page.wait_for_selector(selector)
        assert page.errors == []

    # Recorded as `invoke model-approve` records it: who (the user) and why.
    approved = registry.get(pending)
    assert approved.status == APPROVED
    assert "checked in the console <b>R2</b>" in (approved.approval_description or "")
    assert getpass.getuser() in (approved.approval_description or "")


def test_the_export_opens_from_disk_with_every_link_resolved(local_stack, tmp_path):
    """`invoke ui --export` through the task, then every page in the browser from file://."""
    succeeded_runs(local_stack, 1)
    exported = local_stack.invoke("ui", "--export", str(tmp_path / "site"))
    assert exported.returncode == 0, exported.stderr
    pages = sorted((tmp_path / "site").glob("*.html"))
    names = {path.name for path in pages}
    assert {"index.html", "registry.html", "deployments.html", "automation.html"} <= names
    for path in pages:
        text = path.read_text()
        assert "Not available" not in text, path.name
        for target in re.findall(r'(?:href|src)="(?!data:)([^"#?]+)', text):
            assert (path.parent / target).is_file(), f"{path.name} links {target}"
    with browser_page(tmp_path / "export.png") as page:
        for path in (tmp_path / "site" / "index.html", *pages[:5]):
            page.goto(path.resolve().as_uri())
        assert page.errors == []


def test_a_run_in_progress_updates_without_a_reload(local_stack, tmp_path):
    """The run page of an executing run refreshes itself until the run ends."""
    # Not cached (its training runs); no comparison with the champion, so it succeeds.
    overrides = check_arguments(["NEstimators=7", "SkipModelQualityCheck=true"], None)
    prepared = prepare.prepare_run(
        local_stack.stack.connection, local_stack.config, overrides, None
    )
    source = Source(local_stack.settings, Deployment.parse("local"))
    execution = None
    try:
        # The console and the browser are up before the run starts, so its page is first
        # seen while it executes, whatever the machine's speed.
        with console_server(source) as running, browser_page(tmp_path / "live.png") as page:
            page.goto(app.url(running.port, running.keys))
            execution = local_stack.backend.start(prepared)
            page.goto(f"{running.base}/runs/{execution.execution_id}")
            heading = page.locator("h1 .status")
            assert heading.inner_text() in ("Executing", "Starting")
            page.wait_for_function(
                "() => document.querySelector('h1 .status').textContent.trim() === 'Succeeded'",
                timeout=120_000,
            )
            # Every step the run took shows its final status, from the same page's refreshes.
            assert "Executing" not in page.inner_text("#steps")
            assert page.errors == []
    finally:
        if execution is not None:
            local_stack.backend.wait(execution.execution_id, timeout=300)
