"""The SageMaker pipeline: preprocess → train → evaluate → quality gate → register | fail.

``get_pipeline(config, session)`` builds it from the Terraform outputs without any
AWS call; ``definition_json`` gives the exact bytes that upsert sends to SageMaker
and that the local executor runs. Nothing here is tied to a dataset: the target
and feature columns are parameters.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.code_package import CodeBundle, package_code
from pipelines.errors import MlopsError
from pipelines.infra_config import InfraConfig
from pipelines.sdk import DefinitionSession, definition_session
from pipelines.settings import PROJECT_ROOT

from sagemaker import image_uris  # isort: skip  (after pipelines.sdk tames the SDK)
from sagemaker.inputs import TrainingInput
from sagemaker.metadata_properties import MetadataProperties
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.sklearn.estimator import SKLearn
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

FRAMEWORK_VERSION = "1.2-1"
PY_VERSION = "py3"
TRAINING_DIR = PROJECT_ROOT / "training"

# Step names: the definition's public contract (executors, monitoring, tests).
PREPROCESS_STEP = "PreprocessData"
TRAIN_STEP = "TrainModel"
EVALUATE_STEP = "EvaluateModel"
QUALITY_GATE_STEP = "CheckModelQuality"
REGISTER_STEP = "Register"  # the SDK's ModelStep renders it as "Register-RegisterModel"
FAIL_STEP = "QualityGateFailed"

EVALUATION_REPORT = "EvaluationReport"
QUALITY_METRIC_PATH = "regression_metrics.r2.value"
CACHE = CacheConfig(enable_caching=True, expire_after="P30D")

_PROCESSING = "/opt/ml/processing"


@dataclass(frozen=True)
class PipelineParameters:
    """The run-time parameters, with their defaults; ``--param NAME=VALUE`` overrides."""

    input_data: ParameterString
    target_column: ParameterString
    feature_columns: ParameterString
    processing_instance_type: ParameterString
    processing_instance_count: ParameterInteger
    training_instance_type: ParameterString
    n_estimators: ParameterInteger
    max_depth: ParameterInteger
    random_state: ParameterInteger
    min_test_r2: ParameterFloat
    model_approval_status: ParameterString
    git_commit: ParameterString

    def as_list(self) -> list[Any]:
        return list(vars(self).values())


def default_input_data_uri(config: InfraConfig) -> str:
    return f"s3://{config.bucket_name}/datasets/sample/boston_housing.csv"


def build_parameters(input_data_uri: str) -> PipelineParameters:
    """The parameters; only the input's default depends on the infrastructure."""
    return PipelineParameters(
        input_data=ParameterString("InputDataUrl", default_value=input_data_uri),
        target_column=ParameterString("TargetColumn", default_value="medv"),
        # Empty: every column except the target.
        feature_columns=ParameterString("FeatureColumns", default_value=""),
        processing_instance_type=ParameterString(
            "ProcessingInstanceType", default_value="ml.m5.large"
        ),
        processing_instance_count=ParameterInteger("ProcessingInstanceCount", default_value=1),
        # scikit-learn trains on one instance: the SDK refuses an instance count for it.
        training_instance_type=ParameterString("TrainingInstanceType", default_value="ml.m5.large"),
        n_estimators=ParameterInteger("NEstimators", default_value=100),
        # 0: grow trees until their leaves are pure (scikit-learn's max_depth=None).
        max_depth=ParameterInteger("MaxDepth", default_value=0),
        random_state=ParameterInteger("RandomState", default_value=42),
        min_test_r2=ParameterFloat("MinTestR2", default_value=0.7),
        model_approval_status=ParameterString(
            "ModelApprovalStatus", default_value="PendingManualApproval"
        ),
        # Set by pipeline-run: which code a registered model came from, in the registry.
        git_commit=ParameterString("GitCommit", default_value="unknown"),
    )


def _flag(name: str, value: Any) -> Join:
    """One ``--name=value`` argument: an empty value stays one (empty) argument."""
    return Join(on="", values=[f"--{name}=", value])


def _execution_prefix(config: InfraConfig, *parts: str) -> Join:
    return Join(
        on="/",
        values=[
            "s3:/",
            config.bucket_name,
            config.pipeline_name,
            ExecutionVariables.PIPELINE_EXECUTION_ID,
            *parts,
        ],
    )


def build_preprocess_step(
    config: InfraConfig,
    session: DefinitionSession,
    params: PipelineParameters,
    code: CodeBundle,
) -> ProcessingStep:
    processor = SKLearnProcessor(
        framework_version=FRAMEWORK_VERSION,
        role=config.execution_role_arn,
        instance_type=params.processing_instance_type,
        instance_count=params.processing_instance_count,
        base_job_name="preprocess",
        sagemaker_session=session,
    )
    outputs = [
        ProcessingOutput(
            output_name=name,
            source=f"{_PROCESSING}/{name}",
            destination=_execution_prefix(config, PREPROCESS_STEP, name),
        )
        for name in ("train", "validation", "test", "baseline")
    ]
    step_args = processor.run(
        code=code.s3_uri(config.bucket_name, config.pipeline_name, "preprocess.py"),
        inputs=[ProcessingInput(source=params.input_data, destination=f"{_PROCESSING}/input")],
        outputs=outputs,
        arguments=[
            # Container paths travel as arguments: the local executor remaps /opt/ml.
            f"--input-dir={_PROCESSING}/input",
            f"--output-dir={_PROCESSING}",
            _flag("target-column", params.target_column),
            _flag("feature-columns", params.feature_columns),
            _flag("random-state", params.random_state),
        ],
    )
    return ProcessingStep(name=PREPROCESS_STEP, step_args=step_args, cache_config=CACHE)


def metric_definitions(training_dir: Path = TRAINING_DIR) -> list[dict[str, str]]:
    """The regexes train.py's metric lines match; defined next to the code that prints them."""
    spec = importlib.util.spec_from_file_location("_mlops_train_script", training_dir / "train.py")
    if spec is None or spec.loader is None:
        raise MlopsError(f"Cannot load {training_dir / 'train.py'}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [dict(d) for d in module.METRIC_DEFINITIONS]


def build_train_step(
    config: InfraConfig,
    session: DefinitionSession,
    params: PipelineParameters,
    code: CodeBundle,
    preprocess: ProcessingStep,
    metrics: list[dict[str, str]],
) -> TrainingStep:
    estimator = SKLearn(
        entry_point="train.py",
        source_dir=code.s3_uri(config.bucket_name, config.pipeline_name),
        framework_version=FRAMEWORK_VERSION,
        py_version=PY_VERSION,
        role=config.execution_role_arn,
        instance_type=params.training_instance_type,
        instance_count=1,
        output_path=f"s3://{config.bucket_name}/{config.pipeline_name}/models",
        code_location=f"s3://{config.bucket_name}/{config.pipeline_name}/code",
        hyperparameters={
            "n_estimators": params.n_estimators,
            "max_depth": params.max_depth,
            "random_state": params.random_state,
        },
        metric_definitions=metrics,
        base_job_name="train",
        disable_profiler=True,
        debugger_hook_config=False,
        sagemaker_session=session,
    )
    outputs = preprocess.properties.ProcessingOutputConfig.Outputs
    step_args = estimator.fit(
        inputs={
            channel: TrainingInput(s3_data=outputs[channel].S3Output.S3Uri, content_type="text/csv")
            for channel in ("train", "validation")
        }
    )
    return TrainingStep(name=TRAIN_STEP, step_args=step_args, cache_config=CACHE)


def build_evaluate_step(
    config: InfraConfig,
    session: DefinitionSession,
    params: PipelineParameters,
    code: CodeBundle,
    preprocess: ProcessingStep,
    train: TrainingStep,
) -> tuple[ProcessingStep, PropertyFile]:
    processor = SKLearnProcessor(
        framework_version=FRAMEWORK_VERSION,
        role=config.execution_role_arn,
        instance_type=params.processing_instance_type,
        instance_count=1,
        base_job_name="evaluate",
        sagemaker_session=session,
    )
    report = PropertyFile(name=EVALUATION_REPORT, output_name="evaluation", path="evaluation.json")
    step_args = processor.run(
        code=code.s3_uri(config.bucket_name, config.pipeline_name, "evaluate.py"),
        inputs=[
            ProcessingInput(
                source=train.properties.ModelArtifacts.S3ModelArtifacts,
                destination=f"{_PROCESSING}/model",
            ),
            ProcessingInput(
                source=preprocess.properties.ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri,
                destination=f"{_PROCESSING}/test",
            ),
        ],
        outputs=[
            ProcessingOutput(
                output_name="evaluation",
                source=f"{_PROCESSING}/evaluation",
                destination=_execution_prefix(config, EVALUATE_STEP, "evaluation"),
            )
        ],
        arguments=[
            f"--model-dir={_PROCESSING}/model",
            f"--test-dir={_PROCESSING}/test",
            f"--output-dir={_PROCESSING}/evaluation",
        ],
    )
    step = ProcessingStep(
        name=EVALUATE_STEP, step_args=step_args, property_files=[report], cache_config=CACHE
    )
    return step, report


def build_register_step(
    config: InfraConfig,
    session: DefinitionSession,
    params: PipelineParameters,
    code: CodeBundle,
    preprocess: ProcessingStep,
    train: TrainingStep,
    evaluate: ProcessingStep,
) -> ModelStep:
    image = image_uris.retrieve(
        "sklearn",
        region=config.region,
        version=FRAMEWORK_VERSION,
        py_version=PY_VERSION,
        image_scope="inference",
        instance_type="ml.m5.large",
    )
    evaluation_uri = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri
    baseline_uri = preprocess.properties.ProcessingOutputConfig.Outputs["baseline"].S3Output.S3Uri
    model = Model(
        image_uri=image,
        model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
        # The scikit-learn serving container loads inference.py from the same
        # content-addressed code bundle the training job ran.
        env={
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": code.s3_uri(config.bucket_name, config.pipeline_name),
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_REGION": config.region,
        },
        role=config.execution_role_arn,
        sagemaker_session=session,
    )
    step_args = model.register(
        content_types=["text/csv", "application/json"],
        response_types=["text/csv", "application/json"],
        inference_instances=["ml.t2.medium", "ml.m5.large"],
        transform_instances=["ml.m5.large"],
        model_package_group_name=config.model_package_group_name,
        approval_status=params.model_approval_status,
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(
                s3_uri=Join(on="/", values=[evaluation_uri, "evaluation.json"]),
                content_type="application/json",
            ),
            model_data_statistics=MetricsSource(
                s3_uri=Join(on="/", values=[baseline_uri, "baseline.json"]),
                content_type="application/json",
            ),
        ),
        description="Random forest regressor trained by the MLOps pipeline.",
        # Lineage in the registry itself: the execution and the code behind a version.
        metadata_properties=MetadataProperties(
            generated_by=ExecutionVariables.PIPELINE_EXECUTION_ARN,
            commit_id=params.git_commit,
            repository=config.code_repository_clone_url_http,
        ),
    )
    return ModelStep(name=REGISTER_STEP, step_args=step_args)


def build_quality_gate_step(
    params: PipelineParameters,
    evaluate: ProcessingStep,
    report: PropertyFile,
    register: ModelStep,
) -> ConditionStep:
    test_r2 = JsonGet(step_name=evaluate.name, property_file=report, json_path=QUALITY_METRIC_PATH)
    fail = FailStep(
        name=FAIL_STEP,
        error_message=Join(
            on="",
            values=[
                "Model quality gate failed: test R2 ",
                test_r2,
                " is below the minimum MinTestR2 ",
                params.min_test_r2,
                "; the model was not registered.",
            ],
        ),
    )
    return ConditionStep(
        name=QUALITY_GATE_STEP,
        conditions=[ConditionGreaterThanOrEqualTo(left=test_r2, right=params.min_test_r2)],
        if_steps=[register],
        else_steps=[fail],
    )


def get_pipeline(
    config: InfraConfig,
    session: DefinitionSession,
    *,
    code: CodeBundle | None = None,
    training_dir: Path = TRAINING_DIR,
) -> Pipeline:
    """The pipeline for this infrastructure; makes no AWS call."""
    code = code or package_code(training_dir)
    params = build_parameters(default_input_data_uri(config))
    preprocess = build_preprocess_step(config, session, params, code)
    train = build_train_step(
        config, session, params, code, preprocess, metric_definitions(training_dir)
    )
    evaluate, report = build_evaluate_step(config, session, params, code, preprocess, train)
    register = build_register_step(config, session, params, code, preprocess, train, evaluate)
    gate = build_quality_gate_step(params, evaluate, report, register)
    return Pipeline(
        name=config.pipeline_name,
        parameters=params.as_list(),
        steps=[preprocess, train, evaluate, gate],
        sagemaker_session=session,
    )


def definition_json(pipeline: Pipeline) -> str:
    """The definition exactly as upsert sends it."""
    return pipeline.definition()


def pretty(definition: str) -> str:
    return json.dumps(json.loads(definition), indent=2, sort_keys=True) + "\n"


def build_definition(config: InfraConfig, training_dir: Path = TRAINING_DIR) -> str:
    """The pretty-printed definition for a review, built with a credential-free session."""
    session = definition_session(config.region, config.bucket_name)
    return pretty(definition_json(get_pipeline(config, session, training_dir=training_dir)))
