"""The events the project emits have AWS's exact shape: built from the same inputs as
AWS's documented samples, they equal those samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pipelines.events import shapes as events
from tests.automation.conftest import sample


def _without_id(event: dict) -> dict:
    return {key: value for key, value in event.items() if key != "id"}


def test_model_package_event_equals_aws_sample():
    expected = sample("model_package_state_change")
    described = dict(expected["detail"])
    # DescribeModelPackage returns datetimes; the event carries AWS's time format.
    described["CreationTime"] = datetime(2021, 2, 24, 17, 0, 14, tzinfo=UTC)
    described["LastModifiedTime"] = datetime(2021, 2, 24, 17, 0, 14, tzinfo=UTC)
    described["ModelPackageName"] = None  # absent fields stay absent
    built = events.model_package_state_change(
        described, time=datetime(2021, 2, 24, 17, 0, 14, tzinfo=UTC)
    )
    assert _without_id(built) == _without_id(expected)
    assert list(built) == list(expected)  # same field order as AWS


def test_pipeline_execution_event_equals_aws_sample():
    expected = sample("pipeline_execution_status_change")
    detail = expected["detail"]
    built = events.pipeline_execution_status_change(
        detail["pipelineExecutionArn"],
        current="Succeeded",
        previous="Executing",
        started_at=datetime(2021, 3, 15, 16, 3, 13, tzinfo=UTC),
        ended_at=datetime(2021, 3, 15, 16, 10, 10, tzinfo=UTC),
        display_name="SomeDisplayName",
        description="SomeDescription",
        time=datetime(2021, 3, 15, 16, 10, 11, tzinfo=UTC),
    )
    assert _without_id(built) == _without_id(expected)
    assert list(built["detail"]) == list(detail)


def test_codecommit_event_equals_aws_sample():
    expected = sample("codecommit_reference_updated")
    detail = expected["detail"]
    built = events.codecommit_reference_updated(
        expected["resources"][0],
        repository_id=detail["repositoryId"],
        branch="main",
        commit_id=detail["commitId"],
        old_commit_id=detail["oldCommitId"],
        caller=detail["callerUserArn"],
        time=datetime(2019, 6, 12, 10, 23, 43, tzinfo=UTC),
    )
    assert _without_id(built) == _without_id(expected)
    assert list(built["detail"]) == list(detail)


def test_first_commit_of_a_branch_is_reference_created_without_old_commit():
    built = events.codecommit_reference_updated(
        "arn:aws:codecommit:us-east-1:123456789012:repo",
        repository_id="id",
        branch="feature",
        commit_id="abc",
        old_commit_id=None,
        caller="arn:aws:iam::123456789012:user/me",
    )
    assert built["detail"]["event"] == "referenceCreated"
    assert "oldCommitId" not in built["detail"]


def test_put_events_entry_carries_the_event_and_epoch_times_become_aws_format():
    event = events.pipeline_execution_status_change(
        "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e1",
        current="Failed",
        previous="Executing",
        started_at=0,
        ended_at=60,
    )
    entry = events.put_events_entry(event)
    assert entry["Source"] == "aws.sagemaker"
    assert entry["DetailType"] == "SageMaker Model Building Pipeline Execution Status Change"
    assert entry["Resources"] == [
        "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p",
        "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e1",
    ]
    detail = json.loads(entry["Detail"])
    assert detail["executionStartTime"] == "1970-01-01T00:00:00Z"
    assert detail["executionEndTime"] == "1970-01-01T00:01:00Z"
    assert event["time"] == "1970-01-01T00:01:00Z"


def test_an_execution_arn_is_required():
    with pytest.raises(ValueError, match="Not a pipeline execution ARN"):
        events.pipeline_arn_of("arn:aws:sagemaker:us-east-1:123456789012:pipeline/p")
