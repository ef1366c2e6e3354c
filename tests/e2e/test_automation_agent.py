"""The local automation agent on the applied local stack: the same EventBridge rules as
AWS fire on the emulator, and the agent runs the invoke tasks they map to.

One agent for the module; the tests run in order (approval, stopped agent, commit,
schedule) and each waits for what a user would see: the endpoint's version, the action
log, a new execution.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipelines.automation.agent import AgentProcess, automation_dir
from pipelines.automation.git_hook import install
from pipelines.automation.log import ActionLog, ActionRecord
from pipelines.backends.local import LocalBackend
from pipelines.config.settings import PROJECT_ROOT
from pipelines.launch.datasets import SAMPLE_DATA
from pipelines.serving import deploy
from pipelines.teardown import stop_running_executions
from tests.e2e.conftest import LocalStack
from tests.support import project_copy

pytestmark = pytest.mark.e2e


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"Not within {timeout:.0f} s: {what}")


@pytest.fixture(scope="module")
def agent(local_stack: LocalStack) -> Iterator[AgentProcess]:
    settings = local_stack.settings
    # Approvals by earlier test modules wait in the queue (as they should); these tests
    # start from an empty queue so each one sees only its own events.
    sqs = local_stack.stack.connection.client("sqs")
    sqs.purge_queue(QueueUrl=local_stack.config.automation_queue_url)
    process = AgentProcess(settings)
    process.start()
    try:
        yield process
    finally:
        process.stop()
        # What the approval deployed: later modules expect only their own endpoints.
        deploy.local_endpoint(
            settings, local_stack.stack.connection, local_stack.config, stage="staging"
        ).down()
        stop_running_executions(
            LocalBackend(local_stack.settings, local_stack.stack.connection), local_stack.config
        )


def records(local_stack: LocalStack, purpose: str) -> list[ActionRecord]:
    log = ActionLog(automation_dir(local_stack.settings))
    return [r for r in log.read() if r.purpose == purpose]


def queued(local_stack: LocalStack) -> int:
    sqs = local_stack.stack.connection.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=local_stack.config.automation_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def execution_count(local_stack: LocalStack) -> int:
    return len(local_stack.backend.list_executions(limit=1000))


def test_approving_a_version_deploys_it_with_no_further_command(local_stack, agent):
    execution = local_stack.run()
    assert execution.status == "Succeeded", execution.failure_reason
    version = int(local_stack.model_packages()[-1].rsplit("/", 1)[-1])
    approved = local_stack.invoke("model-approve", "--version", str(version), "--reason", "e2e")
    assert approved.returncode == 0, approved.stderr
    endpoint = deploy.local_endpoint(
        local_stack.settings, local_stack.stack.connection, local_stack.config, stage="staging"
    )

    def serving() -> bool:
        status = endpoint.status()
        return bool(status.package_arn) and status.package_arn.endswith(f"/{version}")

    wait_for(f"version {version} served", serving, timeout=300)
    # The action is logged when `invoke deploy` exits, a moment after it serves.
    (record,) = wait_for(
        "the deploy logged", lambda: records(local_stack, "approval_deploy"), timeout=60
    )
    assert record.outcome == "succeeded"
    assert record.command == ["invoke", "deploy", "--stage", "staging", "--version", str(version)]
    assert record.event["detail-type"] == "SageMaker Model Package State Change"
    assert record.event["detail"]["ModelApprovalStatus"] == "Approved"
    shown = local_stack.invoke("automation-log")
    assert "mlops-local-approval-deploy" in shown.stdout
    assert f"model package mlops-local-models/{version} was Approved" in shown.stdout


def test_with_the_agent_stopped_events_wait_in_the_queue_and_run_at_restart(local_stack, agent):
    assert agent.stop()
    status = local_stack.invoke("automation-status")
    assert status.returncode == 3
    before = execution_count(local_stack)
    key = "datasets/incoming/boston_housing.csv"
    local_stack.stack.connection.client("s3").put_object(
        Bucket=local_stack.config.bucket_name, Key=key, Body=SAMPLE_DATA.read_bytes()
    )
    time.sleep(5)  # nothing consumes it meanwhile
    assert queued(local_stack) == 1
    assert records(local_stack, "new_data_retraining") == []
    assert execution_count(local_stack) == before

    agent.start()
    (record,) = wait_for(
        "the queued upload acted on",
        lambda: records(local_stack, "new_data_retraining"),
        timeout=300,
    )
    assert record.outcome == "succeeded", record.output
    uri = f"s3://{local_stack.config.bucket_name}/{key}"
    assert record.command == ["invoke", "pipeline-run", "--data", uri, "--no-wait"]
    assert execution_count(local_stack) == before + 1
    assert queued(local_stack) == 0


def test_a_commit_with_the_installed_hook_starts_a_pipeline_run(local_stack, agent, tmp_path):
    checkout = project_copy(tmp_path)
    (checkout / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    (checkout / "invoke.yaml").write_text((PROJECT_ROOT / "invoke.yaml").read_text())
    env = {
        **os.environ,
        "MLOPS_STATE_DIR": str(local_stack.settings.state_dir),
        "MLOPS_EMULATOR_PORT": str(local_stack.settings.emulator_port),
        "GIT_AUTHOR_NAME": "e2e",
        "GIT_AUTHOR_EMAIL": "e2e@example.com",
        "GIT_COMMITTER_NAME": "e2e",
        "GIT_COMMITTER_EMAIL": "e2e@example.com",
    }
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=checkout, check=True, env=env)
    install(checkout)
    before = execution_count(local_stack)
    committed = subprocess.run(
        ["git", "commit", "-q", "--allow-empty", "-m", "retrain"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "automation: sent referenceCreated of main" in committed.stdout + committed.stderr
    (record,) = wait_for(
        "the commit acted on", lambda: records(local_stack, "commit_build"), timeout=300
    )
    assert record.outcome == "succeeded", record.output
    assert record.event["detail-type"] == "CodeCommit Repository State Change"
    assert record.event["detail"]["referenceName"] == "main"
    assert execution_count(local_stack) == before + 1


def test_a_rate_1_minute_schedule_starts_a_run(local_stack, agent):
    events = local_stack.stack.connection.client("events")
    name = "mlops-local-scheduled-retraining"
    # What `retraining_schedule = { expression = "rate(1 minute)" }` applies.
    events.put_rule(Name=name, ScheduleExpression="rate(1 minute)", State="ENABLED")
    try:
        (record,) = wait_for(
            "the schedule fired", lambda: records(local_stack, "scheduled_retraining"), timeout=180
        )
    finally:
        events.put_rule(Name=name, ScheduleExpression="rate(7 days)", State="ENABLED")
    assert record.outcome == "succeeded", record.output
    assert record.why == f"schedule rate(1 minute) of rule {name} is due"
    assert record.command[:3] == ["invoke", "pipeline-run", "--no-wait"]
