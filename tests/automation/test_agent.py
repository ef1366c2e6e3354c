"""The agent's handling of deliveries, schedules and its children (no servers: its invoke
runner is replaced by a recorder, its queue and rules by Stubbers; the children in the
process tests are real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from botocore.stub import Stubber
from rich.console import Console

from pipelines.automation import agent as agent_module
from pipelines.automation.agent import ACTION_MARKER, Agent, execution_id_in
from pipelines.automation.log import ActionLog, ActionRecord
from pipelines.automation.rule_actions import Scope
from pipelines.core.aws import AwsConnection
from pipelines.ui.automation_views import actions_table
from tests.automation.conftest import sample

QUEUE = "https://127.0.0.1:9/123456789012/q"
SCOPE = Scope(
    rule_prefix="mlops-local-",
    group="mlops-local-models",
    bucket="example-bucket",
    dataset_prefix="datasets/incoming/",
)
APPROVAL_RULE = "mlops-local-approval-deploy"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlops-local-pipeline/execution/"


def _approved(version: int = 3, group: str = "mlops-local-models") -> dict:
    event = sample("model_package_state_change")
    event["id"] = f"approval-{version}-{group}"
    event["detail"].update(
        ModelApprovalStatus="Approved", ModelPackageVersion=version, ModelPackageGroupName=group
    )
    return event


def _new_data(key: str = "datasets/incoming/july.csv") -> dict:
    event = sample("s3_object_created")
    event["detail"]["object"]["key"] = key
    return event


class Recorder:
    """Stands in for `invoke`: records each command and answers as the test says."""

    def __init__(self) -> None:
        self.ran: list[list[str]] = []
        self.ticks = 0

    def __call__(self, arguments, marker, on_start, on_tick) -> tuple[int, str]:
        self.ran.append(arguments)
        on_start(4242)
        for _ in range(self.ticks):
            on_tick()
        if arguments[0] == "pipeline-run":
            return 0, f"Started {ARN}e1x2y3z4w5v6\nNot following it: `invoke execution-show`"
        return (0, "Version 3 serving\n") if arguments[0] == "deploy" else (1, "boom\nError: x")


def make_agent(tmp_path: Path, **overrides) -> Agent:
    connection = AwsConnection.for_emulator("https://127.0.0.1:9", tmp_path / "ca.pem", "us-east-1")
    values = {
        "connection": connection,
        "queue_url": QUEUE,
        "scope": SCOPE,
        "root": tmp_path,
        "log": ActionLog(tmp_path),
        "schedule_state": tmp_path / "schedules.json",
        "run_task": Recorder(),
        "newest_approved": lambda: 3,
        "say": lambda line: None,
        "started_at": 1000.0,
    }
    return Agent(**{**values, **overrides})


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    return make_agent(tmp_path)


def message(rule: str, event: dict, handle: str = "h1", sent: float = 2000.0) -> dict:
    return {
        "MessageId": "m",
        "ReceiptHandle": handle,
        "Body": json.dumps({"rule": rule, "event": event}),
        "Attributes": {"SentTimestamp": str(int(sent * 1000))},
    }


def deliver(agent: Agent, *messages: dict) -> list[ActionRecord]:
    """Handle each message; each is deleted once handled, and nothing else is asked."""
    with Stubber(agent.sqs) as stub:
        for each in messages:
            stub.add_response(
                "delete_message", {}, {"QueueUrl": QUEUE, "ReceiptHandle": each["ReceiptHandle"]}
            )
        done = [agent.handle(each) for each in messages]
        stub.assert_no_pending_responses()
    return done


def test_a_delivery_runs_its_action_is_logged_then_deleted(agent):
    (record,) = deliver(agent, message(APPROVAL_RULE, _approved(3)))
    assert agent.run_task.ran == [["deploy", "--stage", "staging", "--version", "3"]]
    assert (record.outcome, record.exit_code, record.key) == (
        "succeeded",
        0,
        f"{APPROVAL_RULE}/approval-3-mlops-local-models",
    )
    (logged,) = agent.log.read()
    assert logged.event["detail"]["ModelPackageVersion"] == 3
    assert logged.command == ["invoke", "deploy", "--stage", "staging", "--version", "3"]
    assert "SQS copy" in logged.note


@pytest.mark.parametrize(
    ("rule", "event", "why"),
    [
        ("evil-mlops-local-approval-deploy", _approved(), "is not one of this stack's rules"),
        ("mlops-dev-approval-deploy", _approved(), "is not one of this stack's rules"),
        (APPROVAL_RULE, _approved(group="another-models"), "group 'another-models'"),
        ("mlops-local-new-data-retraining", _new_data("datasets/other/x.csv"), "is not a file"),
        ("mlops-local-scheduled-retraining", {"id": "s"}, "evaluated by the agent itself"),
    ],
)
def test_a_delivery_not_for_this_stack_is_logged_as_ignored_and_nothing_runs(
    agent, rule, event, why
):
    (record,) = deliver(agent, message(rule, event))
    assert agent.run_task.ran == []
    assert record.outcome == "ignored"
    assert why in record.note


def test_an_event_is_never_acted_on_twice(agent):
    _, again = deliver(
        agent, message(APPROVAL_RULE, _approved(3)), message(APPROVAL_RULE, _approved(3), "h2")
    )
    assert agent.run_task.ran == [["deploy", "--stage", "staging", "--version", "3"]]
    assert again.outcome == "skipped"
    assert "already handled (succeeded)" in again.note
    # A new agent (after a restart) knows it from the log.
    restarted = make_agent(agent.root, run_task=Recorder())
    (third,) = deliver(restarted, message(APPROVAL_RULE, _approved(3), "h3"))
    assert restarted.run_task.ran == []
    assert third.outcome == "skipped"


def test_an_older_approval_never_moves_staging_backwards(tmp_path):
    agent = make_agent(tmp_path, newest_approved=lambda: 18)
    old, _ = deliver(
        agent, message(APPROVAL_RULE, _approved(14)), message(APPROVAL_RULE, _approved(18), "h2")
    )
    assert agent.run_task.ran == [["deploy", "--stage", "staging", "--version", "18"]]
    assert old.outcome == "skipped"
    assert "not the newest Approved version (the newest is 18)" in old.note
    agent.newest_approved = lambda: None
    (late,) = deliver(agent, message(APPROVAL_RULE, _approved(19), "h3"))
    assert late.outcome == "skipped"
    assert "no longer Approved" in late.note


def test_events_queued_before_the_agent_started_need_replay(tmp_path):
    waiting = message(APPROVAL_RULE, _approved(3), sent=999.0)
    agent = make_agent(tmp_path)
    (record,) = deliver(agent, waiting)
    assert agent.run_task.ran == []
    assert record.outcome == "skipped"
    assert "queued before the agent started" in record.note
    assert "--replay" in record.note

    replaying = make_agent(tmp_path / "replay", replay=True)
    (tmp_path / "replay").mkdir(exist_ok=True)
    (record,) = deliver(replaying, waiting)
    assert replaying.run_task.ran == [["deploy", "--stage", "staging", "--version", "3"]]
    assert record.outcome == "succeeded"


def test_the_message_stays_invisible_while_its_action_runs(agent):
    agent.run_task.ticks = 2
    agent.extend_every = 0
    with Stubber(agent.sqs) as stub:
        for _ in range(2):
            stub.add_response(
                "change_message_visibility",
                {},
                {"QueueUrl": QUEUE, "ReceiptHandle": "h1", "VisibilityTimeout": 300},
            )
        stub.add_response("delete_message", {}, {"QueueUrl": QUEUE, "ReceiptHandle": "h1"})
        agent.handle(message(APPROVAL_RULE, _approved(3)))
        stub.assert_no_pending_responses()


def test_a_run_it_starts_is_followed_to_its_end_and_logged_with_its_id(tmp_path):
    seen = {"status": "Executing"}
    agent = make_agent(
        tmp_path,
        describe_run=lambda execution_id: (seen["status"], "Step TrainModel failed: boom"),
    )
    (started,) = deliver(agent, message("mlops-local-new-data-retraining", _new_data()))
    assert agent.run_task.ran == [
        [
            "pipeline-run",
            "--trigger",
            "new-data",
            "--data",
            "s3://example-bucket/datasets/incoming/july.csv",
            "--no-wait",
        ]
    ]
    assert (started.outcome, started.execution_id) == ("running", "e1x2y3z4w5v6")
    assert agent.follow_runs() == []  # still Executing
    seen["status"] = "Failed"
    (ended,) = agent.follow_runs()
    assert (ended.outcome, ended.run_status) == ("failed", "Failed")
    assert agent.follow_runs() == []
    (logged,) = agent.log.read()  # one action, as its latest line says
    assert (logged.execution_id, logged.run_status) == ("e1x2y3z4w5v6", "Failed")
    console = Console(width=300, record=True)
    console.print(actions_table(agent.log.read()))
    text = console.export_text()
    assert "e1x2y3z4w5v6" in text
    assert "Failed" in text
    assert "Step TrainModel failed: boom" in text


def test_runs_being_followed_are_followed_again_after_a_restart(tmp_path):
    agent = make_agent(tmp_path)
    deliver(agent, message("mlops-local-new-data-retraining", _new_data()))
    restarted = make_agent(tmp_path, describe_run=lambda execution_id: ("Succeeded", None))
    (ended,) = restarted.follow_runs()
    assert (ended.execution_id, ended.outcome, ended.run_status) == (
        "e1x2y3z4w5v6",
        "succeeded",
        "Succeeded",
    )


def test_the_execution_id_is_read_from_the_arn_or_the_hint():
    assert execution_id_in(f"x {ARN}abc123def456 y") == "abc123def456"
    assert execution_id_in("`invoke execution-show --execution q1w2e3r4t5y6` shows") == (
        "q1w2e3r4t5y6"
    )
    assert execution_id_in("nothing here") is None


def test_a_failed_action_and_an_unreadable_message_are_logged_too(agent):
    agent.run_task = lambda arguments, marker, on_start, on_tick: (1, "boom\nError: x")
    failed, unreadable = deliver(
        agent,
        message(APPROVAL_RULE, _approved(3), "h1"),
        {"MessageId": "m", "ReceiptHandle": "h2", "Body": "not json"},
    )
    assert (failed.outcome, failed.exit_code) == ("failed", 1)
    assert failed.output.endswith("Error: x")
    assert unreadable.outcome == "ignored"
    assert "Expecting value" in unreadable.note
    console = Console(width=300, record=True)
    console.print(actions_table(agent.log.read()))
    text = console.export_text()
    assert "failed (exit 1)" in text
    assert "Error: x" in text


def test_a_schedule_fires_once_per_period_with_allow_listed_parameters(agent):
    rule = {
        "Name": "mlops-local-scheduled-retraining",
        "Arn": "arn:aws:events:us-east-1:123456789012:rule/mlops-local-scheduled-retraining",
        "ScheduleExpression": "rate(1 minute)",
        "State": "ENABLED",
    }
    target = {
        "Id": "start-pipeline",
        "Arn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlops-local-pipeline",
        "SageMakerPipelineParameters": {
            "PipelineParameterList": [
                {"Name": "NEstimators", "Value": "20"},
                {"Name": "ModelApprovalStatus", "Value": "Approved"},
                {"Name": "InputDataUrl", "Value": "/etc/passwd"},
            ]
        },
    }
    start = datetime(2026, 12, 1, 1, 0, 0, tzinfo=UTC)
    with Stubber(agent.events) as stub:
        for _ in range(3):
            stub.add_response(
                "list_rules", {"Rules": [rule]}, {"NamePrefix": "mlops-local-scheduled-retraining"}
            )
        stub.add_response("list_targets_by_rule", {"Targets": [target]}, {"Rule": rule["Name"]})
        assert agent.check_schedules(start) == []  # first sight: counting starts now
        assert agent.check_schedules(start.replace(second=59)) == []
        (fired,) = agent.check_schedules(start.replace(minute=1))
    assert fired.purpose == "scheduled_retraining"
    assert fired.event["detail-type"] == "Scheduled Event"
    assert agent.run_task.ran == [
        ["pipeline-run", "--trigger", "schedule", "--no-wait", "--param", "NEstimators=20"]
    ]
    assert "dropped parameter ModelApprovalStatus" in fired.note
    assert "dropped parameter InputDataUrl" in fired.note


# --- the children: real processes ------------------------------------------------------------

SLEEPER = "import time; print('child', flush=True); time.sleep(120)"


def _carrying(marker: str) -> list[int]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(ACTION_MARKER) == marker and process.status() != "zombie":
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def _wait_until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def test_a_stopped_agent_stops_its_running_child_and_logs_it_interrupted(tmp_path, monkeypatch):
    monkeypatch.setattr(agent_module, "invoke_command", lambda: [sys.executable, "-c", SLEEPER])
    agent = make_agent(tmp_path, run_task=None)
    pids: list[int] = []
    original = agent._update

    def update(record, **changes):
        if changes.get("pgid"):
            pids.append(changes["pgid"])
            agent.stopping = True  # SIGTERM arrives while the child runs
        return original(record, **changes)

    agent._update = update
    (record,) = deliver(agent, message(APPROVAL_RULE, _approved(3)))
    assert record.outcome == "interrupted"
    assert record.exit_code == -signal.SIGTERM
    assert not psutil.pid_exists(pids[0]) or psutil.Process(pids[0]).status() == "zombie"
    assert _carrying(record.id) == []


def test_a_killed_agents_child_dies_with_it_and_the_next_agent_does_not_repeat_it(tmp_path):
    """kill -9 of the agent mid-action: its child gets SIGTERM from the kernel; the next
    agent logs the action as interrupted, makes its message visible, and never re-runs it."""
    marker = "action-under-test"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time\n"
            "from pipelines.automation.agent import _die_with_parent\n"
            "child = subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
            "start_new_session=True, preexec_fn=_die_with_parent)\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(120)\n",
            SLEEPER,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, ACTION_MARKER: marker},
        cwd=Path(__file__).resolve().parents[2],
    )
    child = int(parent.stdout.readline())
    log = ActionLog(tmp_path)
    log.append(
        ActionRecord(
            time.time(),
            APPROVAL_RULE,
            "approval_deploy",
            "v3 approved",
            ["invoke", "deploy"],
            "started",
            None,
            0.0,
            _approved(3),
            id=marker,
            key=f"{APPROVAL_RULE}/approval-3-mlops-local-models",
            pgid=child,
            receipt="h-old",
        )
    )
    parent.kill()
    parent.wait()
    _wait_until(lambda: not _carrying(marker))

    agent = make_agent(tmp_path)
    with Stubber(agent.sqs) as stub:
        stub.add_response(
            "change_message_visibility",
            {},
            {"QueueUrl": QUEUE, "ReceiptHandle": "h-old", "VisibilityTimeout": 0},
        )
        (interrupted,) = agent.recover()
    assert interrupted.outcome == "interrupted"
    (redelivered,) = deliver(agent, message(APPROVAL_RULE, _approved(3), "h-new"))
    assert redelivered.outcome == "skipped"
    assert agent.run_task.ran == []


def test_the_next_agent_stops_what_a_cut_short_action_left_running(tmp_path):
    """Where the kernel's parent-death signal did not reach (a grandchild in the group)."""
    marker = "left-running"
    orphan = subprocess.Popen(
        [sys.executable, "-c", SLEEPER],
        start_new_session=True,
        env={**os.environ, ACTION_MARKER: marker},
        stdout=subprocess.DEVNULL,
    )
    ActionLog(tmp_path).append(
        ActionRecord(
            time.time(),
            APPROVAL_RULE,
            "approval_deploy",
            "v3 approved",
            ["invoke", "deploy"],
            "started",
            None,
            0.0,
            _approved(3),
            id=marker,
            key=f"{APPROVAL_RULE}/approval-3-mlops-local-models",
            pgid=orphan.pid,
        )
    )
    (interrupted,) = make_agent(tmp_path).recover()
    orphan.wait(timeout=30)  # the agent reaped it already (it is this test's child)
    assert _carrying(marker) == []
    assert f"stopped its processes [{orphan.pid}]" in interrupted.note


# --- automation-up ------------------------------------------------------------------------


class FakeProcess:
    """The agent's process, recording how it was started."""

    replays: list[bool] = []  # noqa: RUF012 - reset by each test

    def __init__(self, settings) -> None:
        pass

    def status(self):
        from pipelines.automation.agent import AgentStatus

        return AgentStatus(False, None, "not running")

    def start(self, replay: bool = False):
        from pipelines.automation.agent import AgentStatus

        FakeProcess.replays.append(replay)
        return AgentStatus(True, 1, "running (pid 1)"), True


@pytest.mark.parametrize(("answer", "says"), [(True, "acting on them"), (False, "logs and skips")])
def test_automation_up_asks_at_a_terminal_before_acting_on_queued_events(monkeypatch, answer, says):
    from pipelines.actions import automation
    from pipelines.ui.automation_views import start_summary

    FakeProcess.replays = []
    asked: list[int] = []
    monkeypatch.setattr(automation, "AgentProcess", FakeProcess)
    monkeypatch.setattr(automation, "queued_events", lambda settings: 3)
    start = automation.agent_up(None, False, lambda n: asked.append(n) or answer)
    assert asked == [3]
    assert FakeProcess.replays == [answer]
    assert says in str(start_summary(start.status.detail, start.started, 3, start.replay))
    # No terminal: nobody is asked, and nothing queued is acted on.
    automation.agent_up(None, False, None)
    assert FakeProcess.replays == [answer, False]
