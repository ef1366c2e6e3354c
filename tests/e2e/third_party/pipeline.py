"""A pipeline module as a team brings it: AWS's template convention, nothing of this project.

``get_pipeline(region, role, default_bucket, ...)`` builds its own boto3 session and
SageMaker sessions; its script path is relative to the repository root (as the templates'
``source_scripts/...``); it registers with the SDK's older ``RegisterModel`` step
collection. The e2e test runs it unmodified with
``invoke pipeline-run --pipeline tests/e2e/third_party/pipeline.py:get_pipeline``.
"""

import boto3
import sagemaker
import sagemaker.session
from sagemaker import image_uris
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.processing import ProcessingOutput
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.parameters import ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.step_collections import RegisterModel
from sagemaker.workflow.steps import ProcessingStep, TrainingStep


def get_pipeline(
    region,
    role=None,
    default_bucket=None,
    model_package_group_name="ShellsPackageGroup",
    pipeline_name="ShellsPipeline",
    base_job_prefix="Shells",
    processing_instance_type="ml.m5.xlarge",
):
    boto_session = boto3.Session(region_name=region)
    sagemaker_client = boto_session.client("sagemaker")
    session = PipelineSession(
        boto_session=boto_session, sagemaker_client=sagemaker_client, default_bucket=default_bucket
    )
    if role is None:
        role = sagemaker.session.get_execution_role(session)

    input_data = ParameterString(
        name="InputDataUrl", default_value=f"s3://{session.default_bucket()}/shells.csv"
    )
    approval = ParameterString(name="ModelApprovalStatus", default_value="Approved")

    processor = SKLearnProcessor(
        framework_version="1.2-1",
        instance_type=processing_instance_type,
        instance_count=1,
        base_job_name=f"{base_job_prefix}-prepare",
        role=role,
        sagemaker_session=session,
    )
    step_prepare = ProcessingStep(
        name="PrepareShells",
        step_args=processor.run(
            outputs=[
                ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
                ProcessingOutput(output_name="validation", source="/opt/ml/processing/validation"),
            ],
            code="tests/e2e/third_party/source_scripts/prepare.py",
            arguments=["--input-data", input_data],
        ),
    )

    image_uri = image_uris.retrieve("xgboost", region=region, version="1.7-1")
    estimator = Estimator(
        image_uri=image_uri,
        instance_type="ml.m5.xlarge",
        instance_count=1,
        output_path=f"s3://{session.default_bucket()}/{base_job_prefix}/models",
        role=role,
        sagemaker_session=session,
    )
    estimator.set_hyperparameters(objective="reg:squarederror", num_round=20, max_depth=4)
    outputs = step_prepare.properties.ProcessingOutputConfig.Outputs
    step_train = TrainingStep(
        name="TrainShells",
        step_args=estimator.fit(
            inputs={
                "train": TrainingInput(outputs["train"].S3Output.S3Uri, content_type="text/csv"),
                "validation": TrainingInput(
                    outputs["validation"].S3Output.S3Uri, content_type="text/csv"
                ),
            }
        ),
    )
    step_register = RegisterModel(
        name="RegisterShells",
        estimator=estimator,
        model_data=step_train.properties.ModelArtifacts.S3ModelArtifacts,
        content_types=["text/csv"],
        response_types=["text/csv"],
        inference_instances=["ml.m5.large"],
        transform_instances=["ml.m5.large"],
        model_package_group_name=model_package_group_name,
        approval_status=approval,
    )
    return Pipeline(
        name=pipeline_name,
        parameters=[input_data, approval],
        steps=[step_prepare, step_train, step_register],
        sagemaker_session=session,
    )
