"""Send events to EventBridge (the emulator's, locally) and the hooks that do it.

The hooks are what the existing modules call, one line each: the registry after an
approval change, the local executor when an execution finishes. On AWS, SageMaker
emits these events itself, so the hooks publish only to the emulator. A hook never
fails the action it reports on: the approval or the run has happened; a publishing
problem is said on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.events import shapes as events


def publish(connection: AwsConnection, event: Mapping[str, Any]) -> str:
    """PutEvents one event; returns its id. EventBridge matches it against the rules."""
    client = connection.client("events")
    try:
        answer = client.put_events(Entries=[events.put_events_entry(event)])
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Could not publish {event['detail-type']!r}: {error}") from error
    entry = answer["Entries"][0]
    if answer.get("FailedEntryCount") or "EventId" not in entry:
        raise MlopsError(
            f"EventBridge refused {event['detail-type']!r}: "
            f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"
        )
    return str(entry["EventId"])


def _publish_quietly(connection: AwsConnection, build: Any) -> str | None:
    try:
        return publish(connection, build())
    except (MlopsError, ClientError, BotoCoreError, KeyError, ValueError) as error:
        print(f"automation: event not published: {error}", file=sys.stderr, flush=True)
        return None


def model_package_changed(connection: AwsConnection, package_arn: str) -> str | None:
    """After an approval status change: ``SageMaker Model Package State Change``."""
    if not connection.emits_service_events:
        return None  # SageMaker emits it
    sagemaker = connection.client("sagemaker")
    return _publish_quietly(
        connection,
        lambda: events.model_package_state_change(
            sagemaker.describe_model_package(ModelPackageName=package_arn)
        ),
    )


def execution_status_changed(
    connection: AwsConnection,
    execution: Any,
    previous: str = "Executing",
) -> str | None:
    """After a local execution changes status (``execution`` is a backends.records.Execution)."""
    if not connection.emits_service_events:
        return None  # SageMaker emits it
    return _publish_quietly(
        connection,
        lambda: events.pipeline_execution_status_change(
            execution.execution_arn,
            current=execution.status,
            previous=previous,
            started_at=execution.created_at,
            ended_at=execution.ended_at,
            display_name=execution.display_name,
        ),
    )
