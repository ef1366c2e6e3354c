"""The events SageMaker emits, emitted locally when SageMaker would emit them (issue 26,
item 7), delivered by the emulator's EventBridge through rules with AWS's patterns.

AWS's developer guide ("Automating Amazon SageMaker with Amazon EventBridge"): "SageMaker
Model Building Pipeline Execution Status Change" on each change of an execution's status,
with ``currentPipelineExecutionStatus`` and ``previousPipelineExecutionStatus``; "SageMaker
Model Package State Change" for a model package, at creation too (so a version
registered Approved fires the approval rule). Samples: tests/automation/samples/."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

import psutil
import pytest

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.core.aws import AwsConnection
from pipelines.events.shapes import MODEL_PACKAGE_STATE_CHANGE, PIPELINE_EXECUTION_STATUS_CHANGE
from pipelines.registry import APPROVED, Registry
from tests.automation.conftest import sample
from tests.executor.test_local_backend import definition, processing


class Inbox:
    """An SQS queue behind an EventBridge rule with ``pattern``."""

    def __init__(self, connection: AwsConnection, pattern: dict[str, Any]) -> None:
        self.name = f"emitted-{uuid.uuid4().hex[:8]}"
        self.sqs = connection.client("sqs")
        self.events = connection.client("events")
        self.url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.events.put_rule(Name=self.name, EventPattern=json.dumps(pattern))
        self.events.put_targets(Rule=self.name, Targets=[{"Id": "q", "Arn": arn}])

    def take(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        """The next ``count`` events, in the order they were sent."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            answer = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in answer.get("Messages", []):
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def close(self) -> None:
        self.events.remove_targets(Rule=self.name, Ids=["q"])
        self.events.delete_rule(Name=self.name)
        self.sqs.delete_queue(QueueUrl=self.url)


@pytest.fixture
def backend(tmp_path, emulator_connection, runtime_cache) -> LocalBackend:
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="executor-tests")
    settings = Settings(
        root=tmp_path, state_dir=tmp_path / ".mlops", runtime_cache_dir=runtime_cache
    )
    return LocalBackend(settings, emulator_connection)


@pytest.fixture
def pipeline(emulator_connection):
    """A pipeline name of its own and an inbox for its execution events."""
    name = f"events-{uuid.uuid4().hex[:8]}"
    inbox = Inbox(
        emulator_connection,
        {
            "source": ["aws.sagemaker"],
            "detail-type": [PIPELINE_EXECUTION_STATUS_CHANGE],
            "detail": {
                "pipelineArn": [f"arn:aws:sagemaker:us-east-1:123456789012:pipeline/{name}"]
            },
        },
    )
    yield name, inbox
    inbox.close()


def changes(events: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [
        (
            e["detail"].get("previousPipelineExecutionStatus"),
            e["detail"]["currentPipelineExecutionStatus"],
        )
        for e in events
    ]


FAIL = {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "no"}}
PASS = {
    "Name": "Check",
    "Type": "Condition",
    "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}],
        "IfSteps": [],
        "ElseSteps": [],
    },
}


def test_each_execution_status_change_with_its_real_previous_status(backend, pipeline):
    """Compared as sets of changes: SQS (and EventBridge on AWS) do not promise to deliver
    in order, and the queue read here is a standard one."""
    name, inbox = pipeline
    succeeded = backend.start_definition(name, definition(PASS), {})
    assert backend.wait(succeeded.execution_id, timeout=120).status == "Succeeded"
    assert sorted(changes(inbox.take(2)), key=str) == sorted(
        [(None, "Executing"), ("Executing", "Succeeded")], key=str
    )

    failed = backend.start_definition(name, definition(FAIL), {})
    assert backend.wait(failed.execution_id, timeout=120).status == "Failed"
    backend.retry(failed.execution_id)
    backend.wait(failed.execution_id, timeout=120)
    events = inbox.take(4)
    assert sorted(changes(events), key=str) == sorted(
        [
            (None, "Executing"),
            ("Executing", "Failed"),
            ("Failed", "Executing"),
            ("Executing", "Failed"),
        ],
        key=str,
    )
    # AWS's sample, field for field (SomeDisplayName/SomeDescription aside).
    expected = sample("pipeline_execution_status_change")
    first_failure = next(e for e in events if changes([e]) == [("Executing", "Failed")])
    assert list(first_failure) == list(expected)
    assert set(first_failure["detail"]) == set(expected["detail"]) - {
        "pipelineExecutionDescription"
    }
    assert first_failure["detail"]["pipelineExecutionArn"] == failed.execution_arn
    started = next(e for e in events if changes([e]) == [(None, "Executing")])
    assert "executionEndTime" not in started["detail"]


def test_a_stop_is_stopping_then_stopped(backend, pipeline):
    name, inbox = pipeline
    text = definition(processing("Slow", "import time; print('go', flush=True); time.sleep(60)"))
    execution = backend.start_definition(name, text, {})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        "time.sleep(60)" in " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["cmdline"])
    ):
        time.sleep(0.1)
    backend.stop(execution.execution_id)
    assert backend.wait(execution.execution_id, timeout=60).status == "Stopped"
    assert sorted(changes(inbox.take(3)), key=str) == sorted(
        [(None, "Executing"), ("Executing", "Stopping"), ("Stopping", "Stopped")], key=str
    )


def test_a_version_registered_approved_fires_the_approval_rule(
    backend, emulator_connection, pipeline
):
    """The approval rule's own pattern (infra/modules/automation): a version registered
    with ModelApprovalStatus=Approved is delivered at once; one registered pending is
    delivered when it is approved."""
    name, _ = pipeline
    group = f"group-{uuid.uuid4().hex[:8]}"
    sagemaker = emulator_connection.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    approvals = Inbox(
        emulator_connection,
        {
            "source": ["aws.sagemaker"],
            "detail-type": [MODEL_PACKAGE_STATE_CHANGE],
            "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]},
        },
    )
    try:

        def register(status: str) -> dict:
            return {
                "Name": f"Register{status}",
                "Type": "RegisterModel",
                "Arguments": {
                    "ModelPackageGroupName": group,
                    "ModelApprovalStatus": status,
                    "InferenceSpecification": {
                        "Containers": [{"Image": "example/sklearn:1", "ModelDataUrl": "s3://b/m"}],
                        "SupportedContentTypes": ["text/csv"],
                        "SupportedResponseMIMETypes": ["text/csv"],
                    },
                },
            }

        run = backend.start_definition(name, definition(register("Approved")), {})
        assert backend.wait(run.execution_id, timeout=120).status == "Succeeded"
        (registered,) = approvals.take(1)
        assert registered["detail"]["ModelApprovalStatus"] == "Approved"
        assert registered["detail"]["ModelPackageVersion"] == 1
        assert list(registered) == list(sample("model_package_state_change"))

        run = backend.start_definition(name, definition(register("PendingManualApproval")), {})
        assert backend.wait(run.execution_id, timeout=120).status == "Succeeded"
        assert approvals.take(1, timeout=3) == []  # registered, not approved: no match
        Registry(emulator_connection, group).set_status(2, APPROVED, "ok", "tests")
        (approved,) = approvals.take(1)
        assert approved["detail"]["ModelPackageVersion"] == 2
        assert approved["detail"]["ApprovalDescription"].startswith("approved by tests")
    finally:
        approvals.close()
        Registry(emulator_connection, group).delete_all()
        sagemaker.delete_model_package_group(ModelPackageGroupName=group)
