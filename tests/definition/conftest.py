"""A fixed infrastructure config and a session that refuses any AWS call."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from pipelines.config.infra_config import InfraConfig
from pipelines.definition.builder import definition_json, get_pipeline
from pipelines.definition.sdk_session import DefinitionSession
from tests.support import terraform_named

CONFIG = terraform_named(
    InfraConfig(
        region="us-east-1",
        account_id="123456789012",
        environment="local",
        name_prefix="mlops",
        bucket_name="mlops-local-artifacts-123456789012-us-east-1",
        bucket_arn="arn:aws:s3:::mlops-local-artifacts-123456789012-us-east-1",
        execution_role_arn="arn:aws:iam::123456789012:role/mlops-local-sagemaker-execution",
        model_package_group_name="mlops-local-models",
        model_package_group_arn=(
            "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/mlops-local-models"
        ),
        pipeline_name="mlops-local-pipeline",
        kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
)


class AwsCallAttempted(AssertionError):
    pass


def offline_session() -> DefinitionSession:
    """A session whose every HTTP request fails the test: building must not call AWS."""
    boto_session = boto3.Session(region_name=CONFIG.region)

    def refuse(request: Any, **_: Any) -> None:
        raise AwsCallAttempted(f"the build called AWS: {request.method} {request.url}")

    boto_session.events.register("before-send", refuse)
    return DefinitionSession(boto_session, default_bucket=CONFIG.bucket_name)


@pytest.fixture(scope="session")
def definition_text() -> str:
    return definition_json(get_pipeline(CONFIG, offline_session()))


@pytest.fixture(scope="session")
def definition(definition_text: str) -> dict[str, Any]:
    return json.loads(definition_text)
