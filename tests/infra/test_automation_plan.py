"""Plan checks of infra/modules/automation: the rules' event patterns are exactly AWS's,
their targets and the roles' statements name this project's resources only."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tftest

from pipelines.launch.datasets import NEW_DATA_PREFIX
from tests.infra.conftest import PlanFn

M = "module.automation[0]"
ACCOUNT = "123456789012"
REGION = "us-east-1"
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/mlops-local-pipeline"
BUCKET = f"mlops-local-artifacts-{ACCOUNT}-{REGION}"
REPO_ARN = f"arn:aws:codecommit:{REGION}:{ACCOUNT}:mlops-local"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:mlops-local-alerts"
CONNECTION_ARN = (
    f"arn:aws:codeconnections:{REGION}:{ACCOUNT}:connection/0123abcd-4567-89ef-0123-456789abcdef"
)
LOCAL = {"automation": {"local_agent": True}}
# SSE-S3 in the AWS-like plans: a new KMS key's ARN is known only after apply, which
# would leave the build roles' documents unknown in the plan.
AWS_CODECOMMIT = {
    "enable_kms_encryption": "false",
    "automation": {
        "build_pipeline": {"codecommit_repository": "mlops-local"},
        "failure_notification": {"topic_arn": TOPIC_ARN},
        "drift_retraining": {"alarm_name_prefix": "mlops-local-drift-", "enabled": True},
        "retraining_schedule": {
            "expression": "cron(0 3 ? * MON *)",
            "parameters": {"NEstimators": "200"},
        },
    },
}
AWS_CONNECTION = {
    "enable_kms_encryption": "false",
    "automation": {
        "build_pipeline": {
            "connection_arn": CONNECTION_ARN,
            "connection_repository": "example/mlops",
        }
    },
}

# The patterns, exactly: field names and values as AWS's events carry them.
APPROVAL_PATTERN = {
    "source": ["aws.sagemaker"],
    "detail-type": ["SageMaker Model Package State Change"],
    "detail": {
        "ModelPackageGroupName": ["mlops-local-models"],
        "ModelApprovalStatus": ["Approved"],
    },
}
COMMIT_PATTERN = {
    "source": ["aws.codecommit"],
    "detail-type": ["CodeCommit Repository State Change"],
    "resources": [REPO_ARN],
    "detail": {
        "event": ["referenceCreated", "referenceUpdated"],
        "referenceType": ["branch"],
        "referenceName": ["main"],
    },
}
NEW_DATA_PATTERN = {
    "source": ["aws.s3"],
    "detail-type": ["Object Created"],
    "detail": {
        "bucket": {"name": [BUCKET]},
        # The prefix `data-upload` uses without automation: the variable's default.
        "object": {"key": [{"prefix": NEW_DATA_PREFIX}]},
    },
}
FAILED_PATTERN = {
    "source": ["aws.sagemaker"],
    "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
    "detail": {
        "pipelineArn": [PIPELINE_ARN],
        "currentPipelineExecutionStatus": ["Failed"],
    },
}
DRIFT_PATTERN = {
    "source": ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    "detail": {"alarmName": [{"prefix": "mlops-local-drift-"}], "state": {"value": ["ALARM"]}},
}


@pytest.fixture(scope="module")
def local_plan(plan_infra: PlanFn) -> dict[str, dict[str, Any]]:
    return resources_by_address(plan_infra(**LOCAL))


@pytest.fixture(scope="module")
def aws_plan(plan_infra: PlanFn) -> dict[str, dict[str, Any]]:
    return resources_by_address(plan_infra(**AWS_CODECOMMIT))


def resources_by_address(plan: tftest.TerraformPlanOutput) -> dict[str, dict[str, Any]]:
    """Planned resources' values by address (data sources read at apply have none yet)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(module: dict[str, Any]) -> None:
        for resource in module.get("resources", []):
            found[resource["address"]] = resource.get("values", {})
        for child in module.get("child_modules", []):
            walk(child)

    walk(plan["planned_values"]["root_module"])
    return found


def rule(plan: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    return plan[f'{M}.aws_cloudwatch_event_rule.pattern["{key}"]']


def statements(plan: dict[str, dict[str, Any]], address: str) -> dict[str, dict[str, Any]]:
    document = json.loads(plan[address]["policy"])
    return {s["Sid"]: s for s in document["Statement"]}


def automation_addresses(plan: dict[str, dict[str, Any]]) -> set[str]:
    return {address for address in plan if address.startswith(M)}


def test_local_rules_have_exactly_aws_patterns(local_plan):
    assert json.loads(rule(local_plan, "approval_deploy")["event_pattern"]) == APPROVAL_PATTERN
    assert json.loads(rule(local_plan, "commit_build")["event_pattern"]) == COMMIT_PATTERN
    assert json.loads(rule(local_plan, "new_data_retraining")["event_pattern"]) == NEW_DATA_PATTERN
    for key in ("approval_deploy", "commit_build", "new_data_retraining"):
        assert rule(local_plan, key)["state"] == "ENABLED"


def test_local_failure_and_drift_rules_are_off_without_a_topic_and_by_default(local_plan):
    assert f'{M}.aws_cloudwatch_event_rule.pattern["execution_failed"]' not in local_plan
    assert f'{M}.aws_cloudwatch_event_rule.pattern["drift_retraining"]' not in local_plan


def test_local_agent_queue_is_a_target_of_each_acting_rule_with_the_rule_name(local_plan):
    targets = {
        address: values
        for address, values in local_plan.items()
        if address.startswith(f"{M}.aws_cloudwatch_event_target.agent[")
    }
    assert set(targets) == {
        f'{M}.aws_cloudwatch_event_target.agent["{key}"]'
        for key in ("approval_deploy", "commit_build", "new_data_retraining")
    }
    for address, target in targets.items():
        name = "mlops-local-" + address.split('"')[1].replace("_", "-")
        template = target["input_transformer"][0]["input_template"]
        assert template == f'{{"rule": "{name}", "event": <aws.events.event.json>}}'
        assert target["rule"] == name
    queue = local_plan[f"{M}.aws_sqs_queue.agent[0]"]
    assert queue["name"] == "mlops-local-automation-agent"
    assert queue["sqs_managed_sse_enabled"] is True


def test_local_has_no_builds(local_plan):
    kinds = {
        address.split(".")[2]
        for address in automation_addresses(local_plan)
        if ".data." not in address
    }
    assert "aws_sqs_queue" in kinds
    assert not [address for address in local_plan if address.startswith("module.delivery")]


def test_schedule_starts_this_pipeline_with_a_role_that_can_do_only_that(local_plan, aws_plan):
    schedule = local_plan[f"{M}.aws_cloudwatch_event_rule.scheduled_retraining[0]"]
    assert schedule["schedule_expression"] == "rate(7 days)"
    target = local_plan[f'{M}.aws_cloudwatch_event_target.start_pipeline["scheduled_retraining"]']
    assert target["arn"] == PIPELINE_ARN
    role = f"{M}.module.events_role[0]"
    policy = statements(local_plan, f"{role}.aws_iam_role_policy.this")
    assert policy == {
        "StartThisPipeline": {
            "Sid": "StartThisPipeline",
            "Effect": "Allow",
            "Action": "sagemaker:StartPipelineExecution",
            "Resource": PIPELINE_ARN,
        }
    }
    assert local_plan[f"{role}.aws_iam_role.this"]["name"] == "mlops-local-events-start-pipeline"
    trust = json.loads(local_plan[f"{role}.aws_iam_role.this"]["assume_role_policy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    aws_target = aws_plan[f'{M}.aws_cloudwatch_event_target.start_pipeline["scheduled_retraining"]']
    parameters = aws_target["sagemaker_pipeline_target"][0]["pipeline_parameter_list"]
    assert parameters == [{"name": "NEstimators", "value": "200"}]
    assert (
        aws_plan[f"{M}.aws_cloudwatch_event_rule.scheduled_retraining[0]"]["schedule_expression"]
        == "cron(0 3 ? * MON *)"
    )


def test_failure_rule_goes_to_the_given_topic_and_drift_rule_when_enabled(aws_plan):
    assert json.loads(rule(aws_plan, "execution_failed")["event_pattern"]) == FAILED_PATTERN
    target = aws_plan[f"{M}.aws_cloudwatch_event_target.failure_topic[0]"]
    assert target["arn"] == TOPIC_ARN
    assert json.loads(rule(aws_plan, "drift_retraining")["event_pattern"]) == DRIFT_PATTERN
    drift_target = aws_plan[f'{M}.aws_cloudwatch_event_target.start_pipeline["drift_retraining"]']
    assert drift_target["arn"] == PIPELINE_ARN


def test_the_bucket_sends_its_events_to_eventbridge(local_plan):
    notification = local_plan["module.artifact_bucket.aws_s3_bucket_notification.this[0]"]
    assert notification["eventbridge"] is True


def test_automation_can_be_switched_off(plan_infra: PlanFn):
    plan = resources_by_address(plan_infra(enable_automation="false", **AWS_CODECOMMIT))
    assert not automation_addresses(plan)
    assert not [address for address in plan if address.startswith("module.delivery")]
    assert "module.artifact_bucket.aws_s3_bucket.this" in plan
    assert "module.artifact_bucket.aws_s3_bucket_notification.this[0]" not in plan


def test_two_sources_are_refused_with_the_reason(plan_infra: PlanFn):
    both = {
        "automation": {
            "build_pipeline": {
                "codecommit_repository": "mlops-local",
                "connection_arn": CONNECTION_ARN,
                "connection_repository": "example/mlops",
            }
        }
    }
    with pytest.raises(tftest.TerraformTestError, match="exactly one source"):
        plan_infra(**both)


@pytest.mark.parametrize(
    ("automation", "message"),
    [
        ({"failure_notification": {"topic_arn": "alerts"}}, "must be an SNS topic ARN"),
        ({"drift_retraining": {"alarm_name_prefix": "no spaces"}}, "alarm_name_prefix must be"),
        ({"dataset_prefix": "incoming/"}, "must be a folder under datasets/"),
        ({"retraining_schedule": {"expression": "rate(1 minutes)"}}, "must be rate"),
    ],
)
def test_wrong_settings_are_refused_with_the_reason(plan_infra: PlanFn, automation, message):
    with pytest.raises(tftest.TerraformTestError, match=message):
        plan_infra(automation=automation)
