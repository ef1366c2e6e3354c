"""`invoke data-upload`: a file put under the new-data prefix starts a retraining run on it
through the local automation agent, as the same rule does on AWS."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pipelines.automation.agent import AgentProcess, automation_dir
from pipelines.automation.log import ActionLog
from pipelines.backends.local import LocalBackend
from pipelines.launch.datasets import SAMPLE_DATA
from pipelines.teardown import stop_running_executions

pytestmark = pytest.mark.e2e


@pytest.fixture
def agent(local_stack) -> Iterator[AgentProcess]:
    sqs = local_stack.stack.connection.client("sqs")
    sqs.purge_queue(QueueUrl=local_stack.config.automation_queue_url)
    process = AgentProcess(local_stack.settings)
    process.start()
    try:
        yield process
    finally:
        process.stop()
        stop_running_executions(
            LocalBackend(local_stack.settings, local_stack.stack.connection), local_stack.config
        )


def test_data_upload_starts_a_run_on_the_file_through_the_agent(local_stack, agent, tmp_path):
    upload = tmp_path / "houses-2026-03.csv"
    upload.write_bytes(SAMPLE_DATA.read_bytes())
    before = {e.execution_id for e in local_stack.backend.list_executions(limit=1000)}
    uploaded = local_stack.invoke("data-upload", "--file", str(upload))
    assert uploaded.returncode == 0, uploaded.stderr
    uri = f"s3://{local_stack.config.bucket_name}/datasets/incoming/houses-2026-03.csv"
    assert f"Uploaded to {uri} (version " in uploaded.stdout
    assert "new-data-retraining fires: the automation agent runs" in uploaded.stdout

    log = ActionLog(automation_dir(local_stack.settings))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        # The agent logs an action before it runs it, then the run it started.
        acted = [
            r
            for r in log.read()
            if r.purpose == "new_data_retraining" and uri in r.command and r.execution_id
        ]
        if acted:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the agent did not act on the upload within 300 s")
    started = [
        e for e in local_stack.backend.list_executions(limit=1000) if e.execution_id not in before
    ]
    assert [e.execution_id for e in started] == [acted[0].execution_id]
    assert started[0].lineage["input_data"]["uri"] == uri
    assert started[0].lineage.get("trigger") == "new-data"
