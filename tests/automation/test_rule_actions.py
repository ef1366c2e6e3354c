"""The action table, the agent's handling of a delivery, and the action log (no servers:
the agent's invoke runner is replaced by a recorder, its queue by a Stubber)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.stub import Stubber
from rich.console import Console

from pipelines.automation.agent import Agent, as_aws_emits
from pipelines.automation.log import ActionLog
from pipelines.automation.rule_actions import ACTIONS, command_for, purpose_of, pytest_arguments
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.ui.automation_views import actions_table
from tests.automation.conftest import sample


def _approved(version: int = 3) -> dict:
    event = sample("model_package_state_change")
    event["detail"].update(
        ModelApprovalStatus="Approved",
        ModelPackageVersion=version,
        ModelPackageGroupName="mlops-local-models",
    )
    return event


def test_approval_deploys_that_version():
    arguments, why = command_for("approval_deploy", _approved(7))
    assert arguments == ["deploy", "--stage", "staging", "--version", "7"]
    assert why == "model package mlops-local-models/7 was Approved"


def test_new_data_runs_the_pipeline_on_that_object():
    event = sample("s3_object_created")
    event["detail"]["object"]["key"] = "datasets/incoming/july.csv"
    arguments, _ = command_for("new_data_retraining", event)
    assert arguments == [
        "pipeline-run",
        "--data",
        "s3://example-bucket/datasets/incoming/july.csv",
        "--no-wait",
    ]


def test_a_schedule_passes_its_target_parameters():
    arguments, why = command_for(
        "scheduled_retraining",
        {"detail-type": "Scheduled Event", "detail": {}},
        {"NEstimators": "50", "MinTestR2": "0.8"},
        {"expression": "rate(1 minute)", "rule": "r"},
    )
    assert arguments == [
        "pipeline-run",
        "--no-wait",
        "--param",
        "MinTestR2=0.8",
        "--param",
        "NEstimators=50",
    ]
    assert why == "schedule rate(1 minute) of rule r is due"


def test_an_event_without_the_needed_field_is_refused():
    event = _approved()
    del event["detail"]["ModelPackageVersion"]
    with pytest.raises(MlopsError, match="lacks 'version' for the approval_deploy action"):
        command_for("approval_deploy", event)


def test_rule_names_map_to_purposes():
    assert purpose_of("mlops-local-approval-deploy") == "approval_deploy"
    assert purpose_of("mlops-dev-new-data-retraining") == "new_data_retraining"
    assert {purpose_of(f"x-y-{p.replace('_', '-')}") for p in ACTIONS} == set(ACTIONS)
    with pytest.raises(MlopsError, match="No action is mapped"):
        purpose_of("mlops-local-execution-failed")


def test_test_tiers():
    assert pytest_arguments("fast") == ["-m", "'not server'", "-q"]
    with pytest.raises(MlopsError, match="Unknown test tier"):
        pytest_arguments("slow")


def test_the_emulators_copy_is_given_aws_time_format():
    event = {"time": 1796088828.9, "ingestion-time": 1796088829.0, "detail": {}}
    assert as_aws_emits(event) == {"time": "2026-12-01T01:33:48Z", "detail": {}}


@pytest.fixture
def agent(tmp_path: Path):
    connection = AwsConnection.for_emulator("https://127.0.0.1:9", tmp_path / "ca.pem", "us-east-1")
    ran: list[list[str]] = []

    def run_task(arguments: list[str]) -> tuple[int, str]:
        ran.append(arguments)
        return (0, "Version 3 serving\n") if arguments[0] == "deploy" else (1, "boom\nError: x")

    found = Agent(
        connection=connection,
        queue_url="https://127.0.0.1:9/123456789012/q",
        rule_prefix="mlops-local-",
        root=tmp_path,
        log=ActionLog(tmp_path),
        schedule_state=tmp_path / "schedules.json",
        run_task=run_task,
        say=lambda line: None,
    )
    found.ran = ran  # type: ignore[attr-defined]
    return found


def _message(body: dict, handle: str = "h1") -> dict:
    return {"MessageId": "m", "ReceiptHandle": handle, "Body": json.dumps(body)}


def test_a_delivery_runs_its_action_is_logged_then_deleted(agent):
    event = _approved(3)
    with Stubber(agent.sqs) as stub:
        stub.add_response(
            "delete_message", {}, {"QueueUrl": agent.queue_url, "ReceiptHandle": "h1"}
        )
        record = agent.handle(_message({"rule": "mlops-local-approval-deploy", "event": event}))
        stub.assert_no_pending_responses()
    assert agent.ran == [["deploy", "--stage", "staging", "--version", "3"]]
    assert record.outcome == "succeeded"
    assert record.exit_code == 0
    logged = agent.log.read()
    assert len(logged) == 1
    assert logged[0].event["detail"]["ModelPackageVersion"] == 3
    assert logged[0].command == ["invoke", "deploy", "--stage", "staging", "--version", "3"]
    assert "SQS copy" in logged[0].note


def test_a_failed_action_and_an_unreadable_message_are_logged_too(agent):
    event = sample("s3_object_created")
    with Stubber(agent.sqs) as stub:
        for handle in ("h1", "h2"):
            stub.add_response(
                "delete_message", {}, {"QueueUrl": agent.queue_url, "ReceiptHandle": handle}
            )
        agent.handle(_message({"rule": "mlops-local-new-data-retraining", "event": event}))
        agent.handle({"MessageId": "m", "ReceiptHandle": "h2", "Body": "not json"})
    failed, unreadable = agent.log.read()
    assert failed.outcome == "failed"
    assert failed.exit_code == 1
    assert failed.output.endswith("Error: x")
    assert unreadable.outcome == "skipped"
    assert "not a rule delivery" in unreadable.note
    console = Console(width=300, record=True)
    console.print(actions_table(agent.log.read()))
    text = console.export_text()
    assert "mlops-local-new-data-retraining" in text
    assert "new object s3://example-bucket/example-key" in text
    assert "failed (exit 1)" in text


def test_a_schedule_fires_once_per_period_from_its_rules_expression(agent):
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
            "PipelineParameterList": [{"Name": "NEstimators", "Value": "20"}]
        },
    }
    start = datetime(2026, 12, 1, 1, 0, 0, tzinfo=UTC)
    with Stubber(agent.events) as stub:
        for _ in range(3):
            stub.add_response("list_rules", {"Rules": [rule]}, {"NamePrefix": "mlops-local-"})
        stub.add_response("list_targets_by_rule", {"Targets": [target]}, {"Rule": rule["Name"]})
        assert agent.check_schedules(start) == []  # first sight: counting starts now
        assert agent.check_schedules(start.replace(second=59)) == []
        fired = agent.check_schedules(start.replace(minute=1))
    assert [r.purpose for r in fired] == ["scheduled_retraining"]
    assert fired[0].event["detail-type"] == "Scheduled Event"
    assert agent.ran == [["pipeline-run", "--no-wait", "--param", "NEstimators=20"]]
