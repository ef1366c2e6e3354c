"""AWS's events, in AWS's exact JSON, built by pure functions.

Shapes are the documented samples ("Automating Amazon SageMaker with Amazon
EventBridge": model package state change, pipeline execution state change; CodeCommit
"Monitoring CodeCommit events in Amazon EventBridge": referenceUpdated). S3's
``Object Created`` is emitted by the emulator itself (moto's S3 EventBridge
notifications), as S3 does, once the bucket has EventBridge notifications on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
PIPELINE_EXECUTION_STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
CODECOMMIT_STATE_CHANGE = "CodeCommit Repository State Change"
OBJECT_CREATED = "Object Created"

# The fields of DescribeModelPackage that the state-change event carries (AWS's sample).
_PACKAGE_FIELDS = (
    "ModelPackageGroupName",
    "ModelPackageVersion",
    "ModelPackageArn",
    "ModelPackageDescription",
    "CreationTime",
    "InferenceSpecification",
    "ModelPackageStatus",
    "ModelPackageStatusDetails",
    "CertifyForMarketplace",
    "ModelApprovalStatus",
    "ApprovalDescription",
    "MetadataProperties",
    "ModelMetrics",
    "DriftCheckBaselines",
    "LastModifiedTime",
)


def timestamp(value: Any) -> str:
    """AWS's event time format: ``2021-02-24T17:00:14Z`` (UTC, whole seconds)."""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def envelope(
    detail_type: str,
    source: str,
    *,
    account: str,
    region: str,
    resources: list[str],
    detail: Mapping[str, Any],
    time: Any = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": timestamp(time if time is not None else datetime.now(UTC)),
        "region": region,
        "resources": list(resources),
        "detail": dict(detail),
    }


def arn_parts(arn: str) -> tuple[str, str]:
    """(region, account) of an ARN."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"Not an ARN: {arn!r}")
    return parts[3], parts[4]


def model_package_state_change(package: Mapping[str, Any], time: Any = None) -> dict[str, Any]:
    """From a DescribeModelPackage response (after an approval change)."""
    arn = package["ModelPackageArn"]
    region, account = arn_parts(arn)
    detail: dict[str, Any] = {}
    for name in _PACKAGE_FIELDS:
        if name in package and package[name] is not None:
            value = package[name]
            detail[name] = timestamp(value) if name.endswith("Time") else value
    return envelope(
        MODEL_PACKAGE_STATE_CHANGE,
        "aws.sagemaker",
        account=account,
        region=region,
        resources=[arn],
        detail=detail,
        time=time,
    )


def pipeline_arn_of(execution_arn: str) -> str:
    """``arn:...:pipeline/NAME/execution/ID`` -> ``arn:...:pipeline/NAME``."""
    head, sep, _ = execution_arn.partition("/execution/")
    if not sep:
        raise ValueError(f"Not a pipeline execution ARN: {execution_arn!r}")
    return head


def pipeline_execution_status_change(
    execution_arn: str,
    *,
    current: str,
    previous: str | None,
    started_at: Any,
    ended_at: Any = None,
    display_name: str = "",
    description: str | None = None,
    time: Any = None,
) -> dict[str, Any]:
    pipeline_arn = pipeline_arn_of(execution_arn)
    region, account = arn_parts(execution_arn)
    detail: dict[str, Any] = {"pipelineExecutionDisplayName": display_name}
    detail["currentPipelineExecutionStatus"] = current
    if previous:
        detail["previousPipelineExecutionStatus"] = previous
    detail["executionStartTime"] = timestamp(started_at)
    if ended_at is not None:
        detail["executionEndTime"] = timestamp(ended_at)
    if description:
        detail["pipelineExecutionDescription"] = description
    detail["pipelineArn"] = pipeline_arn
    detail["pipelineExecutionArn"] = execution_arn
    return envelope(
        PIPELINE_EXECUTION_STATUS_CHANGE,
        "aws.sagemaker",
        account=account,
        region=region,
        resources=[pipeline_arn, execution_arn],
        detail=detail,
        time=time if time is not None else ended_at,
    )


def codecommit_reference_updated(
    repository_arn: str,
    *,
    repository_id: str,
    branch: str,
    commit_id: str,
    old_commit_id: str | None,
    caller: str,
    time: Any = None,
) -> dict[str, Any]:
    """A push to a branch: ``referenceUpdated``, or ``referenceCreated`` for a new branch."""
    region, account = arn_parts(repository_arn)
    detail: dict[str, Any] = {
        "callerUserArn": caller,
        "commitId": commit_id,
        "event": "referenceUpdated" if old_commit_id else "referenceCreated",
    }
    if old_commit_id:
        detail["oldCommitId"] = old_commit_id
    detail.update(
        {
            "referenceFullName": f"refs/heads/{branch}",
            "referenceName": branch,
            "referenceType": "branch",
            "repositoryId": repository_id,
            "repositoryName": repository_arn.rsplit(":", 1)[-1],
        }
    )
    return envelope(
        CODECOMMIT_STATE_CHANGE,
        "aws.codecommit",
        account=account,
        region=region,
        resources=[repository_arn],
        detail=detail,
        time=time,
    )


def put_events_entry(event: Mapping[str, Any], bus: str = "default") -> dict[str, Any]:
    """The PutEvents request entry that makes EventBridge deliver ``event``."""
    return {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"], sort_keys=True, default=str),
        "Resources": list(event.get("resources", [])),
        "EventBusName": bus,
    }
