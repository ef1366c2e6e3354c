"""A console over the session's emulator: a model package group and a bucket of their own
per test, versions registered with the SageMaker API and evaluation reports built by
training/evaluate.py, deployment records written by the deployers' store. Only how the
stack is found is replaced (Terraform's outputs are the config below); every action the
pages call runs as the tasks run it."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.console.source import Source
from pipelines.core.aws import AwsConnection
from pipelines.registry import ModelVersion, Registry
from pipelines.stack.stacks import Stack
from tests.support import terraform_named

ACCOUNT = "123456789012"
FEATURES = ["crim", "rm"]


def _evaluate_module():
    spec = importlib.util.spec_from_file_location(
        "console_evaluate", PROJECT_ROOT / "training" / "evaluate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class ConsoleStack:
    source: Source
    config: InfraConfig
    connection: AwsConnection
    register: Callable[..., ModelVersion]

    @property
    def registry(self) -> Registry:
        return Registry(self.connection, self.config.model_package_group_name)


@pytest.fixture
def console_stack(
    tmp_settings: Settings, emulator_connection: AwsConnection, monkeypatch: pytest.MonkeyPatch
) -> ConsoleStack:
    name = f"console{uuid.uuid4().hex[:8]}"
    config = terraform_named(
        InfraConfig(
            region="us-east-1",
            account_id=ACCOUNT,
            environment="local",
            name_prefix=name,
            bucket_name=name,
            bucket_arn=f"arn:aws:s3:::{name}",
            execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/{name}",
            model_package_group_name=f"{name}-models",
            model_package_group_arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/{name}-models",
            pipeline_name=f"{name}-pipeline",
        )
    )
    s3 = emulator_connection.client("s3")
    s3.create_bucket(Bucket=config.bucket_name)
    sagemaker = emulator_connection.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=config.model_package_group_name)

    def open_stack(self, settings, deployment, **_):
        return Stack(settings, deployment, None, emulator_connection)  # type: ignore[arg-type]

    monkeypatch.setattr("pipelines.targets.LocalTarget.open_stack", open_stack)
    monkeypatch.setattr("pipelines.targets.read_infra_config", lambda stack: config)
    evaluate = _evaluate_module()
    rng = np.random.default_rng(7)
    truth = rng.normal(22.0, 9.0, 200)

    def register(noise: float = 3.0) -> ModelVersion:
        """A version whose predictions miss by ``noise`` (more noise, worse metrics)."""
        predicted = truth + rng.normal(0.0, noise, truth.size)
        report = evaluate.build_report(truth, predicted, "medv", FEATURES, 20, 0)
        key = f"reports/{uuid.uuid4().hex}/evaluation.json"
        s3.put_object(Bucket=config.bucket_name, Key=key, Body=json.dumps(report).encode())
        arn = sagemaker.create_model_package(
            ModelPackageGroupName=config.model_package_group_name,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": "sklearn", "ModelDataUrl": f"s3://{name}/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"s3://{config.bucket_name}/{key}",
                    }
                }
            },
        )["ModelPackageArn"]
        return Registry(emulator_connection, config.model_package_group_name).describe(arn)

    source = Source(tmp_settings, Deployment.parse("local"))
    return ConsoleStack(source, config, emulator_connection, register)
