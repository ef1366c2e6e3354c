"""Send events to EventBridge (the emulator's, locally) and the hooks that do it.

The hooks are what the existing modules call, one line each: the registry after an
approval change, the executor's RegisterModel step after a registration, the local
backend and executor at every execution status change. On AWS, SageMaker emits these
events itself, so the hooks publish only to the emulator. A hook never fails the action
it reports on: the approval or the run has happened; a publishing problem is said on
stderr.

EventBridge refuses ``aws.*`` sources from callers (``NotAuthorizedForSourceException``):
only AWS services emit them. Locally the project's emitters stand in for those
services, so their PutEvents requests carry an HMAC of the request body under a key
derived from the checkout's emulator key (:func:`service_event_key`); the emulator
delivers ``aws.*`` entries only from requests that carry a valid one
(pipelines.emulator.events_delivery). A client of the checkout's own key that does not
sign so (a script, a job) is refused them, as AWS refuses every caller.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from collections.abc import Mapping
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.aws import AwsConnection, EmulatorCredentials, emulator_credentials
from pipelines.core.errors import MlopsError
from pipelines.events import shapes as events

SERVICE_SIGNATURE_HEADER = "X-Mlops-Service-Event-Signature"
_SERVICE_LABEL = b"mlops: the project's stand-in AWS service events"


def service_event_key(credentials: EmulatorCredentials) -> bytes:
    """The key that marks the project's own service events: derived from the checkout's
    emulator key (pipelines.core.aws.emulator_credentials, private to its user), so the
    emulator and every emitter of the checkout hold it and no one else does."""
    return hmac.new(credentials.secret_access_key.encode(), _SERVICE_LABEL, hashlib.sha256).digest()


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def signature_is_valid(key: bytes, body: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(key, body), str(signature))


def service_events_client(connection: AwsConnection) -> BaseClient:
    """An EventBridge client whose PutEvents requests are signed as the project's own
    service events (emulator connections only: on AWS the services emit them)."""
    if connection.ca_bundle is None or not connection.emits_service_events:
        raise MlopsError("Only the emulator takes the project's stand-in service events.")
    key = service_event_key(emulator_credentials(connection.ca_bundle))
    # A client of its own (the connection keeps one per settings): the connection's
    # plain events client stays unsigned.
    client = connection.client("events", user_agent_extra="mlops-service-events")

    def add_signature(request: Any, **_: Any) -> None:
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        request.headers[SERVICE_SIGNATURE_HEADER] = sign(key, body)

    # Registered once per client, however often the client is asked for.
    client.meta.events.register(
        "before-sign.events.PutEvents", add_signature, unique_id=SERVICE_SIGNATURE_HEADER
    )
    return client


def publish(connection: AwsConnection, event: Mapping[str, Any]) -> str:
    """PutEvents one event; returns its id. EventBridge matches it against the rules."""
    client = service_events_client(connection)
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
    except (MlopsError, ClientError, BotoCoreError, KeyError, ValueError, OSError) as error:
        print(f"automation: event not published: {error}", file=sys.stderr, flush=True)
        return None


def model_package_changed(
    connection: AwsConnection, package_arn: str, described: Mapping[str, Any] | None = None
) -> str | None:
    """``SageMaker Model Package State Change``: after a version is registered (SageMaker
    emits one at creation, so a version registered Approved fires the approval rules) and
    after every approval status change. ``described``: a DescribeModelPackage answer the
    caller already has."""
    if not connection.emits_service_events:
        return None  # SageMaker emits it

    def build() -> dict[str, Any]:
        package = described or connection.client("sagemaker").describe_model_package(
            ModelPackageName=package_arn
        )
        return events.model_package_state_change(package)

    return _publish_quietly(connection, build)


def execution_status_changed(
    connection: AwsConnection, execution: Any, previous: str | None
) -> str | None:
    """After an execution's status changes (``execution`` is a core.records.Execution,
    as recorded after the change; ``previous`` the status before it, None at the start)."""
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
