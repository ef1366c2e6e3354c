"""The registry page against the emulator: versions newest first with their metrics, and
approve / reject from the page, recorded as `model-approve` records it; forms without the
CSRF token, or with bad input, change nothing."""

from __future__ import annotations

import getpass
import html
import re

import pytest

from pipelines.console.export import export
from tests.console.serving import console_server

# A real console server (uvicorn) per test: the server tier, not the fast one.
pytestmark = pytest.mark.server


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form carrying the CSRF token"
    return found.group(1)


def _row(page: str, version: int) -> str:
    found = re.search(rf'<tr id="version-{version}">(.*?)</tr>', page, re.DOTALL)
    assert found, f"version {version} is not listed"
    return found.group(1)


def test_versions_are_listed_newest_first_with_metrics_against_the_champion(console_stack):
    first = console_stack.register(noise=2.0)
    console_stack.registry.set_status(first.version, "Approved", "baseline", "pytest")
    console_stack.register(noise=6.0)  # worse than the champion
    console_stack.register(noise=4.0)
    with console_server(console_stack.source) as running:
        page = running.session().get(f"{running.base}/registry").text
    order = [int(n) for n in re.findall(r'<tr id="version-(\d+)">', page)]
    assert order == [3, 2, 1]
    assert "champion" in _row(page, 1)
    metrics = console_stack.registry.metrics(console_stack.registry.get(2))
    second = _row(page, 2)
    spreads = console_stack.registry.metrics(console_stack.registry.get(2), "standard_deviation")
    assert f'r2 {metrics["r2"]:.4f} <span class="note">± {spreads["r2"]:.4f}</span>' in second
    assert "worse" in second
    assert "better" not in second
    assert "Pending" in second
    assert "<form" in second
    assert "<form" not in _row(page, 1)  # decided versions offer no form


def test_approve_with_a_reason_records_the_approver_as_model_approve_does(console_stack):
    version = console_stack.register()
    with console_server(console_stack.source) as running:
        session = running.session()
        csrf = _csrf(session.get(f"{running.base}/registry").text)
        answer = session.post(
            f"{running.base}/registry",
            data={"csrf": csrf, "version": version.version, "decision": "approve",
                  "reason": "better on the held-out split"},
        )  # fmt: skip
        after = session.get(f"{running.base}/registry").text
    assert answer.status_code == 200
    assert f"Version {version.version}: Approved" in answer.text  # the flash sentence
    recorded = console_stack.registry.get(version.version)
    assert recorded.status == "Approved"
    assert re.fullmatch(
        rf"approved by {re.escape(getpass.getuser())} at \S+Z: better on the held-out split",
        recorded.approval_description,
    )
    row = _row(after, version.version)
    assert "Approved" in row
    assert getpass.getuser() in row
    assert "better on the held-out split" in row


@pytest.mark.parametrize("csrf", [None, "wrong-token"])
def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(console_stack, csrf):
    version = console_stack.register()
    with console_server(console_stack.source) as running:
        session = running.session()
        form = {"version": version.version, "decision": "approve", "reason": "x"}
        if csrf:
            form["csrf"] = csrf
        answer = session.post(f"{running.base}/registry", data=form)
    assert answer.status_code == 403
    assert console_stack.registry.get(version.version).status == "PendingManualApproval"


@pytest.mark.parametrize(
    ("form", "sentence"),
    [
        ({"version": "1", "decision": "reject", "reason": "  "}, "Say why version 1 is rejected"),
        ({"version": "9", "decision": "approve", "reason": "x"}, "Model version 9 does not exist"),
        ({"version": "one", "decision": "approve"}, "must be a whole number, got 'one'"),
        ({"version": "1", "decision": "delete"}, "Unknown decision 'delete'"),
    ],
)
def test_bad_input_gets_a_sentence_and_changes_nothing(console_stack, form, sentence):
    version = console_stack.register()
    with console_server(console_stack.source) as running:
        session = running.session()
        csrf = _csrf(session.get(f"{running.base}/registry").text)
        answer = session.post(f"{running.base}/registry", data={**form, "csrf": csrf})
    assert answer.status_code == 400
    assert sentence in html.unescape(answer.text)
    recorded = console_stack.registry.get(version.version)
    assert recorded.status == "PendingManualApproval"
    assert not recorded.approval_description


def test_a_hostile_reason_is_shown_as_text(console_stack):
    version = console_stack.register()
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with console_server(console_stack.source) as running:
        session = running.session()
        csrf = _csrf(session.get(f"{running.base}/registry").text)
        answer = session.post(
            f"{running.base}/registry",
            data={
                "csrf": csrf,
                "version": version.version,
                "decision": "reject",
                "reason": hostile,
            },
        )
        page = session.get(f"{running.base}/registry").text
    assert console_stack.registry.get(version.version).status == "Rejected"
    for shown in (answer.text, page):
        assert "<script>" not in shown
        assert "<img src=x" not in shown
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in shown


def test_the_export_lists_the_versions_without_forms(console_stack, tmp_path):
    console_stack.register()
    export(console_stack.source, tmp_path)
    page = (tmp_path / "registry.html").read_text()
    assert '<tr id="version-1">' in page
    assert "Pending" in page
    assert "<form" not in page
    assert 'name="csrf"' not in page
