"""QualityCheck and ClarifyCheck steps in the local executor, on definitions built with the
SDK's own step classes: SageMaker's baseline lifecycle, end to end through the emulator."""

from __future__ import annotations

import contextlib
import io
import json
import re
from typing import Any

import pandas as pd
import pytest

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.core.records import Execution
from pipelines.core.s3io import parse_s3_uri
from pipelines.definition.parameters import resolve_parameters
from pipelines.definition.sdk_session import DefinitionSession, definition_session

from sagemaker.clarify import BiasConfig, DataConfig  # isort: skip
from sagemaker.drift_check_baselines import DriftCheckBaselines
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.model_monitor import DatasetFormat
from sagemaker.workflow.check_job_config import CheckJobConfig
from sagemaker.workflow.clarify_check_step import ClarifyCheckStep, DataBiasCheckConfig
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterBoolean, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
from sagemaker.workflow.steps import CacheConfig

BUCKET = "check-tests"
GROUP = "check-tests"
PIPELINE = "check-tests"
ROLE = "arn:aws:iam::123456789012:role/test"
SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"


def _output(step: str) -> Join:
    return Join(
        on="/", values=["s3:/", BUCKET, "runs", ExecutionVariables.PIPELINE_EXECUTION_ID, step]
    )


def _json(uri: Any) -> MetricsSource:
    return MetricsSource(s3_uri=uri, content_type="application/json")


def build(
    session: DefinitionSession,
    *,
    supplied_statistics: str | None = None,
    supplied_constraints: str | None = None,
    cache: CacheConfig | None = None,
) -> str:
    """Data quality and bias checks of the Data parameter, then registration with their
    baselines, as the SDK's model-build templates wire them."""
    data = ParameterString("Data")
    skip = ParameterBoolean("Skip", default_value=False)
    register_new = ParameterBoolean("RegisterNew", default_value=False)
    job = CheckJobConfig(
        role=ROLE, instance_count=1, instance_type="ml.m5.large", sagemaker_session=session
    )
    quality = QualityCheckStep(
        name="CheckDataQuality",
        quality_check_config=DataQualityCheckConfig(
            baseline_dataset=data,
            dataset_format=DatasetFormat.csv(header=True),
            output_s3_uri=_output("CheckDataQuality"),
        ),
        check_job_config=job,
        skip_check=skip,
        register_new_baseline=register_new,
        model_package_group_name=GROUP,
        supplied_baseline_statistics=supplied_statistics,
        supplied_baseline_constraints=supplied_constraints,
        cache_config=cache,
    )
    bias = ClarifyCheckStep(
        name="CheckDataBias",
        clarify_check_config=DataBiasCheckConfig(
            data_config=DataConfig(
                s3_data_input_path=data,
                s3_output_path=_output("CheckDataBias"),
                s3_analysis_config_output_path=f"s3://{BUCKET}/clarify-config",
                label="medv",
                dataset_type="text/csv",
            ),
            data_bias_config=BiasConfig(
                label_values_or_threshold=[21.2], facet_name="chas", facet_values_or_threshold=[0.5]
            ),
        ),
        check_job_config=job,
        skip_check=skip,
        register_new_baseline=register_new,
        model_package_group_name=GROUP,
        cache_config=cache,
    )
    model = Model(
        image_uri="example/sklearn:1",
        model_data=f"s3://{BUCKET}/model.tar.gz",
        role=ROLE,
        sagemaker_session=session,
    )
    register = ModelStep(
        name="Register",
        step_args=model.register(
            content_types=["text/csv"],
            response_types=["text/csv"],
            inference_instances=["ml.m5.large"],
            transform_instances=["ml.m5.large"],
            model_package_group_name=GROUP,
            approval_status="PendingManualApproval",
            model_metrics=ModelMetrics(
                model_data_statistics=_json(quality.properties.CalculatedBaselineStatistics),
                model_data_constraints=_json(quality.properties.CalculatedBaselineConstraints),
                bias_pre_training=_json(bias.properties.CalculatedBaselineConstraints),
            ),
            drift_check_baselines=DriftCheckBaselines(
                model_data_statistics=_json(quality.properties.BaselineUsedForDriftCheckStatistics),
                model_data_constraints=_json(
                    quality.properties.BaselineUsedForDriftCheckConstraints
                ),
                bias_pre_training_constraints=_json(
                    bias.properties.BaselineUsedForDriftCheckConstraints
                ),
            ),
        ),
    )
    pipeline = Pipeline(
        name=PIPELINE,
        parameters=[data, skip, register_new],
        steps=[quality, bias, register],
        sagemaker_session=session,
    )
    return pipeline.definition()


@pytest.fixture
def backend(tmp_path, emulator_connection) -> LocalBackend:
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    sagemaker = emulator_connection.client("sagemaker")
    # A fresh group per test: no Approved version yet.
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        for page in sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=GROUP
        ):
            for package in page["ModelPackageSummaryList"]:
                sagemaker.delete_model_package(ModelPackageName=package["ModelPackageArn"])
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    settings = Settings(root=tmp_path, state_dir=tmp_path / ".mlops")
    return LocalBackend(settings, emulator_connection)


@pytest.fixture
def put(emulator_connection):
    s3 = emulator_connection.client("s3")

    def upload(key: str, body: bytes) -> str:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return f"s3://{BUCKET}/{key}"

    return upload


@pytest.fixture
def datasets(put) -> dict[str, str]:
    frame = pd.read_csv(SAMPLE)
    drifted = frame.assign(rm=frame["rm"] * 3)
    # Houses on the river only when above the median: the facet's positive share drifts.
    biased = frame[(frame["chas"] == 0) | (frame["medv"] > 21.2)]
    return {
        name: put(f"data/{name}/data.csv", table.to_csv(index=False).encode())
        for name, table in (("good", frame), ("drifted", drifted), ("biased", biased))
    }


def definition(emulator_connection, **options: Any) -> str:
    session = definition_session("us-east-1", BUCKET)
    text = build(session, **options)
    # What the SDK would have uploaded while building (the Clarify analysis config).
    s3 = emulator_connection.client("s3")
    for uri, body in session.uploads.items():
        bucket, key = parse_s3_uri(uri)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return text


def run(backend: LocalBackend, text: str, **parameters: Any) -> Execution:
    """As pipeline-run does: overrides typed against the definition, defaults filled in."""
    overrides = {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in parameters.items()
    }
    typed = resolve_parameters(json.loads(text), overrides)
    execution = backend.start_definition(PIPELINE, text, typed)
    return backend.wait(execution.execution_id, timeout=120)


def steps(backend: LocalBackend, execution: Execution) -> dict:
    return {step.name: step for step in backend.steps(execution.execution_id)}


def read_json(connection, uri: str) -> Any:
    bucket, key = parse_s3_uri(uri)
    body = connection.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.load(io.BytesIO(body))


def packages(connection) -> list[dict]:
    sagemaker = connection.client("sagemaker")
    listed = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    return [sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"]) for p in listed]


def approve_latest(connection) -> str:
    latest = max(packages(connection), key=lambda p: p["ModelPackageVersion"])
    connection.client("sagemaker").update_model_package(
        ModelPackageArn=latest["ModelPackageArn"], ModelApprovalStatus="Approved"
    )
    return latest["ModelPackageArn"]


FIRST_RUN = {"Skip": True, "RegisterNew": True}


def test_without_a_baseline_a_check_fails_unless_skipped_and_registering_a_new_one(
    backend, emulator_connection, datasets
):
    """SageMaker's rule (API reference, QualityCheckStepMetadata): with SkipCheck or
    RegisterNewBaseline false, "the previous baseline of the configured check type must
    be available". The failure names the parameters bound to the switches."""
    text = definition(emulator_connection)
    for switches in ({}, {"Skip": True}, {"RegisterNew": True}):
        failed = run(backend, text, Data=datasets["good"], **switches)
        assert failed.status == "Failed", switches
        assert re.search(r"no DATA_(QUALITY|BIAS) baseline to check against", failed.failure_reason)
        assert "Skip=true and RegisterNew=true" in failed.failure_reason
    assert packages(emulator_connection) == []


def test_first_run_skipping_and_registering_new_registers_the_calculated_baseline(
    backend, emulator_connection, datasets
):
    text = definition(emulator_connection)
    execution = run(backend, text, Data=datasets["good"], **FIRST_RUN)
    assert execution.status == "Succeeded", execution.failure_reason
    checks = steps(backend, execution)
    quality = checks["CheckDataQuality"].properties
    assert quality["CalculatedBaselineStatistics"].endswith("/CheckDataQuality/statistics.json")
    assert quality["CalculatedBaselineConstraints"].endswith("/CheckDataQuality/constraints.json")
    # No Approved version: the calculated baseline is the one registered for the next run.
    assert quality["BaselineUsedForDriftCheckStatistics"] == quality["CalculatedBaselineStatistics"]
    statistics = read_json(emulator_connection, quality["CalculatedBaselineStatistics"])
    assert statistics["dataset"]["item_count"] == 506
    bias = checks["CheckDataBias"].properties
    analysis = read_json(emulator_connection, bias["CalculatedBaselineConstraints"])
    assert "chas" in analysis["pre_training_bias_metrics"]["facets"]
    (package,) = packages(emulator_connection)
    drift = package["DriftCheckBaselines"]
    assert (
        drift["ModelDataQuality"]["Constraints"]["S3Uri"]
        == (quality["CalculatedBaselineConstraints"])
    )
    assert (
        drift["Bias"]["PreTrainingConstraints"]["S3Uri"] == (bias["CalculatedBaselineConstraints"])
    )


def test_a_violation_fails_the_execution_with_the_list_and_registers_nothing(
    backend, emulator_connection, datasets
):
    text = definition(emulator_connection)
    assert run(backend, text, Data=datasets["good"], **FIRST_RUN).status == "Succeeded"
    approved = approve_latest(emulator_connection)
    again = run(backend, text, Data=datasets["good"])
    assert again.status == "Succeeded", again.failure_reason
    assert steps(backend, again)["CheckDataQuality"].properties["ViolationCount"] == 0
    approve_latest(emulator_connection)

    failed = run(backend, text, Data=datasets["drifted"])
    assert failed.status == "Failed"
    reason = failed.failure_reason
    assert reason.startswith("Step CheckDataQuality failed: ClientError: DATA_QUALITY check failed")
    assert "- rm: baseline_drift_check: Baseline drift distance" in reason
    assert "the latest Approved version" in reason
    assert approved.rsplit("/", 1)[0] in reason
    assert steps(backend, failed).get("Register") is None  # never started
    assert len(packages(emulator_connection)) == 2  # the two good runs only
    violations_uri = reason.split("see ", 1)[1].split()[0]
    document = read_json(emulator_connection, violations_uri)
    assert document["violations"][0] == {
        "feature_name": "rm",
        "constraint_check_type": "baseline_drift_check",
        "description": document["violations"][0]["description"],
    }


def test_skip_and_register_new_baseline_follow_sagemakers_lifecycle(
    backend, emulator_connection, datasets
):
    text = definition(emulator_connection)
    first = run(backend, text, Data=datasets["good"], **FIRST_RUN)
    approve_latest(emulator_connection)
    approved_constraints = steps(backend, first)["CheckDataQuality"].properties[
        "CalculatedBaselineConstraints"
    ]

    skipped = run(backend, text, Data=datasets["drifted"], Skip=True)
    assert skipped.status == "Succeeded", skipped.failure_reason
    quality = steps(backend, skipped)["CheckDataQuality"].properties
    # Skipped: no check, and the approved baseline stays the one to register.
    assert quality["ViolationCount"] == 0
    assert quality["BaselineUsedForDriftCheckConstraints"] == approved_constraints
    assert quality["CalculatedBaselineConstraints"] != approved_constraints

    renewed = run(backend, text, Data=datasets["drifted"], Skip=True, RegisterNew=True)
    assert renewed.status == "Succeeded", renewed.failure_reason
    quality = steps(backend, renewed)["CheckDataQuality"].properties
    assert (
        quality["BaselineUsedForDriftCheckConstraints"]
        == (quality["CalculatedBaselineConstraints"])
    )

    # RegisterNewBaseline alone still checks against the approved baseline.
    checked = run(backend, text, Data=datasets["drifted"], RegisterNew=True)
    assert checked.status == "Failed"
    assert "baseline_drift_check" in checked.failure_reason


def test_supplied_baselines_take_priority_over_the_approved_version(
    backend, emulator_connection, datasets
):
    text = definition(emulator_connection)
    assert run(backend, text, Data=datasets["good"], **FIRST_RUN).status == "Succeeded"
    approve_latest(emulator_connection)
    # A baseline of the drifted data itself, supplied in the step.
    renewed = run(backend, text, Data=datasets["drifted"], Skip=True)
    quality = steps(backend, renewed)["CheckDataQuality"].properties
    supplied = definition(
        emulator_connection,
        supplied_statistics=quality["CalculatedBaselineStatistics"],
        supplied_constraints=quality["CalculatedBaselineConstraints"],
    )
    execution = run(backend, supplied, Data=datasets["drifted"])
    assert execution.status == "Succeeded", execution.failure_reason
    properties = steps(backend, execution)["CheckDataQuality"].properties
    assert (
        properties["BaselineUsedForDriftCheckConstraints"]
        == (quality["CalculatedBaselineConstraints"])
    )
    assert properties["BaselineSource"] == "the supplied baseline"


def test_a_bias_drift_fails_the_clarify_check(backend, emulator_connection, datasets):
    text = definition(emulator_connection)
    assert run(backend, text, Data=datasets["good"], **FIRST_RUN).status == "Succeeded"
    approve_latest(emulator_connection)
    execution = run(backend, text, Data=datasets["biased"])
    assert execution.status == "Failed"
    assert "CheckDataBias" in execution.failure_reason
    assert "chas=0.5 DPL: bias_drift_check: Value" in execution.failure_reason
    # Clarify's bias drift violations file (clarify-model-monitor-bias-drift-violations).
    violations_uri = execution.failure_reason.split("see ", 1)[1].split()[0]
    document = read_json(emulator_connection, violations_uri)
    assert document["version"] == "1.0"
    assert {v["constraint_check_type"] for v in document["violations"]} == {"bias_drift_check"}


def test_a_cached_check_is_reused_until_its_baseline_or_its_switches_change(
    backend, emulator_connection, datasets
):
    """Check steps are cached as SageMaker caches them; locally the baseline a check
    compares against is part of the key, so a verdict is never reused against another."""
    text = definition(
        emulator_connection, cache=CacheConfig(enable_caching=True, expire_after="P1D")
    )
    first = run(backend, text, Data=datasets["good"], **FIRST_RUN)
    again = run(backend, text, Data=datasets["good"], **FIRST_RUN)
    assert first.status == again.status == "Succeeded", again.failure_reason
    reused = steps(backend, again)
    assert reused["CheckDataQuality"].cache_hit_of == first.execution_id
    assert reused["CheckDataBias"].cache_hit_of == first.execution_id
    assert (
        reused["CheckDataQuality"].properties
        == steps(backend, first)["CheckDataQuality"].properties
    )

    kept = run(backend, text, Data=datasets["good"], Skip=True, RegisterNew=False)
    assert kept.status == "Failed"  # no baseline to keep: a different request, not a hit

    approve_latest(emulator_connection)  # a baseline to compare against now
    checked = run(backend, text, Data=datasets["drifted"])
    assert checked.status == "Failed"
    drifted_again = run(backend, text, Data=datasets["drifted"])
    assert drifted_again.status == "Failed"  # a failed check is never a cache hit
    after = run(backend, text, Data=datasets["good"])
    assert after.status == "Succeeded", after.failure_reason
    # The same request and data as the first run, but now against the Approved baseline.
    assert steps(backend, after)["CheckDataQuality"].cache_hit_of is None
