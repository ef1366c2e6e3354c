"""A third-party ``get_pipeline`` module builds with its own ``boto3.Session(region_name=...)``
(AWS's project templates do): inside ``local_aws_environment`` the SDK sessions made from it,
the STS endpoint the SDK computes itself included, reach the emulator."""

from __future__ import annotations

import json
import os

import boto3
from sagemaker.processing import ProcessingInput
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import ProcessingStep

import pipelines.definition.sdk_session  # noqa: F401 - the SDK without telemetry, as the catalog loads it
from pipelines.emulator.aws_proxy import local_aws_environment

ROLE = "arn:aws:iam::123456789012:role/test"


def get_pipeline(region: str, role: str, code: str) -> Pipeline:
    """What a template's module does: its own session from a plain boto3 session, no bucket
    given (the SDK asks STS for the account to name its default bucket)."""
    boto_session = boto3.Session(region_name=region)
    session = PipelineSession(
        boto_session=boto_session, sagemaker_client=boto_session.client("sagemaker")
    )
    processor = SKLearnProcessor(
        framework_version="1.2-1",
        role=role,
        instance_type="ml.m5.large",
        instance_count=1,
        sagemaker_session=session,
    )
    step = ProcessingStep(
        name="Preprocess",
        step_args=processor.run(
            code=code,
            inputs=[
                ProcessingInput(source="s3://somewhere/raw", destination="/opt/ml/processing/in")
            ],
        ),
    )
    return Pipeline(name="third-party", steps=[step], sagemaker_session=session)


def test_a_template_module_builds_against_the_emulator_with_its_own_sessions(
    emulator_connection, tmp_path
):
    code = tmp_path / "preprocess.py"
    code.write_text("print('preprocess')\n")
    before = dict(os.environ)
    with local_aws_environment(emulator_connection):
        definition = json.loads(get_pipeline("us-east-1", ROLE, str(code)).definition())
    assert dict(os.environ) == before

    # The SDK named its default bucket after the account STS gave it (the emulator's), and
    # uploaded the script there.
    uri = definition["Steps"][0]["Arguments"]["ProcessingInputs"][-1]["S3Input"]["S3Uri"]
    assert uri.startswith("s3://sagemaker-us-east-1-123456789012/")
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = emulator_connection.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == b"print('preprocess')\n"
