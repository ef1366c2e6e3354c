"""The quality gates end to end on the sample data: checks against the latest Approved
version's baselines, a drifted feature, a skipped check, and a worse champion."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.config.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
CHECKS = ("CheckDataQuality", "CheckDataBias", "CheckModelQualityBaseline")


def approve_latest(local_stack) -> str:
    sagemaker = local_stack.stack.connection.client("sagemaker")
    described = [
        sagemaker.describe_model_package(ModelPackageName=arn)
        for arn in local_stack.model_packages()
    ]
    latest = max(described, key=lambda p: p["ModelPackageVersion"])
    sagemaker.update_model_package(
        ModelPackageArn=latest["ModelPackageArn"], ModelApprovalStatus="Approved"
    )
    return latest["ModelPackageArn"]


@pytest.fixture
def approved_good_model(local_stack) -> str:
    """The sample's default model, registered and Approved: the champion."""
    execution = local_stack.run()
    assert execution.status == "Succeeded", execution.failure_reason
    return approve_latest(local_stack)


@pytest.fixture
def drifted_csv(tmp_path):
    frame = pd.read_csv(SAMPLE)
    path = tmp_path / "boston_rm_x3.csv"
    frame.assign(rm=frame["rm"] * 3).to_csv(path, index=False)
    return path


def test_an_unchanged_rerun_passes_every_check(local_stack, approved_good_model):
    execution = local_stack.run()
    assert execution.status == "Succeeded", execution.failure_reason
    steps = local_stack.steps(execution)
    for name in CHECKS:
        properties = steps[name].properties
        assert properties["ViolationCount"] == 0, name
        assert approved_good_model in properties["BaselineSource"], name
    assert steps["Register-RegisterModel"].status == "Succeeded"
    listing = local_stack.invoke("models")
    assert listing.returncode == 0, listing.stderr
    assert "data, bias, model" in listing.stdout
    assert "3 passed" in listing.stdout  # counted here; each one in execution-show
    shown = local_stack.invoke("execution-show", "--execution", execution.execution_id)
    assert "CheckDataQuality: passed, 0 violation(s); baseline kept" in shown.stdout


def test_a_feature_scaled_three_times_fails_the_data_quality_check(
    local_stack, approved_good_model, drifted_csv
):
    before = local_stack.model_packages()
    execution = local_stack.run(data=str(drifted_csv))
    assert execution.status == "Failed"
    reason = execution.failure_reason
    assert reason.startswith("Step CheckDataQuality failed:")
    assert "- rm: baseline_drift_check: Baseline drift distance" in reason
    steps = local_stack.steps(execution)
    assert "TrainModel" not in steps  # the gate is before training
    shown = local_stack.invoke("execution-show", "--execution", execution.execution_id)
    assert "- rm: baseline_drift_check: Baseline drift distance" in shown.stdout
    assert local_stack.model_packages() == before


def test_the_same_drift_passes_when_the_check_is_skipped(
    local_stack, approved_good_model, drifted_csv
):
    execution = local_stack.run(["SkipDataQualityCheck=true"], data=str(drifted_csv))
    assert execution.status == "Succeeded", execution.failure_reason
    quality = local_stack.steps(execution)["CheckDataQuality"].properties
    assert quality["SkipCheck"] is True
    # Skipped without RegisterNewDataQualityBaseline: the champion's baseline is kept.
    assert approved_good_model in quality["BaselineSource"]


def test_a_worse_model_than_the_approved_one_fails_the_model_quality_check(
    local_stack, approved_good_model
):
    before = local_stack.model_packages()
    # MinTestR2=0 keeps the absolute gate out of the way: the champion check alone decides.
    execution = local_stack.run(["NEstimators=1", "MaxDepth=1", "MinTestR2=0"])
    assert execution.status == "Failed"
    reason = execution.failure_reason
    assert reason.startswith("Step CheckModelQualityBaseline failed:")
    assert "- rmse: GreaterThanThreshold: Metric rmse with" in reason
    # The threshold is the champion's own value (Model Monitor's suggestion, no band).
    assert "(local check: a value equal to the threshold passes; the baseline's value was" in reason
    assert "- r2: LessThanThreshold" in reason
    assert local_stack.model_packages() == before


def test_a_rerun_with_another_seed_checks_the_same_data_as_the_champion(
    local_stack, approved_good_model
):
    """Another RandomState on the same data: a new split and a new forest. The data checks
    see the same data (no drift: Deequ's distance, not bucket interpolation; bias over every
    row, not one split) and pass. The model-quality check is Model Monitor's champion rule,
    each metric against the champion's own value (developer guide,
    model-monitor-model-quality-metrics): this seed's forest does worse on its test split
    (RMSE about 3.4 against 3.0), so it fails there, as on SageMaker, and registers nothing."""
    before = local_stack.model_packages()
    execution = local_stack.run(["RandomState=3"])
    steps = local_stack.steps(execution)
    for name in ("CheckDataQuality", "CheckDataBias"):
        assert steps[name].status == "Succeeded", steps[name].failure_reason
        assert steps[name].properties["ViolationCount"] == 0, name
        assert approved_good_model in steps[name].properties["BaselineSource"], name
    assert execution.status == "Failed"
    assert execution.failure_reason.startswith("Step CheckModelQualityBaseline failed:")
    assert "- rmse: GreaterThanThreshold" in execution.failure_reason
    assert local_stack.model_packages() == before
