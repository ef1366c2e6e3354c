"""The local automation agent on the applied local stack: the same EventBridge rules as
AWS fire on the emulator, and the agent runs the invoke tasks they map to.

One agent for the module; the tests run in order (approval, stopped agent, a kill
mid-action, commit, schedule) and each waits for what a user would see: the endpoint's
version, the action log, a new execution.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
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


def records(local_stack: LocalStack, purpose: str, done: bool = True) -> list[ActionRecord]:
    """The agent's actions for ``purpose``; ``done``: only those that have ended (a run it
    started included)."""
    log = ActionLog(automation_dir(local_stack.settings))
    return [
        r
        for r in log.read()
        if r.purpose == purpose and (not done or r.outcome not in ("started", "running"))
    ]


def group_members(pgid: int) -> list[int]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return found


def serving_version(local_stack: LocalStack) -> int | None:
    endpoint = deploy.local_endpoint(
        local_stack.settings, local_stack.stack.connection, local_stack.config, stage="staging"
    )
    return endpoint.status().version


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
    # Markup in a reason is shown as written everywhere (it crashed models and model-approve).
    reason = "e2e [/dim] [/bold] [red]x"
    approved = local_stack.invoke("model-approve", "--version", str(version), "--reason", reason)
    assert approved.returncode == 0, approved.stderr
    assert reason in approved.stdout
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
    listed = local_stack.invoke("models")
    assert listed.returncode == 0, listed.stderr
    assert reason in listed.stdout


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

    agent.start(replay=True)  # queued while no agent ran: acted on only when asked
    (record,) = wait_for(
        "the queued upload acted on, its run followed to the end",
        lambda: records(local_stack, "new_data_retraining"),
        timeout=300,
    )
    assert record.outcome == "succeeded", record.output
    assert record.run_status == "Succeeded"
    assert local_stack.backend.describe(record.execution_id).status == "Succeeded"
    uri = f"s3://{local_stack.config.bucket_name}/{key}"
    assert record.command == [
        "invoke",
        "pipeline-run",
        "--trigger",
        "new-data",
        "--data",
        uri,
        "--no-wait",
    ]
    assert execution_count(local_stack) == before + 1
    assert queued(local_stack) == 0


def test_events_queued_before_the_agent_started_are_skipped_without_replay(local_stack, agent):
    assert agent.stop()
    before = execution_count(local_stack)
    key = "datasets/incoming/stale.csv"
    local_stack.stack.connection.client("s3").put_object(
        Bucket=local_stack.config.bucket_name, Key=key, Body=SAMPLE_DATA.read_bytes()
    )
    wait_for("the upload queued", lambda: queued(local_stack) == 1, timeout=30)
    started = local_stack.invoke("automation-up")  # no terminal: no question asked
    assert started.returncode == 0, started.stderr
    assert "1 queued event(s): the agent logs and skips them" in started.stdout
    (record,) = wait_for(
        "the stale upload logged",
        lambda: [
            r
            for r in records(local_stack, "", done=False)
            if key in str(r.event.get("detail", {}).get("object", {}).get("key"))
        ],
        timeout=60,
    )
    assert record.outcome == "skipped"
    assert "queued before the agent started" in record.note
    assert queued(local_stack) == 0
    assert execution_count(local_stack) == before


def test_an_agent_killed_mid_action_leaves_no_child_and_never_moves_staging_back(
    local_stack, agent
):
    """Issue 28, item 6: kill -9 of the agent while `invoke deploy` runs; then an older
    version approved again while it is down; restarted with --replay."""
    older = serving_version(local_stack)
    assert older is not None  # the first test deployed it
    execution = local_stack.run()
    assert execution.status == "Succeeded", execution.failure_reason
    newest = int(local_stack.model_packages()[-1].rsplit("/", 1)[-1])
    assert newest > older
    assert local_stack.invoke("model-approve", "--version", str(newest)).returncode == 0
    log = ActionLog(automation_dir(local_stack.settings))

    def deploying() -> ActionRecord | None:
        for r in log.read():
            if r.outcome == "started" and r.pgid and r.command[-1] == str(newest):
                return r
        return None

    acting = wait_for(f"the deploy of version {newest} started", deploying, timeout=120)
    os.kill(agent.status().pid, signal.SIGKILL)

    approved_again = local_stack.invoke("model-approve", "--version", str(older))
    assert approved_again.returncode == 0, approved_again.stderr
    agent.start(replay=True)

    def logged_after_the_kill() -> list[ActionRecord] | None:
        # The deploy (interrupted), its redelivered message, the older approval.
        found = [r for r in records(local_stack, "approval_deploy") if r.at >= acting.at]
        return found if len(found) >= 3 else None

    found = wait_for("the restarted agent's decisions", logged_after_the_kill, timeout=120)
    (interrupted,) = [r for r in found if r.id == acting.id]
    assert interrupted.outcome == "interrupted"
    assert "it is not run again" in interrupted.note
    notes = [r.note for r in found if r.outcome == "skipped"]
    assert any(note.startswith("already handled (interrupted)") for note in notes), notes
    assert any(note.startswith(f"version {older} is not the newest") for note in notes), notes
    assert not [r for r in found if r.outcome in ("succeeded", "started")]
    # No orphan: the kernel stopped the deploy with the agent (its parent-death signal),
    # and the restarted agent stopped whatever of its process group was left.
    assert group_members(acting.pgid) == []
    # Staging never went back: it serves the version it served, or the newest.
    assert serving_version(local_stack) in (older, newest)
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
        "the commit's run followed to its end",
        lambda: records(local_stack, "commit_build"),
        timeout=300,
    )
    assert record.outcome == "succeeded", record.output
    assert record.event["detail-type"] == "CodeCommit Repository State Change"
    assert record.event["detail"]["referenceName"] == "main"
    assert execution_count(local_stack) == before + 1


def test_a_rate_1_minute_schedule_starts_a_run_followed_to_its_failure(local_stack, agent):
    """Issue 29, item 2: the run a schedule starts fails at the quality gate; the log says
    Failed, with its execution id. Its parameters are allow-listed: an approval status and
    a local path are dropped (issue 27, item 4)."""
    events = local_stack.stack.connection.client("events")
    name = "mlops-local-scheduled-retraining"
    config = local_stack.config
    # What `retraining_schedule = { expression = "rate(1 minute)", parameters = {...} }`
    # applies.
    events.put_rule(Name=name, ScheduleExpression="rate(1 minute)", State="ENABLED")
    parameters = {
        "MinTestR2": "0.999",
        "ModelApprovalStatus": "Approved",
        "InputDataUrl": str(SAMPLE_DATA),
    }
    events.put_targets(
        Rule=name,
        Targets=[
            {
                "Id": "start-pipeline",
                "Arn": f"arn:aws:sagemaker:{config.region}:{config.account_id}:pipeline/"
                f"{config.pipeline_name}",
                "RoleArn": config.execution_role_arn,
                "SageMakerPipelineParameters": {
                    "PipelineParameterList": [
                        {"Name": k, "Value": v} for k, v in parameters.items()
                    ]
                },
            }
        ],
    )
    try:
        (record,) = wait_for(
            "the scheduled run followed to its end",
            lambda: records(local_stack, "scheduled_retraining"),
            timeout=400,
        )
    finally:
        events.remove_targets(Rule=name, Ids=["start-pipeline"])
        events.put_rule(Name=name, ScheduleExpression="rate(7 days)", State="ENABLED")
    assert record.why == f"schedule rate(1 minute) of rule {name} is due"
    assert record.command == [
        "invoke",
        "pipeline-run",
        "--trigger",
        "schedule",
        "--no-wait",
        "--param",
        "MinTestR2=0.999",
    ]
    assert "dropped parameter ModelApprovalStatus" in record.note
    assert "dropped parameter InputDataUrl" in record.note
    assert (record.outcome, record.run_status) == ("failed", "Failed")
    assert local_stack.backend.describe(record.execution_id).status == "Failed"
    shown = local_stack.invoke("automation-log")
    assert record.execution_id in shown.stdout
    assert "Failed" in shown.stdout
