"""EventBridge delivery on the emulator: what moto does not do, done as AWS does it.

moto matches rule patterns itself (``moto.events.models.EventPattern``) and delivers
to SQS, log groups, archives and other buses. For the automation rules
(infra/modules/automation) these gaps remain:

- a target moto cannot deliver to (a SageMaker pipeline, a CodeBuild project, a
  CodePipeline) raised ``NotImplementedError``, so ``PutEvents`` failed with a 500 for
  the whole entry: now the emulator logs the match and skips that target. The local
  automation agent acts on the rule's SQS copy instead (the difference is logged by
  the agent too);
- SNS targets are delivered with moto's SNS backend (a topic publish, as EventBridge
  does), so subscribers of the failure topic receive the event;
- a ``DISABLED`` rule delivered anyway; EventBridge delivers nothing for it;
- an SQS target received moto's own copy of the event: epoch ``time``, an
  ``ingestion-time`` field, no ``account`` without an input transformer, and S3's events
  skipped transformers. It now receives the event as EventBridge delivers it, whole or
  through its transformer;
- S3's ``Object Created`` event had ``eTag``, ``reason: ObjectCreated`` and the same
  event id every time; it now has S3's shape ("EventBridge event message structure",
  Amazon S3 user guide): ``etag``, ``reason: PutObject`` (or the API that created it), a
  fresh id;
- ``PutEvents`` accepted ``aws.*`` sources from anyone. EventBridge refuses them
  (``NotAuthorizedForSourceException``): only AWS services emit them. Here the project's
  own emitters stand in for those services and sign their requests
  (pipelines.events.publish); entries with an ``aws.*`` source in any other request are
  refused as AWS refuses them;
- GetBucketNotificationConfiguration left out ``EventBridgeConfiguration``.
"""

from __future__ import annotations

import copy
import json
import logging
import secrets
import string
import sys
import time
import uuid
from typing import Any

from moto.events.models import Rule
from moto.events.utils import EventTemplateParser
from moto.utilities.arns import parse_arn

from pipelines.events.publish import SERVICE_SIGNATURE_HEADER, signature_is_valid
from pipelines.events.shapes import OBJECT_CREATED, timestamp

_MOTO_DELIVERS = frozenset({"logs", "events"})
_log = logging.getLogger("mlops.emulator.events")
_ENVELOPE = ("version", "id", "detail-type", "source", "account", "time", "region")
_EVENT_JSON = "<aws.events.event.json>"
_EVENT_JSON_PLACE = "__mlops_aws_events_event_json__"
REFUSED_SOURCE = {
    "ErrorCode": "NotAuthorizedForSourceException",
    "ErrorMessage": "Not authorized for the source.",
}

# The key that signs the project's stand-in service events (set by the server at start;
# without it every aws.* entry is refused).
_service_key: bytes | None = None


def trust_service_events(key: bytes) -> None:
    global _service_key
    _service_key = key


def undelivered_note(rule: str, target_arn: str) -> str:
    service = target_arn.split(":")[2] if target_arn.count(":") >= 5 else "unknown"
    return (
        f"EventBridge rule {rule} matched; its {service} target {target_arn} is not run by "
        "the emulator (the local automation agent acts on the rule's SQS target)."
    )


def as_delivered(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge hands it to a target: the envelope in AWS's order, the
    time as ``2021-11-12T00:00:00Z``; moto's ``ingestion-time`` is not part of it."""
    delivered = {name: event[name] for name in _ENVELOPE if name in event}
    delivered["time"] = timestamp(event.get("time", time.time()))
    delivered["resources"] = list(event.get("resources", []))
    delivered["detail"] = event.get("detail", {})
    return delivered


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What a target receives: the whole event, its constant ``Input``, or its input
    transformer's output, whose ``<aws.events.event.json>`` is the delivered event."""
    delivered = as_delivered(event)
    if "Input" in target:
        return json.loads(target["Input"])
    transformer = target.get("InputTransformer")
    if not transformer:
        return delivered
    template = transformer.get("InputTemplate", "").replace(_EVENT_JSON, f'"{_EVENT_JSON_PLACE}"')
    parsed = EventTemplateParser.parse(
        input_template=template,
        input_paths_map=transformer.get("InputPathsMap", {}),
        event={**delivered, "ingestion-time": event.get("ingestion-time", time.time())},
    )
    return _put_event(parsed, delivered)


def _put_event(value: Any, delivered: dict[str, Any]) -> Any:
    """The transformer's output with the event in place of its placeholder: values from
    the event are never read as template text."""
    if value == _EVENT_JSON_PLACE:
        return delivered
    if isinstance(value, dict):
        return {key: _put_event(item, delivered) for key, item in value.items()}
    if isinstance(value, list):
        return [_put_event(item, delivered) for item in value]
    return value


def _send_to_queue(target: dict[str, Any], event: dict[str, Any]) -> None:
    from moto.sqs.models import sqs_backends

    arn = parse_arn(target["Arn"])
    sqs_backends[arn.account][arn.region].send_message(
        queue_name=arn.resource_id,
        message_body=json.dumps(target_input(target, event)),
        group_id=(target.get("SqsParameters") or {}).get("MessageGroupId"),
    )


def patch_rule_delivery() -> None:
    original = Rule.send_to_targets

    def send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        event = dict(original_event)
        # moto's S3 notifications carry no ingestion time; transformers may ask for it.
        event.setdefault("ingestion-time", time.time())
        delivered = []
        for target in self.targets:
            arn = parse_arn(target["Arn"])
            if arn.service == "sqs":
                _send_to_queue(target, event)
            elif arn.service in _MOTO_DELIVERS:
                delivered.append(target)
            elif arn.service == "sns":
                _publish(self, target["Arn"], event)
            else:
                print(undelivered_note(self.name, target["Arn"]), file=sys.stderr, flush=True)
        if delivered:
            # A copy: concurrent requests share the rule, so its targets are never swapped.
            clone = copy.copy(self)
            clone.targets = delivered
            original(clone, event, True)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def _publish(rule: Rule, topic_arn: str, event: Any) -> None:
    from moto.sns.models import sns_backends

    arn = parse_arn(topic_arn)
    sns_backends[arn.account][arn.region].publish(
        message=json.dumps(as_delivered(event)), arn=topic_arn
    )


def patch_put_events_sources() -> None:
    """Entries with an ``aws.*`` source are refused unless the request carries the
    project's service-event signature; the others in the same request are delivered."""
    from moto.events.responses import EventsHandler

    original = EventsHandler.put_events

    def put_events(self: EventsHandler) -> str:
        entries = self._get_param("Entries") or []
        signature = self.headers.get(SERVICE_SIGNATURE_HEADER)
        body = self.raw_body if isinstance(self.raw_body, bytes) else str(self.raw_body).encode()
        trusted = _service_key is not None and signature_is_valid(_service_key, body, signature)
        if trusted or len(entries) > 10:  # more than 10: moto answers AWS's validation error
            return original(self)
        allowed = [
            index
            for index, entry in enumerate(entries)
            if not str(entry.get("Source") or "").startswith("aws.")
        ]
        results: list[dict[str, Any]] = [dict(REFUSED_SOURCE) for _ in entries]
        if allowed:
            answers = self.events_backend.put_events([entries[index] for index in allowed])
            for index, answer in zip(allowed, answers, strict=True):
                results[index] = answer
        failed = sum(1 for result in results if "ErrorCode" in result)
        return json.dumps({"FailedEntryCount": failed, "Entries": results})

    EventsHandler.put_events = put_events  # type: ignore[method-assign]


# S3's "reason" names the API that created the object.
_CREATED_BY = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "POST Object",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
}


def _name(event_name: Any) -> str:
    """``s3:ObjectCreated:Put`` (moto passes an enum member whose str() is its name)."""
    return str(getattr(event_name, "value", event_name))


def object_created_event(account: str, bucket: Any, key: Any, event_name: str) -> dict[str, Any]:
    """S3's ``Object Created`` event for ``key`` (a moto FakeKey) in ``bucket``."""
    obj: dict[str, Any] = {"key": key.name, "size": key.size, "etag": key.etag.strip('"')}
    if getattr(key, "_is_versioned", False) and key.version_id:
        obj["version-id"] = key.version_id
    obj["sequencer"] = f"{time.time_ns():018X}"  # grows with every write, as S3's does
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": OBJECT_CREATED,
        "source": "aws.s3",
        "account": account,
        "time": time.time(),
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": "".join(
                secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)
            ),
            "requester": account,
            "source-ip-address": "127.0.0.1",  # the emulator serves loopback only
            "reason": _CREATED_BY[_name(event_name)],
        },
    }


def patch_s3_object_created_event() -> None:
    from moto.s3 import notifications

    original = notifications._send_event_bridge_message

    def send(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        if _name(event_name) not in _CREATED_BY:
            original(account_id, bucket, event_name, key)  # other events: moto's shape
            return
        from moto.events.models import events_backends

        event = object_created_event(account_id, bucket, key, event_name)
        # S3 sends to the account's default event bus.
        bus = events_backends[account_id][bucket.region_name].event_buses.get("default")
        for rule in list(bus.rules.values()) if bus else []:
            try:
                rule.send_to_targets(event)
            except Exception as error:  # an asynchronous delivery never fails the write
                _log.warning("S3 event for %s not delivered by %s: %s", key.name, rule.name, error)

    notifications._send_event_bridge_message = send


def patch_s3_eventbridge_configuration() -> None:
    """GetBucketNotificationConfiguration left out EventBridgeConfiguration, so the
    provider saw ``eventbridge = false`` and re-applied it on every plan."""
    from moto.core.responses import ActionResult
    from moto.s3.responses import S3Response

    original = S3Response.get_bucket_notification

    def get_bucket_notification(self: S3Response) -> Any:
        configuration = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if configuration is None or configuration.event_bridge is None:
            return original(self)
        if configuration.topic or configuration.queue or configuration.cloud_function:
            return original(self)  # not used by this project; moto's own answer
        self.data["Action"] = "GetBucketNotificationConfiguration"
        return self.serialized(ActionResult({"EventBridgeConfiguration": {}}))

    S3Response.get_bucket_notification = get_bucket_notification  # type: ignore[method-assign]
