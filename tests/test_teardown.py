"""destroy's reach over several pipelines: Terraform's listed ones and the ones the local
stack ran by source (their groups are not Terraform's), against the emulator."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from pipelines.config.infra_config import InfraConfig
from pipelines.registry import Registry
from pipelines.teardown import (
    LocalTeardown,
    Teardown,
    delete_model_package_group,
    delete_pipeline,
)

NAME = "tdn-local"  # this test's own stack name in the session's shared emulator
ARN = "arn:aws:sagemaker:us-east-1:123456789012"


def listed(stem: str) -> dict[str, object]:
    endpoints = {"default": f"{stem}-endpoint"}
    return {
        "pipeline_name": f"{stem}-pipeline",
        "base_job_prefix": f"{stem}-pipeline",
        "model_package_group_name": f"{stem}-models",
        "model_package_group_arn": f"{ARN}:model-package-group/{stem}-models",
        "endpoint_names": endpoints,
        "monitoring_schedule_names": {k: f"{v}-data-quality" for k, v in endpoints.items()},
    }


CONFIG = InfraConfig.from_outputs(
    {
        "region": "us-east-1",
        "account_id": "123456789012",
        "environment": "local",
        "name_prefix": "tdn",
        "name": NAME,
        "bucket_name": "b",
        "bucket_arn": "arn:aws:s3:::b",
        "execution_role_arn": "arn:aws:iam::123456789012:role/r",
        **{k: v for k, v in listed(NAME).items() if k != "base_job_prefix"},
        "pipelines": {"housing": listed(NAME), "abalone": listed(f"{NAME}-abalone")},
    }
)


@pytest.fixture
def stack_resources(emulator_connection):
    sagemaker = emulator_connection.sagemaker()
    groups = [f"{NAME}-models", f"{NAME}-abalone-models", f"{NAME}-churn-models"]
    groups += [f"x{NAME}-y-models"]  # another stack's, whose name merely contains ours
    for group in groups:
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    sagemaker.create_model_package(
        ModelPackageGroupName=f"{NAME}-churn-models",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "example.com/xgboost:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )
    sagemaker.create_pipeline(
        PipelineName=f"{NAME}-adhoc-pipeline",
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn="arn:aws:iam::123456789012:role/r",
    )
    yield sagemaker
    for group in groups:
        Registry(emulator_connection, group).delete_all()
        delete_model_package_group(emulator_connection, group)
    delete_pipeline(emulator_connection, f"{NAME}-adhoc-pipeline")


def test_local_destroy_reaches_listed_and_unlisted_pipelines(emulator_connection, stack_resources):
    stack = SimpleNamespace(connection=emulator_connection)
    found = LocalTeardown().pipelines(stack, CONFIG)
    assert [(p.pipeline_key, p.derived) for p in found] == [
        ("housing", False),  # the first first
        ("abalone", False),
        ("adhoc", True),  # a pipeline that registered nothing still goes
        ("churn", True),
    ]
    assert [p.model_package_group_name for p in found] == [
        f"{NAME}-models",
        f"{NAME}-abalone-models",
        f"{NAME}-adhoc-models",
        f"{NAME}-churn-models",
    ]
    # On AWS only what Terraform lists: nothing else is known to be this stack's.
    assert [p.pipeline_key for p in Teardown().pipelines(stack, CONFIG)] == ["housing", "abalone"]


def test_an_unlisted_group_is_emptied_then_deleted(emulator_connection, stack_resources):
    group = f"{NAME}-churn-models"
    assert Registry(emulator_connection, group).delete_all() == 1
    assert delete_model_package_group(emulator_connection, group) is True
    with pytest.raises(ClientError):
        stack_resources.describe_model_package_group(ModelPackageGroupName=group)
    assert delete_model_package_group(emulator_connection, group) is False
