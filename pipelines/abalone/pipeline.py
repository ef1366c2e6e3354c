"""The abalone pipeline, in the shape of AWS's SageMaker project template (model build).

    preprocess (XGBoost image, downloads its input with boto3)
      → data-quality baseline of the training rows
      → train (the XGBoost built-in algorithm: hyperparameters only, no script)
      → evaluate (XGBoost image: test MSE)
      → MSE ≤ MseThreshold ? register + create model + batch transform of the test split
                           : fail

``get_pipeline(region, role, default_bucket, ...)`` is the template's convention
(``run_pipeline.py --module-name ... --kwargs``): it builds its own boto3 session and
SageMaker sessions, and its scripts live beside it. The project supplies the kwargs from
the Terraform outputs (``invoke pipeline-run --pipeline abalone``); on AWS it runs as any
template pipeline does.
"""

from __future__ import annotations

import os

import boto3
import sagemaker
import sagemaker.session
from sagemaker import image_uris
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.model_monitor import DatasetFormat
from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
from sagemaker.transformer import Transformer
from sagemaker.workflow.check_job_config import CheckJobConfig
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionLessThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep, TransformStep

BASE_DIR = os.path.dirname(os.path.realpath(__file__))
XGBOOST_VERSION = "1.7-1"
PROCESSING = "/opt/ml/processing"
CACHE = CacheConfig(enable_caching=True, expire_after="P30D")
# The XGBoost built-in algorithm's hyperparameters (AWS's template uses the same, with the
# objective's current name: reg:linear was renamed reg:squarederror in XGBoost 1.0).
HYPERPARAMETERS = {
    "objective": "reg:squarederror",
    "num_round": 50,
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.7,
}


def get_session(region: str, default_bucket: str | None) -> sagemaker.session.Session:
    boto_session = boto3.Session(region_name=region)
    return sagemaker.session.Session(
        boto_session=boto_session,
        sagemaker_client=boto_session.client("sagemaker"),
        sagemaker_runtime_client=boto_session.client("sagemaker-runtime"),
        default_bucket=default_bucket,
    )


def get_pipeline_session(region: str, default_bucket: str | None) -> PipelineSession:
    boto_session = boto3.Session(region_name=region)
    return PipelineSession(
        boto_session=boto_session,
        sagemaker_client=boto_session.client("sagemaker"),
        default_bucket=default_bucket,
    )


def get_pipeline(
    region: str,
    role: str | None = None,
    default_bucket: str | None = None,
    bucket_kms_id: str | None = None,
    model_package_group_name: str = "AbalonePackageGroup",
    pipeline_name: str = "AbalonePipeline",
    base_job_prefix: str = "Abalone",
    processing_instance_type: str = "ml.m5.large",
    training_instance_type: str = "ml.m5.large",
) -> Pipeline:
    """The abalone pipeline for this account and region; builds without running anything."""
    session = get_session(region, default_bucket)
    if role is None:
        role = sagemaker.session.get_execution_role(session)
    pipeline_session = get_pipeline_session(region, default_bucket)
    bucket = pipeline_session.default_bucket()

    processing_instance_count = ParameterInteger(name="ProcessingInstanceCount", default_value=1)
    model_approval_status = ParameterString(
        name="ModelApprovalStatus", default_value="PendingManualApproval"
    )
    input_data = ParameterString(
        name="InputDataUrl", default_value=f"s3://{bucket}/datasets/sample/abalone.csv"
    )
    mse_threshold = ParameterFloat(name="MseThreshold", default_value=6.0)

    image_uri = image_uris.retrieve(
        framework="xgboost", region=region, version=XGBOOST_VERSION, py_version="py3"
    )

    def processor(name: str, count: object = 1) -> ScriptProcessor:
        return ScriptProcessor(
            image_uri=image_uri,
            command=["python3"],
            instance_type=processing_instance_type,
            instance_count=count,
            base_job_name=f"{base_job_prefix}/{name}",
            sagemaker_session=pipeline_session,
            role=role,
            output_kms_key=bucket_kms_id,
        )

    step_process = ProcessingStep(
        name="PreprocessAbaloneData",
        step_args=processor("preprocess", processing_instance_count).run(
            outputs=[
                ProcessingOutput(output_name=name, source=f"{PROCESSING}/{name}")
                for name in ("train", "validation", "test", "baseline", "holdout")
            ],
            code=os.path.join(BASE_DIR, "preprocess.py"),
            arguments=["--input-data", input_data],
        ),
        cache_config=CACHE,
    )
    outputs = step_process.properties.ProcessingOutputConfig.Outputs

    # The training rows' statistics and constraints, registered with the model: what the
    # endpoint's data-quality monitoring compares captured requests against.
    step_baseline = QualityCheckStep(
        name="BaselineAbaloneData",
        quality_check_config=DataQualityCheckConfig(
            baseline_dataset=Join(
                on="/", values=[outputs["baseline"].S3Output.S3Uri, "baseline.csv"]
            ),
            dataset_format=DatasetFormat.csv(header=True),
            output_s3_uri=f"s3://{bucket}/{base_job_prefix}/baseline",
        ),
        check_job_config=CheckJobConfig(
            role=role,
            instance_count=1,
            instance_type=processing_instance_type,
            sagemaker_session=pipeline_session,
        ),
        # A baseline of this run's data, never a check against an earlier one.
        skip_check=True,
        register_new_baseline=True,
        model_package_group_name=model_package_group_name,
        cache_config=CACHE,
    )

    xgb_train = Estimator(
        image_uri=image_uri,
        instance_type=training_instance_type,
        instance_count=1,
        output_path=f"s3://{bucket}/{base_job_prefix}/AbaloneTrain",
        base_job_name=f"{base_job_prefix}/abalone-train",
        sagemaker_session=pipeline_session,
        role=role,
        output_kms_key=bucket_kms_id,
    )
    xgb_train.set_hyperparameters(**HYPERPARAMETERS)
    step_train = TrainingStep(
        name="TrainAbaloneModel",
        step_args=xgb_train.fit(
            inputs={
                channel: TrainingInput(
                    s3_data=outputs[channel].S3Output.S3Uri, content_type="text/csv"
                )
                for channel in ("train", "validation")
            }
        ),
        cache_config=CACHE,
    )
    model_data = step_train.properties.ModelArtifacts.S3ModelArtifacts

    evaluation_report = PropertyFile(
        name="AbaloneEvaluationReport", output_name="evaluation", path="evaluation.json"
    )
    step_eval = ProcessingStep(
        name="EvaluateAbaloneModel",
        step_args=processor("evaluate").run(
            inputs=[
                ProcessingInput(source=model_data, destination=f"{PROCESSING}/model"),
                ProcessingInput(
                    source=outputs["test"].S3Output.S3Uri, destination=f"{PROCESSING}/test"
                ),
                ProcessingInput(
                    source=outputs["baseline"].S3Output.S3Uri, destination=f"{PROCESSING}/baseline"
                ),
            ],
            outputs=[ProcessingOutput(output_name="evaluation", source=f"{PROCESSING}/evaluation")],
            code=os.path.join(BASE_DIR, "evaluate.py"),
        ),
        property_files=[evaluation_report],
        cache_config=CACHE,
    )
    evaluation_uri = step_eval.properties.ProcessingOutputConfig.Outputs[
        "evaluation"
    ].S3Output.S3Uri

    def json_source(uri: object) -> MetricsSource:
        return MetricsSource(s3_uri=uri, content_type="application/json")

    model = Model(
        image_uri=image_uri,
        model_data=model_data,
        sagemaker_session=pipeline_session,
        role=role,
    )
    step_register = ModelStep(
        name="RegisterAbaloneModel",
        step_args=model.register(
            content_types=["text/csv"],
            response_types=["text/csv"],
            inference_instances=["ml.t2.medium", "ml.m5.large"],
            transform_instances=["ml.m5.large"],
            model_package_group_name=model_package_group_name,
            approval_status=model_approval_status,
            model_metrics=ModelMetrics(
                model_statistics=json_source(
                    Join(on="/", values=[evaluation_uri, "evaluation.json"])
                ),
                model_data_statistics=json_source(
                    step_baseline.properties.CalculatedBaselineStatistics
                ),
                model_data_constraints=json_source(
                    step_baseline.properties.CalculatedBaselineConstraints
                ),
            ),
            description="XGBoost regressor of abalone rings, trained by the built-in algorithm.",
            # The test rows with a header: where `invoke promote`'s accuracy gate finds the
            # held-out data to score through the endpoint (docs/pipelines.md).
            customer_metadata_properties={
                "mlops:held-out-data": Join(
                    on="/", values=[outputs["holdout"].S3Output.S3Uri, "holdout.csv"]
                )
            },
        ),
    )
    step_create_model = ModelStep(
        name="CreateAbaloneModel",
        step_args=model.create(instance_type="ml.m5.large"),
    )
    # Batch transform of the test split: the label is left out of what the model sees
    # (InputFilter) and joined back beside the prediction (JoinSource, OutputFilter), so each
    # output line is "rings,prediction".
    step_transform = TransformStep(
        name="TransformAbaloneTest",
        step_args=Transformer(
            model_name=step_create_model.properties.ModelName,
            instance_type="ml.m5.large",
            instance_count=1,
            output_path=f"s3://{bucket}/{base_job_prefix}/AbaloneTransform",
            accept="text/csv",
            assemble_with="Line",
            strategy="MultiRecord",
            sagemaker_session=pipeline_session,
        ).transform(
            data=outputs["test"].S3Output.S3Uri,
            content_type="text/csv",
            split_type="Line",
            input_filter="$[1:]",
            join_source="Input",
            output_filter="$[0,-1]",
        ),
    )

    step_fail = FailStep(
        name="AbaloneMseTooHigh",
        error_message=Join(on=" ", values=["Test MSE is above the threshold", mse_threshold]),
    )
    step_cond = ConditionStep(
        name="CheckAbaloneMse",
        conditions=[
            ConditionLessThanOrEqualTo(
                left=JsonGet(
                    step_name=step_eval.name,
                    property_file=evaluation_report,
                    json_path="regression_metrics.mse.value",
                ),
                right=mse_threshold,
            )
        ],
        if_steps=[step_register, step_create_model, step_transform],
        else_steps=[step_fail],
    )

    return Pipeline(
        name=pipeline_name,
        parameters=[processing_instance_count, model_approval_status, input_data, mse_threshold],
        steps=[step_process, step_baseline, step_train, step_eval, step_cond],
        sagemaker_session=pipeline_session,
    )
