"""The SageMaker pipeline: preprocess → data checks → train → evaluate → quality gates →
register | fail.

The one module that uses the SageMaker SDK's pipeline classes (steps, parameters,
conditions, models), so that moving to another SDK version touches only it and
``sdk_session.py``. ``get_pipeline(config, session)`` builds the pipeline from the
Terraform outputs without any AWS call; ``definition_json`` gives the exact bytes that
upsert sends to SageMaker and that the local executor runs. The parameters come from
the table in ``parameters.py``; step names from ``names.py``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pipelines.config.infra_config import InfraConfig
from pipelines.core.errors import MlopsError
from pipelines.definition.code_package import CodeBundle, package_code
from pipelines.definition.names import (
    DATA_BIAS_STEP,
    DATA_QUALITY_STEP,
    EVALUATE_STEP,
    EVALUATION_REPORT,
    FAIL_STEP,
    FRAMEWORK_VERSION,
    MODEL_QUALITY_STEP,
    PREPROCESS_STEP,
    PY_VERSION,
    QUALITY_GATE_STEP,
    QUALITY_METRIC_PATH,
    REGISTER_STEP,
    TRAIN_STEP,
    TRAINING_DIR,
)
from pipelines.definition.parameters import BOOLEAN, FLOAT, INTEGER, PARAMETERS, STRING, Param
from pipelines.definition.sdk_session import DefinitionSession, definition_session

from sagemaker import image_uris  # isort: skip  (after pipelines.definition.sdk_session tames the SDK)
from sagemaker.clarify import BiasConfig, DataConfig
from sagemaker.drift_check_baselines import DriftCheckBaselines
from sagemaker.inputs import TrainingInput
from sagemaker.metadata_properties import MetadataProperties
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.model_monitor import DatasetFormat
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.sklearn.estimator import SKLearn
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.check_job_config import CheckJobConfig
from sagemaker.workflow.clarify_check_step import ClarifyCheckStep, DataBiasCheckConfig
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import (
    ParameterBoolean,
    ParameterFloat,
    ParameterInteger,
    ParameterString,
)
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.quality_check_step import (
    DataQualityCheckConfig,
    ModelQualityCheckConfig,
    QualityCheckStep,
)
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

CACHE = CacheConfig(enable_caching=True, expire_after="P30D")

_PROCESSING = "/opt/ml/processing"


_SDK_PARAMETER = {
    STRING: ParameterString,
    INTEGER: ParameterInteger,
    FLOAT: ParameterFloat,
    BOOLEAN: ParameterBoolean,
}


class PipelineParameters(SimpleNamespace):
    """The SDK's parameter objects, by the table's names (``params.NEstimators``)."""

    def as_list(self) -> list[Any]:
        return list(vars(self).values())


def default_input_data_uri(config: InfraConfig) -> str:
    return f"s3://{config.bucket_name}/datasets/sample/boston_housing.csv"


def build_parameters(
    input_data_uri: str, defaults: Mapping[str, Any] | None = None
) -> PipelineParameters:
    """The SDK parameters of the table; the input's default depends on the infrastructure,
    and ``defaults`` (the pipeline's dataset settings in invoke.yaml, typed and checked by
    :func:`pipelines.definition.parameters.typed_defaults`) replace the table's."""
    defaults = {**(defaults or {}), Param.INPUT_DATA: input_data_uri}
    return PipelineParameters(
        **{
            p.name: _SDK_PARAMETER[p.type](p.name, default_value=defaults.get(p.name, p.default))
            for p in PARAMETERS
        }
    )


def parameters_section(
    input_data_uri: str = "", defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The definition's ``Parameters`` section, written by the SDK exactly as in the full
    definition JSON, without a session."""
    section = build_parameters(input_data_uri, defaults).as_list()
    return {"Parameters": [p.to_request() for p in section]}


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
        instance_type=params.ProcessingInstanceType,
        instance_count=params.ProcessingInstanceCount,
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
        inputs=[ProcessingInput(source=params.InputDataUrl, destination=f"{_PROCESSING}/input")],
        outputs=outputs,
        arguments=[
            # Container paths travel as arguments: the local executor remaps /opt/ml.
            f"--input-dir={_PROCESSING}/input",
            f"--output-dir={_PROCESSING}",
            _flag("target-column", params.TargetColumn),
            _flag("feature-columns", params.FeatureColumns),
            _flag("random-state", params.RandomState),
            _flag("bias-facet", params.BiasFacetColumn),
            _flag("bias-facet-threshold", params.BiasFacetThreshold),
            _flag("bias-label-threshold", params.BiasLabelThreshold),
        ],
    )
    return ProcessingStep(name=PREPROCESS_STEP, step_args=step_args, cache_config=CACHE)


def _check_job_config(
    config: InfraConfig, session: DefinitionSession, params: PipelineParameters
) -> CheckJobConfig:
    return CheckJobConfig(
        role=config.execution_role_arn,
        instance_count=1,
        instance_type=params.ProcessingInstanceType,
        volume_size_in_gb=30,
        sagemaker_session=session,
    )


def _joined(*values: Any) -> Join:
    return Join(on="/", values=list(values))


def build_data_quality_step(
    config: InfraConfig,
    session: DefinitionSession,
    params: PipelineParameters,
    preprocess: ProcessingStep,
) -> QualityCheckStep:
    """Model Monitor's data-quality baseline of the training split, checked against the
    latest Approved version's (SageMaker looks it up in the group) before training."""
    train_uri = preprocess.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri
    return QualityCheckStep(
        name=DATA_QUALITY_STEP,
        quality_check_config=DataQualityCheckConfig(
            baseline_dataset=train_uri,
            dataset_format=DatasetFormat.csv(header=True),
            output_s3_uri=_execution_prefix(config, DATA_QUALITY_STEP),
        ),
        check_job_config=_check_job_config(config, session, params),
        skip_check=params.SkipDataQualityCheck,
        register_new_baseline=params.RegisterNewDataQualityBaseline,
        model_package_group_name=config.model_package_group_name,
        cache_config=CACHE,
    )


class ParameterizedClarifyCheckStep(ClarifyCheckStep):
    """A ClarifyCheckStep whose analysis config is a file an earlier step wrote.

    The SDK writes the analysis config while the definition is built and refuses pipeline
    variables in it, so a facet or a label threshold could never be a parameter. The
    Clarify job reads whatever file its ``analysis_config`` input holds, so here that input
    points at the config preprocess.py writes from the parameters; the request is otherwise
    the SDK's own, and valid on SageMaker.
    """

    def __init__(self, *, analysis_config_uri: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.analysis_config_uri = analysis_config_uri

    @property
    def arguments(self) -> dict[str, Any]:
        request = super().arguments
        for item in request["ProcessingInputs"]:
            if item["InputName"] == "analysis_config":
                item["S3Input"]["S3Uri"] = self.analysis_config_uri
        return request


def build_data_bias_step(
    config: InfraConfig,
    session: DefinitionSession,
    params: PipelineParameters,
    preprocess: ProcessingStep,
) -> ClarifyCheckStep:
    """Clarify's pre-training bias metrics of the whole validated dataset for one facet."""
    outputs = preprocess.properties.ProcessingOutputConfig.Outputs
    # The SDK needs literal values to build its (replaced) config; the parameters' defaults.
    data_config = DataConfig(
        # Every validated row (preprocess.py's dataset.csv), not the train split: a rerun
        # with another RandomState checks the same data.
        s3_data_input_path=_joined(outputs["baseline"].S3Output.S3Uri, "dataset.csv"),
        s3_output_path=_execution_prefix(config, DATA_BIAS_STEP),
        s3_analysis_config_output_path=(
            f"s3://{config.bucket_name}/{config.pipeline_name}/clarify/{DATA_BIAS_STEP}"
        ),
        label=params.TargetColumn.default_value,
        dataset_type="text/csv",
    )
    bias_config = BiasConfig(
        label_values_or_threshold=[0.0],
        facet_name=params.BiasFacetColumn.default_value,
        facet_values_or_threshold=[params.BiasFacetThreshold.default_value],
    )
    return ParameterizedClarifyCheckStep(
        name=DATA_BIAS_STEP,
        analysis_config_uri=_joined(outputs["baseline"].S3Output.S3Uri, "analysis_config.json"),
        clarify_check_config=DataBiasCheckConfig(
            data_config=data_config, data_bias_config=bias_config
        ),
        check_job_config=_check_job_config(config, session, params),
        skip_check=params.SkipDataBiasCheck,
        register_new_baseline=params.RegisterNewDataBiasBaseline,
        model_package_group_name=config.model_package_group_name,
        cache_config=CACHE,
    )


def build_model_quality_step(
    config: InfraConfig,
    session: DefinitionSession,
    params: PipelineParameters,
    evaluate: ProcessingStep,
) -> QualityCheckStep:
    """The champion check: the candidate's test-split metrics against the latest Approved
    version's model-quality baseline."""
    predictions = evaluate.properties.ProcessingOutputConfig.Outputs["predictions"].S3Output.S3Uri
    return QualityCheckStep(
        name=MODEL_QUALITY_STEP,
        quality_check_config=ModelQualityCheckConfig(
            baseline_dataset=predictions,
            dataset_format=DatasetFormat.csv(header=True),
            output_s3_uri=_execution_prefix(config, MODEL_QUALITY_STEP),
            problem_type="Regression",
            inference_attribute="prediction",
            ground_truth_attribute="label",
        ),
        check_job_config=_check_job_config(config, session, params),
        skip_check=params.SkipModelQualityCheck,
        register_new_baseline=params.RegisterNewModelQualityBaseline,
        model_package_group_name=config.model_package_group_name,
        cache_config=CACHE,
    )


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
    checks: list[QualityCheckStep | ClarifyCheckStep] | None = None,
) -> TrainingStep:
    estimator = SKLearn(
        entry_point="train.py",
        source_dir=code.s3_uri(config.bucket_name, config.pipeline_name),
        framework_version=FRAMEWORK_VERSION,
        py_version=PY_VERSION,
        role=config.execution_role_arn,
        instance_type=params.TrainingInstanceType,
        instance_count=1,
        output_path=f"s3://{config.bucket_name}/{config.pipeline_name}/models",
        code_location=f"s3://{config.bucket_name}/{config.pipeline_name}/code",
        hyperparameters={
            "n_estimators": params.NEstimators,
            "max_depth": params.MaxDepth,
            "random_state": params.RandomState,
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
    # The data checks gate training: a failed check stops the run before it trains.
    return TrainingStep(
        name=TRAIN_STEP, step_args=step_args, cache_config=CACHE, depends_on=checks or None
    )


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
        instance_type=params.ProcessingInstanceType,
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
                output_name=name,
                source=f"{_PROCESSING}/{name}",
                destination=_execution_prefix(config, EVALUATE_STEP, name),
            )
            for name in ("evaluation", "predictions")
        ],
        arguments=[
            f"--model-dir={_PROCESSING}/model",
            f"--test-dir={_PROCESSING}/test",
            f"--output-dir={_PROCESSING}/evaluation",
            f"--predictions-dir={_PROCESSING}/predictions",
        ],
    )
    step = ProcessingStep(
        name=EVALUATE_STEP, step_args=step_args, property_files=[report], cache_config=CACHE
    )
    return step, report


def _json(uri: Any) -> MetricsSource:
    return MetricsSource(s3_uri=uri, content_type="application/json")


def build_register_step(
    config: InfraConfig,
    session: DefinitionSession,
    params: PipelineParameters,
    code: CodeBundle,
    train: TrainingStep,
    evaluate: ProcessingStep,
    data_quality: QualityCheckStep,
    data_bias: ClarifyCheckStep,
    model_quality: QualityCheckStep,
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
        approval_status=params.ModelApprovalStatus,
        model_metrics=ModelMetrics(
            # evaluation.json is in Model Monitor's model-quality statistics format, and
            # carries the feature names and target that predict reads.
            model_statistics=_json(_joined(evaluation_uri, "evaluation.json")),
            model_constraints=_json(model_quality.properties.CalculatedBaselineConstraints),
            model_data_statistics=_json(data_quality.properties.CalculatedBaselineStatistics),
            model_data_constraints=_json(data_quality.properties.CalculatedBaselineConstraints),
            bias_pre_training=_json(data_bias.properties.CalculatedBaselineConstraints),
        ),
        # What the next run's checks compare against once this version is Approved.
        drift_check_baselines=DriftCheckBaselines(
            model_data_statistics=_json(
                data_quality.properties.BaselineUsedForDriftCheckStatistics
            ),
            model_data_constraints=_json(
                data_quality.properties.BaselineUsedForDriftCheckConstraints
            ),
            bias_pre_training_constraints=_json(
                data_bias.properties.BaselineUsedForDriftCheckConstraints
            ),
            model_statistics=_json(model_quality.properties.BaselineUsedForDriftCheckStatistics),
            model_constraints=_json(model_quality.properties.BaselineUsedForDriftCheckConstraints),
        ),
        description="Random forest regressor trained by the MLOps pipeline.",
        # Lineage in the registry itself: the execution and the code behind a version.
        metadata_properties=MetadataProperties(
            generated_by=ExecutionVariables.PIPELINE_EXECUTION_ARN,
            commit_id=params.GitCommit,
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
                params.MinTestR2,
                "; the model was not registered.",
            ],
        ),
    )
    return ConditionStep(
        name=QUALITY_GATE_STEP,
        conditions=[ConditionGreaterThanOrEqualTo(left=test_r2, right=params.MinTestR2)],
        if_steps=[register],
        else_steps=[fail],
    )


def get_pipeline(
    config: InfraConfig,
    session: DefinitionSession,
    *,
    code: CodeBundle | None = None,
    training_dir: Path = TRAINING_DIR,
    defaults: Mapping[str, Any] | None = None,
) -> Pipeline:
    """The pipeline for this infrastructure; makes no AWS call (the files the SDK would
    upload while building are kept in ``session.uploads``; the definition uses none).
    ``defaults``: parameter defaults of the dataset (invoke.yaml's pipeline entry)."""
    code = code or package_code(training_dir)
    params = build_parameters(default_input_data_uri(config), defaults)
    preprocess = build_preprocess_step(config, session, params, code)
    data_quality = build_data_quality_step(config, session, params, preprocess)
    data_bias = build_data_bias_step(config, session, params, preprocess)
    train = build_train_step(
        config,
        session,
        params,
        code,
        preprocess,
        metric_definitions(training_dir),
        checks=[data_quality, data_bias],
    )
    evaluate, report = build_evaluate_step(config, session, params, code, preprocess, train)
    model_quality = build_model_quality_step(config, session, params, evaluate)
    register = build_register_step(
        config, session, params, code, train, evaluate, data_quality, data_bias, model_quality
    )
    gate = build_quality_gate_step(params, evaluate, report, register)
    return Pipeline(
        name=config.pipeline_name,
        parameters=params.as_list(),
        steps=[preprocess, data_quality, data_bias, train, evaluate, model_quality, gate],
        sagemaker_session=session,
    )


def definition_json(pipeline: Pipeline) -> str:
    """The definition exactly as upsert sends it."""
    return pipeline.definition()


def pretty(definition: str) -> str:
    return json.dumps(json.loads(definition), indent=2, sort_keys=True) + "\n"


def build_definition(
    config: InfraConfig,
    training_dir: Path = TRAINING_DIR,
    defaults: Mapping[str, Any] | None = None,
) -> str:
    """The pretty-printed definition for a review, built with a credential-free session."""
    session = definition_session(config.region, config.bucket_name)
    pipeline = get_pipeline(config, session, training_dir=training_dir, defaults=defaults)
    return pretty(definition_json(pipeline))
