"""The automation module applied to the emulator; AWS's sample events sent with PutEvents
reach the right targets and no other. Matching is the emulator's (moto's EventBridge)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import tftest

from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.core.aws import AwsConnection, emulator_process_env
from pipelines.emulator import Emulator, EmulatorInfo
from pipelines.events.publish import service_events_client
from pipelines.events.shapes import put_events_entry
from pipelines.stack.terraform import terraform_base_env
from tests.automation.conftest import sample

ACCOUNT = "123456789012"
REGION = "us-east-1"
PREFIX = "mlops-rules"
GROUP = f"{PREFIX}-models"
BUCKET = f"{PREFIX}-bucket"
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PREFIX}-pipeline"
REPO_ARN = f"arn:aws:codecommit:{REGION}:{ACCOUNT}:{PREFIX}"

ROOT = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

variable "endpoint" { type = string }

provider "aws" {
  region                      = "us-east-1"
  max_retries                 = 2
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  endpoints {
    events = var.endpoint
    iam    = var.endpoint
    sns    = var.endpoint
    sqs    = var.endpoint
    sts    = var.endpoint
  }
}

resource "aws_sns_topic" "alerts" {
  name = "PREFIX-alerts"
}

module "automation" {
  source = "MODULE"

  name                     = "PREFIX"
  pipeline_name            = "PREFIX-pipeline"
  model_package_group_name = "PREFIX-models"
  bucket_name              = "PREFIX-bucket"
  code_repository_arn      = "arn:aws:codecommit:us-east-1:123456789012:PREFIX"
  agent_queue              = {}
  failure_notification     = { topic_arn = aws_sns_topic.alerts.arn }
  drift_retraining         = { alarm_name_prefix = "PREFIX-drift-", enabled = true }
  retraining_schedule      = { expression = "rate(1 minute)" }
}

output "agent_queue_url" { value = module.automation.agent_queue_url }
output "rule_names" { value = module.automation.rule_names }
output "topic_arn" { value = aws_sns_topic.alerts.arn }
"""


@pytest.fixture(scope="module")
def applied(
    tmp_path_factory: pytest.TempPathFactory,
    emulator: tuple[Emulator, EmulatorInfo],
    emulator_connection: AwsConnection,
) -> Iterator[dict[str, Any]]:
    instance, info = emulator
    root = tmp_path_factory.mktemp("rules")
    # The module and the one it calls (../service_role), side by side as in infra/modules.
    for name in ("automation", "service_role"):
        shutil.copytree(PROJECT_ROOT / "infra" / "modules" / name, root / "modules" / name)
    (root / "main.tf").write_text(
        ROOT.replace("MODULE", "./modules/automation").replace("PREFIX", PREFIX)
    )
    shutil.copy(PROJECT_ROOT / "infra" / ".terraform.lock.hcl", root / ".terraform.lock.hcl")
    settings = Settings.load(None, environ={**os.environ, "MLOPS_STATE_DIR": str(root)})
    env = emulator_process_env(
        terraform_base_env(settings, os.environ), ca_bundle=instance.tls.ca_cert, region=REGION
    )
    env["TF_DATA_DIR"] = str(root / "tfdata")
    tf = tftest.TerraformTest(str(root), env=env)
    tf.setup(cleanup_on_exit=False)
    variables = {"endpoint": info.endpoint}
    tf.apply(tf_vars=variables)
    outputs = tf.output()
    sqs = emulator_connection.client("sqs")
    inbox = sqs.create_queue(QueueName=f"{PREFIX}-alerts-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    emulator_connection.client("sns").subscribe(
        TopicArn=outputs["topic_arn"],
        Protocol="sqs",
        Endpoint=inbox_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    try:
        yield {"tf": tf, "variables": variables, "inbox": inbox, **outputs}
    finally:
        tf.destroy(tf_vars=variables, auto_approve=True)


def _drain(connection: AwsConnection, queue_url: str) -> list[dict[str, Any]]:
    sqs = connection.client("sqs")
    bodies = []
    while True:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = answer.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _send(connection: AwsConnection, event: dict[str, Any]) -> None:
    # Signed as the project's stand-in for the AWS services: aws.* sources are refused
    # from anyone else (tests/emulator/test_events_delivery.py).
    answer = service_events_client(connection).put_events(Entries=[put_events_entry(event)])
    assert answer["FailedEntryCount"] == 0, answer


def _approval(status: str = "Approved", group: str = GROUP) -> dict[str, Any]:
    event = sample("model_package_state_change")
    event["detail"].update(ModelApprovalStatus=status, ModelPackageGroupName=group)
    return event


def _execution(status: str, pipeline_arn: str = PIPELINE_ARN) -> dict[str, Any]:
    event = sample("pipeline_execution_status_change")
    execution_arn = f"{pipeline_arn}/execution/p4jn9xou8a8s"
    event["resources"] = [pipeline_arn, execution_arn]
    event["detail"].update(
        currentPipelineExecutionStatus=status,
        pipelineArn=pipeline_arn,
        pipelineExecutionArn=execution_arn,
    )
    return event


def _object(key: str, bucket: str = BUCKET) -> dict[str, Any]:
    event = sample("s3_object_created")
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


def _push(branch: str = "main", repository_arn: str = REPO_ARN) -> dict[str, Any]:
    event = sample("codecommit_reference_updated")
    event["resources"] = [repository_arn]
    event["detail"].update(
        referenceName=branch,
        referenceFullName=f"refs/heads/{branch}",
        repositoryName=repository_arn.rsplit(":", 1)[-1],
    )
    return event


def _alarm(name: str, state: str = "ALARM") -> dict[str, Any]:
    event = sample("cloudwatch_alarm_state_change")
    event["detail"]["alarmName"] = name
    event["detail"]["state"]["value"] = state
    return event


CASES = {
    # sample event -> (rule that delivers to the agent, or None; does the topic get it?)
    "approval": (_approval(), f"{PREFIX}-approval-deploy", False),
    "rejection": (_approval("Rejected"), None, False),
    "approval of another group": (_approval(group="other-models"), None, False),
    "execution failed": (_execution("Failed"), None, True),
    "execution succeeded": (_execution("Succeeded"), None, False),
    "another pipeline failed": (
        _execution("Failed", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/other"),
        None,
        False,
    ),
    "new data": (_object("datasets/incoming/july.csv"), f"{PREFIX}-new-data-retraining", False),
    "the project's own staging key": (_object("datasets/0123abcd/july.csv"), None, False),
    "another bucket": (_object("datasets/incoming/x.csv", "other-bucket"), None, False),
    "push to main": (_push(), f"{PREFIX}-commit-build", False),
    "push to a feature branch": (_push("feature"), None, False),
    "push to another repository": (
        _push(repository_arn=f"arn:aws:codecommit:{REGION}:{ACCOUNT}:other"),
        None,
        False,
    ),
    "drift alarm": (_alarm(f"{PREFIX}-drift-rm"), f"{PREFIX}-drift-retraining", False),
    "drift alarm back to OK": (_alarm(f"{PREFIX}-drift-rm", "OK"), None, False),
    "another alarm": (_alarm("ServerCpuTooHigh"), None, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sample_event_reaches_the_right_targets_and_no_other(
    applied, emulator_connection: AwsConnection, case: str
):
    event, agent_rule, to_topic = CASES[case]
    _drain(emulator_connection, applied["agent_queue_url"])
    _drain(emulator_connection, applied["inbox"])
    _send(emulator_connection, event)
    delivered = _drain(emulator_connection, applied["agent_queue_url"])
    notified = _drain(emulator_connection, applied["inbox"])
    if agent_rule is None:
        assert delivered == []
    else:
        assert [d["rule"] for d in delivered] == [agent_rule]
        (delivery,) = delivered
        # The event as AWS delivers it: the sample's fields, in order, account included.
        assert list(delivery["event"]) == list(event)
        assert delivery["event"]["detail"] == event["detail"]
        assert delivery["event"]["detail-type"] == event["detail-type"]
        assert delivery["event"]["source"] == event["source"]
        assert delivery["event"]["account"] == ACCOUNT
    if to_topic:
        assert [n["detail"] for n in notified] == [event["detail"]]
        assert notified[0]["detail-type"] == event["detail-type"]
    else:
        assert notified == []


def test_rules_as_applied_and_a_second_plan_is_empty(applied, emulator_connection):
    names = applied["rule_names"]
    assert set(names) == {
        "approval_deploy",
        "commit_build",
        "new_data_retraining",
        "execution_failed",
        "drift_retraining",
        "scheduled_retraining",
    }
    events = emulator_connection.client("events")
    schedule = events.describe_rule(Name=names["scheduled_retraining"])
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    (target,) = events.list_targets_by_rule(Rule=names["scheduled_retraining"])["Targets"]
    assert target["Arn"] == PIPELINE_ARN
    plan = applied["tf"].plan(output=True, tf_vars=applied["variables"])
    changes = [
        rc["address"] for rc in plan["resource_changes"] if rc["change"]["actions"] != ["no-op"]
    ]
    assert changes == []


def test_a_disabled_rule_delivers_nothing(applied, emulator_connection):
    events = emulator_connection.client("events")
    name = applied["rule_names"]["approval_deploy"]
    events.disable_rule(Name=name)
    try:
        _drain(emulator_connection, applied["agent_queue_url"])
        _send(emulator_connection, _approval())
        assert _drain(emulator_connection, applied["agent_queue_url"]) == []
    finally:
        events.enable_rule(Name=name)
