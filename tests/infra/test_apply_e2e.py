"""Apply the real stack to a fresh emulator through the same code the tasks run,
check the resources with boto3, re-plan, then destroy."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from pipelines import targets
from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.pipeline_catalog import PROJECT_PIPELINE, PipelineCatalog
from pipelines.serving import deploy
from pipelines.stack import review as plan_review
from pipelines.stack import stacks as infra

pytestmark = pytest.mark.e2e


def test_apply_check_replan_and_destroy(tmp_settings):
    # Two listed pipelines: the second gets a group of its own.
    listed = {
        "housing": {"source": PROJECT_PIPELINE},
        "abalone": {"source": "pipelines.abalone.pipeline:get_pipeline"},
    }
    tmp_settings = tmp_settings.with_overrides(
        pipelines=PipelineCatalog.load(listed, None, tmp_settings.root)
    )
    deployment = Deployment.parse("local")
    stack = targets.open_stack(tmp_settings, deployment, start_emulator=True)
    try:
        first = infra.infra_up(stack)
        assert first.changed is True
        config = InfraConfig.from_outputs(first.outputs)
        s3 = stack.connection.client("s3")
        iam = stack.connection.client("iam")
        sagemaker = stack.connection.client("sagemaker")
        codecommit = stack.connection.client("codecommit")

        versioning = s3.get_bucket_versioning(Bucket=config.bucket_name)
        assert versioning["Status"] == "Enabled"
        encryption = s3.get_bucket_encryption(Bucket=config.bucket_name)
        default = encryption["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"
        ]
        assert default["SSEAlgorithm"] == "aws:kms"
        assert default["KMSMasterKeyID"] == config.kms_key_arn
        block = s3.get_public_access_block(Bucket=config.bucket_name)
        assert all(block["PublicAccessBlockConfiguration"].values())
        assert len(block["PublicAccessBlockConfiguration"]) == 4
        policy = json.loads(s3.get_bucket_policy(Bucket=config.bucket_name)["Policy"])
        assert "DenyInsecureTransport" in {s["Sid"] for s in policy["Statement"]}

        # The TLS-only policy is enforced by the emulator and still lets HTTPS through.
        s3.put_object(Bucket=config.bucket_name, Key="probe.txt", Body=b"ok")
        s3.put_object(Bucket=config.bucket_name, Key="probe.txt", Body=b"ok again")

        role = iam.get_role(RoleName=config.execution_role_arn.rsplit("/", 1)[-1])["Role"]
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        inline = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
        assert sorted(inline) == [
            "mlops-local-sagemaker-execution-artifact-key",
            "mlops-local-sagemaker-execution-least-privilege",
        ]
        attached = iam.list_attached_role_policies(RoleName=role["RoleName"])
        assert attached["AttachedPolicies"] == []

        repository = codecommit.get_repository(repositoryName=config.code_repository_name)
        assert repository["repositoryMetadata"]["cloneUrlHttp"] == (
            config.code_repository_clone_url_http
        )
        group = sagemaker.describe_model_package_group(
            ModelPackageGroupName=config.model_package_group_name
        )
        assert group["ModelPackageGroupArn"] == config.model_package_group_arn
        assert config.pipeline_key == "housing"
        abalone = config.for_pipeline("abalone")
        assert abalone.derived is False
        group = sagemaker.describe_model_package_group(
            ModelPackageGroupName=abalone.model_package_group_name
        )
        assert group["ModelPackageGroupArn"] == abalone.model_package_group_arn

        second = infra.infra_up(targets.open_stack(tmp_settings, deployment))
        assert second.changed is False
        assert second.outputs == first.outputs

        # A registered model version must not block destroy.
        sagemaker.create_model_package(
            ModelPackageGroupName=config.model_package_group_name,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": "example.com/sklearn:1"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )
        # So must an endpoint that `invoke deploy --target aws` created.
        endpoint = deploy.endpoint_name(config)
        sagemaker.create_model(
            ModelName=f"{endpoint}-v1",
            PrimaryContainer={"Image": "example.com/sklearn:1"},
            ExecutionRoleArn=config.execution_role_arn,
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=f"{endpoint}-v1-20261123000000",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": f"{endpoint}-v1",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
        sagemaker.create_endpoint(
            EndpointName=endpoint, EndpointConfigName=f"{endpoint}-v1-20261123000000"
        )
        # A pipeline run by source, not listed: the local stack gave it a group and a
        # pipeline of its own (not Terraform's), each holding something.
        adhoc = config.for_pipeline("adhoc")
        assert adhoc.derived is True
        sagemaker.create_model_package_group(ModelPackageGroupName=adhoc.model_package_group_name)
        sagemaker.create_model_package(
            ModelPackageGroupName=adhoc.model_package_group_name,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": "example.com/xgboost:1"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )
        sagemaker.create_pipeline(
            PipelineName=adhoc.pipeline_name,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
            RoleArn=config.execution_role_arn,
        )
        # Keep the emulator running after destroy to inspect what is left.
        destroy_stack = targets.open_stack(tmp_settings, deployment)
        destroy_stack.emulator = None
        result = targets.destroy_stack(destroy_stack)
        assert result.objects_deleted == 2  # both versions of the probe
        assert result.model_packages_deleted == 2  # the first pipeline's and adhoc's
        assert result.pipeline_deleted is True
        assert sagemaker.list_pipelines()["PipelineSummaries"] == []
        assert result.endpoints_deleted == 1
        assert sagemaker.list_endpoints()["Endpoints"] == []
        assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
        assert sagemaker.list_models()["Models"] == []

        assert s3.list_buckets()["Buckets"] == []
        assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []
        with pytest.raises(codecommit.exceptions.RepositoryDoesNotExistException):
            codecommit.get_repository(repositoryName=config.code_repository_name)
        assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
        with pytest.raises(ClientError, match="does not exist"):
            sagemaker.describe_model_package_group(
                ModelPackageGroupName=config.model_package_group_name
            )
        key = stack.connection.client("kms").describe_key(KeyId=config.kms_key_arn)
        assert key["KeyMetadata"]["KeyState"] == "PendingDeletion"
        assert destroy_stack.terraform.resource_count() == 0
    finally:
        stack.emulator.stop()


def test_destroy_stops_the_local_emulator(tmp_settings):
    deployment = Deployment.parse("local")
    stack = targets.open_stack(tmp_settings, deployment, start_emulator=True)
    try:
        result = targets.destroy_stack(stack)
        assert result.emulator_stopped is True
        assert not stack.emulator.status().running
        assert not stack.emulator.pid_file.exists()
    finally:
        stack.emulator.stop()


def test_plan_review_writes_every_artifact_for_a_pull_request(tmp_settings):
    stack = targets.open_stack(tmp_settings, Deployment.parse("local"), start_emulator=True)
    try:
        review = plan_review.review_plan(stack)
    finally:
        stack.emulator.stop()
    assert review.has_changes is True
    files = {p.name for p in review.directory.iterdir()}
    assert {"tfplan", "plan.json", "plan.txt", "plan.md", "checkov.json"} <= files
    markdown = (review.directory / "plan.md").read_text()
    # 14 for the bucket, role, registry and repository; 13 for the automation rules,
    # their targets and roles, the agent's queue and the bucket's EventBridge notification;
    # 18 for model monitoring's topic, key and alarms (prediction and 13 features).
    assert "**Plan:** 45 to create." in markdown
    assert "**StartThisPipeline** Allow `sagemaker:StartPipelineExecution`" in markdown
    assert "**DenyInsecureTransport** Deny `s3:*`" in markdown
    assert "**PassOnlyThisRoleToSageMaker** Allow `iam:PassRole`" in markdown
    assert "versioning `Enabled`" in markdown
    # The inline, justified skips in infra/ apply to the plan scan too.
    assert review.checkov.error is None
    assert review.checkov.failed == 0
    assert review.checkov.passed > 0
    assert review.summary.warnings == []
