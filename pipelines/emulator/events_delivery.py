"""EventBridge delivery on the emulator: what moto does not do, done as AWS does it.

moto matches rule patterns itself (``moto.events.models.EventPattern``) and delivers
to SQS, log groups, archives and other buses. For the automation rules
(infra/modules/automation) three gaps remain:

- a target moto cannot deliver to (a SageMaker pipeline, a CodeBuild project, a
  CodePipeline) raised ``NotImplementedError``, so ``PutEvents`` failed with a 500 for
  the whole entry: now the emulator logs the match and skips that target. The local
  automation agent acts on the rule's SQS copy instead (the difference is logged by
  the agent too);
- SNS targets are delivered with moto's SNS backend (a topic publish, as EventBridge
  does), so subscribers of the failure topic receive the event;
- a ``DISABLED`` rule delivered anyway; EventBridge delivers nothing for it;
- events from S3's EventBridge notifications skipped the targets' input transformers;
- GetBucketNotificationConfiguration left out ``EventBridgeConfiguration``.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from typing import Any

from moto.events.models import Rule
from moto.utilities.arns import parse_arn

_MOTO_DELIVERS = frozenset({"logs", "events", "sqs"})
_log = logging.getLogger("mlops.emulator.events")


def undelivered_note(rule: str, target_arn: str) -> str:
    service = target_arn.split(":")[2] if target_arn.count(":") >= 5 else "unknown"
    return (
        f"EventBridge rule {rule} matched; its {service} target {target_arn} is not run by "
        "the emulator (the local automation agent acts on the rule's SQS target)."
    )


def patch_rule_delivery() -> None:
    original = Rule.send_to_targets

    def send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        delivered = []
        for target in self.targets:
            arn = parse_arn(target["Arn"])
            if arn.service in _MOTO_DELIVERS:
                delivered.append(target)
            elif arn.service == "sns":
                _publish(self, target["Arn"], original_event)
            else:
                print(undelivered_note(self.name, target["Arn"]), file=sys.stderr, flush=True)
        if delivered:
            # A copy: concurrent requests share the rule, so its targets are never swapped.
            clone = copy.copy(self)
            clone.targets = delivered
            event = dict(original_event)
            # moto's S3 notifications skip input transformers (their event has no
            # ingestion time); EventBridge applies a target's transformer to every event.
            event.setdefault("ingestion-time", time.time())
            original(clone, event, True)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def _publish(rule: Rule, topic_arn: str, event: Any) -> None:
    from moto.sns.models import sns_backends

    arn = parse_arn(topic_arn)
    body = dict(event)
    body.pop("ingestion-time", None)
    sns_backends[arn.account][arn.region].publish(message=json.dumps(body), arn=topic_arn)


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
