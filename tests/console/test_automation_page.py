"""The automation page: the agent's status and its log newest first, from the action log
the agent writes, with the run each action started; event text is shown as text."""

from __future__ import annotations

import re

import pytest

from pipelines.automation.agent import automation_dir
from pipelines.automation.log import ActionLog, ActionRecord
from tests.console.serving import console_server

# A real console server (uvicorn) per test: the server tier, not the fast one.
pytestmark = pytest.mark.server


def test_the_log_newest_first_with_the_run_each_action_started(console_stack):
    settings = console_stack.source.settings
    directory = automation_dir(settings)
    directory.mkdir(parents=True)
    log = ActionLog(directory)
    log.append(
        ActionRecord(
            at=1_000.0, rule="mlops-local-new-data-retraining", purpose="new_data_retraining",
            why="new object s3://b/datasets/<b>x</b>.csv",
            command=["invoke", "pipeline-run", "--no-wait"], outcome="succeeded", exit_code=0,
            seconds=2.5, event={"detail-type": "Object Created", "id": "ev-1"},
            execution_id="abc123", run_status="Succeeded",
        )
    )  # fmt: skip
    log.append(
        ActionRecord(
            at=2_000.0, rule="mlops-local-commit-tests", purpose="commit_tests",
            why="commit 0123abc on main", command=["invoke", "test", "--tier", "fast"],
            outcome="failed", exit_code=1, seconds=40.0,
            output="collected 10 items\nFAILED tests/test_x.py::test_y",
        )
    )  # fmt: skip
    with console_server(console_stack.source) as running:
        page = running.session().get(f"{running.base}/automation").text
    assert "Agent: " in page
    assert "not running" in page.split('id="agent"')[1].split("</p>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", page.split('id="actions"')[1], re.DOTALL)[1:]
    assert len(rows) == 2
    assert "mlops-local-commit-tests" in rows[0]  # newest first
    assert "failed (exit 1)" in rows[0]
    assert "FAILED tests/test_x.py::test_y" in rows[0]
    assert "mlops-local-new-data-retraining" in rows[1]
    assert "abc123" in rows[1]
    assert "Succeeded" in rows[1]
    assert "Object Created ev-1" in rows[1]
    assert "&lt;b&gt;x&lt;/b&gt;" in rows[1]
    assert "<b>x</b>" not in page
