"""Plan-based checks of the security settings and outputs of infra/ (no apply)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tftest

from tests.infra.conftest import PlanFn, resources_by_address

BUCKET = "module.artifact_bucket.aws_s3_bucket.this"
BUCKET_ARN = "arn:aws:s3:::mlops-local-artifacts-123456789012-us-east-1"
ROLE = "module.sagemaker_execution_role.aws_iam_role.this"
ROLE_POLICY = "module.sagemaker_execution_role.aws_iam_role_policy.this"
KMS_ROLE_POLICY = "module.sagemaker_execution_role.aws_iam_role_policy.kms[0]"
FULL_ACCESS = (
    "module.sagemaker_execution_role.aws_iam_role_policy_attachment.sagemaker_full_access[0]"
)
REPO = "module.code_repository.aws_codecommit_repository.this[0]"
NON_DEFAULT = {
    "enable_kms_encryption": "false",
    "attach_sagemaker_full_access": "true",
    "create_code_repository": "false",
    "bucket_force_destroy": "true",
}


@pytest.fixture(scope="module")
def default_plan(plan_infra: PlanFn) -> dict[str, dict[str, Any]]:
    return resources_by_address(plan_infra())


@pytest.fixture(scope="module")
def switched_plan(plan_infra: PlanFn) -> dict[str, dict[str, Any]]:
    return resources_by_address(plan_infra(**NON_DEFAULT))


def statements(policy_json: str) -> list[dict[str, Any]]:
    return json.loads(policy_json)["Statement"]


def as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_bucket_is_versioned(default_plan):
    versioning = default_plan["module.artifact_bucket.aws_s3_bucket_versioning.this"]
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"


def test_bucket_is_encrypted_with_a_rotated_kms_key_by_default(default_plan):
    sse = default_plan[
        "module.artifact_bucket.aws_s3_bucket_server_side_encryption_configuration.this"
    ]
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] == "aws:kms"
    key = default_plan["module.artifact_bucket.aws_kms_key.this[0]"]
    assert key["enable_key_rotation"] is True


def test_sse_s3_switch_drops_the_key_and_its_grants(switched_plan):
    sse = switched_plan[
        "module.artifact_bucket.aws_s3_bucket_server_side_encryption_configuration.this"
    ]
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] == "AES256"
    assert not default["kms_master_key_id"]
    assert "module.artifact_bucket.aws_kms_key.this[0]" not in switched_plan
    assert KMS_ROLE_POLICY not in switched_plan


def test_all_public_access_flags_are_set(default_plan):
    block = default_plan["module.artifact_bucket.aws_s3_bucket_public_access_block.this"]
    for flag in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block[flag] is True, flag


def test_bucket_policy_denies_requests_without_tls(default_plan):
    policy = statements(default_plan["module.artifact_bucket.aws_s3_bucket_policy.this"]["policy"])
    deny = next(s for s in policy if s["Sid"] == "DenyInsecureTransport")
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*" or deny["Principal"] == {"AWS": "*"}
    assert deny["Action"] == "s3:*"
    assert set(as_list(deny["Resource"])) == {BUCKET_ARN, f"{BUCKET_ARN}/*"}
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_lifecycle_expires_noncurrent_versions_and_aborts_uploads(default_plan):
    rule = default_plan["module.artifact_bucket.aws_s3_bucket_lifecycle_configuration.this"][
        "rule"
    ][0]
    assert rule["status"] == "Enabled"
    assert rule["noncurrent_version_expiration"][0]["noncurrent_days"] == 90
    assert rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"] == 7


def test_force_destroy_is_off_unless_asked(default_plan, switched_plan):
    assert default_plan[BUCKET]["force_destroy"] is False
    assert switched_plan[BUCKET]["force_destroy"] is True


def test_role_is_assumed_only_by_sagemaker_for_this_account_and_region(default_plan):
    trust = statements(default_plan[ROLE]["assume_role_policy"])
    assert trust == [
        {
            "Sid": "SageMakerAssumesRole",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Condition": {
                "StringEquals": {"aws:SourceAccount": "123456789012"},
                "ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:us-east-1:123456789012:*"},
            },
        }
    ]


def test_role_policy_grants_s3_by_prefix(default_plan):
    """The jobs read data, the pipeline's prefix and the capture; they write the pipeline's
    prefix, the capture and monitoring reports; never the code pipeline-run uploads."""
    policy = {s["Sid"]: s for s in statements(default_plan[ROLE_POLICY]["policy"])}
    s3 = {
        sid for sid, s in policy.items() if any(a.startswith("s3:") for a in as_list(s["Action"]))
    }
    assert s3 == {
        "ArtifactBucketLocation",
        "ArtifactBucketListThesePrefixes",
        "ArtifactObjectsRead",
        "ArtifactObjectsWrite",
        "CodeIsWrittenByTheCallerOnly",
    }
    pipeline = f"{BUCKET_ARN}/mlops-local-pipeline"
    assert sorted(as_list(policy["ArtifactObjectsRead"]["Resource"])) == sorted(
        [f"{BUCKET_ARN}/datasets/*", f"{pipeline}/*", f"{BUCKET_ARN}/datacapture/*"]
    )
    write = policy["ArtifactObjectsWrite"]
    assert sorted(as_list(write["Action"])) == [
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:PutObject",
    ]
    assert sorted(as_list(write["Resource"])) == sorted(
        [f"{pipeline}/*", f"{BUCKET_ARN}/datacapture/*", f"{BUCKET_ARN}/monitoring/*"]
    )
    deny = policy["CodeIsWrittenByTheCallerOnly"]
    assert deny["Effect"] == "Deny"
    assert sorted(as_list(deny["Action"])) == ["s3:DeleteObject", "s3:PutObject"]
    assert deny["Resource"] == f"{pipeline}/code/*"
    listing = policy["ArtifactBucketListThesePrefixes"]
    assert listing["Resource"] == BUCKET_ARN
    assert sorted(listing["Condition"]["StringLike"]["s3:prefix"]) == sorted(
        ["datasets/*", "mlops-local-pipeline/*", "datacapture/*", "monitoring/*"]
    )
    for statement in policy.values():
        assert f"{BUCKET_ARN}/*" not in as_list(statement["Resource"]), statement["Sid"]


def test_role_may_describe_the_projects_rollback_alarms_only(default_plan):
    """Deployment guardrails: the execution role must describe an update's rollback alarms
    (developer guide, deployment-guardrails-configuration)."""
    policy = {s["Sid"]: s for s in statements(default_plan[ROLE_POLICY]["policy"])}
    alarms = policy["DescribeRollbackAlarms"]
    assert alarms["Action"] == "cloudwatch:DescribeAlarms"
    assert alarms["Resource"] == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:mlops-local-*"


def test_role_policy_has_no_wildcard_admin(default_plan):
    policy = statements(default_plan[ROLE_POLICY]["policy"])
    for statement in policy:
        actions = as_list(statement["Action"])
        assert "*" not in actions, statement["Sid"]
        assert not any(a.endswith(":*") for a in actions), statement["Sid"]
        if "*" in as_list(statement["Resource"]):
            # Only APIs that IAM cannot scope to a resource may use "*".
            assert set(actions) <= {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}
    unscoped_metrics = next(s for s in policy if s["Sid"] == "JobMetrics")
    assert unscoped_metrics["Condition"] == {
        "StringLike": {
            "cloudwatch:namespace": [
                "/aws/sagemaker/*",
                "aws/sagemaker/Endpoints/data-metrics",
                "aws/sagemaker/Endpoints/model-metrics",
            ]
        }
    }


def test_role_policy_names_the_project_registry_and_pipeline(default_plan):
    policy = {s["Sid"]: s for s in statements(default_plan[ROLE_POLICY]["policy"])}
    registry = as_list(policy["ModelRegistry"]["Resource"])
    assert any(r.endswith(":model-package-group/mlops-local-models") for r in registry)
    pipeline = as_list(policy["OwnPipeline"]["Resource"])
    assert any(r.endswith(":pipeline/mlops-local-pipeline") for r in pipeline)
    pass_role = policy["PassOnlyThisRoleToSageMaker"]
    assert pass_role["Resource"] == "arn:aws:iam::123456789012:role/mlops-local-sagemaker-execution"
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_role_may_use_only_the_bucket_key(default_plan):
    kms_policy = default_plan[KMS_ROLE_POLICY]
    # The key ARN is only known after apply; the statement exists with fixed actions.
    assert kms_policy["name"] == "mlops-local-sagemaker-execution-artifact-key"


def test_full_access_policy_is_opt_in(default_plan, switched_plan):
    assert FULL_ACCESS not in default_plan
    assert (
        switched_plan[FULL_ACCESS]["policy_arn"]
        == "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )


def test_code_repository_switch(default_plan, switched_plan):
    assert default_plan[REPO]["repository_name"] == "mlops-local"
    assert REPO not in switched_plan


def test_model_package_group_is_named_for_the_environment(default_plan):
    group = default_plan["module.model_registry.aws_sagemaker_model_package_group.this"]
    assert group["model_package_group_name"] == "mlops-local-models"


def test_every_documented_output_is_planned(plan_infra: PlanFn):
    outputs = set(plan_infra()["output_changes"])
    assert outputs == {
        "account_id",
        "automation_queue_url",
        "automation_rule_names",
        "bucket_arn",
        "bucket_name",
        "code_repository_clone_url_http",
        "code_repository_clone_url_ssh",
        "code_repository_name",
        "endpoint_names",
        "environment",
        "execution_role_arn",
        "kms_key_arn",
        "model_package_group_arn",
        "model_package_group_name",
        "monitoring_schedule_names",
        "monitoring_topic_arn",
        "name",
        "name_prefix",
        "pipeline_name",
        "pipelines",
        "region",
    }
    planned = plan_infra()["planned_values"]["outputs"]
    assert planned["pipeline_name"]["value"] == "mlops-local-pipeline"
    assert planned["bucket_arn"]["value"] == BUCKET_ARN
    assert planned["name"]["value"] == "mlops-local"


def test_endpoint_and_schedule_names_are_the_ones_the_tasks_build(plan_infra: PlanFn):
    """The outputs the Python side will read; today's builders must give the same names."""
    from pipelines.config.infra_config import InfraConfig
    from pipelines.monitoring.execution import schedule_name
    from pipelines.serving.deploy import endpoint_name

    planned = plan_infra()["planned_values"]["outputs"]
    endpoints = planned["endpoint_names"]["value"]
    schedules = planned["monitoring_schedule_names"]["value"]
    assert endpoints == {
        "default": "mlops-local-endpoint",
        "staging": "mlops-local-staging-endpoint",
        "prod": "mlops-local-prod-endpoint",
    }
    assert schedules == {key: f"{name}-data-quality" for key, name in endpoints.items()}
    config = InfraConfig.from_outputs(
        {
            "region": "us-east-1",
            "account_id": "123456789012",
            "environment": "local",
            "name_prefix": "mlops",
            "bucket_name": "b",
            "bucket_arn": "arn:aws:s3:::b",
            "execution_role_arn": "r",
            "model_package_group_name": "g",
            "model_package_group_arn": "ga",
            "pipeline_name": "p",
            "name": planned["name"]["value"],
            "endpoint_names": endpoints,
            "monitoring_schedule_names": schedules,
        }
    )
    assert endpoints["default"] == endpoint_name(config)
    assert {k: endpoint_name(config, k) for k in ("staging", "prod")} == {
        k: endpoints[k] for k in ("staging", "prod")
    }
    assert schedules["default"] == schedule_name(config)
    assert config.endpoint_names == endpoints
    assert config.monitoring_schedule_names == schedules


def test_switched_off_repository_outputs_are_null(plan_infra: PlanFn):
    planned = plan_infra(**NON_DEFAULT)["planned_values"]["outputs"]
    assert planned["code_repository_name"].get("value") is None
    assert planned["kms_key_arn"].get("value") is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("name_prefix", "Bad_Prefix", "name_prefix must be 2-16 lower-case"),
        ("name_prefix", "a-very-long-project-prefix", "name_prefix must be 2-16 lower-case"),
        ("environment", "Prod!", "environment must be 2-10 lower-case"),
        ("region", "moon-base-1a", "region must be an AWS region code"),
        ("aws_endpoint_url", "http://127.0.0.1:4566", "aws_endpoint_url must be https://127.0.0.1"),
        ("aws_endpoint_url", "https://10.0.0.5:4566", "aws_endpoint_url must be https://127.0.0.1"),
    ],
)
def test_variable_validation_rejects_bad_values(plan_infra: PlanFn, variable, value, message):
    with pytest.raises(tftest.TerraformTestError) as failure:
        plan_infra(**{variable: value})
    assert message in " ".join(str(failure.value).split())
