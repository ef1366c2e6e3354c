"""`models`, `executions` and `execution-show` at 80 and 200 columns: no word is ever broken.

The vocabulary is the same view rendered so wide that nothing wraps: every token printed at
80 or 200 columns must be one of its whole words. A table may leave a column out at 80
columns (its content is elsewhere); it never folds a word onto two lines or cuts it."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from pipelines.actions.runs import ChampionComparison, Shown
from pipelines.core.records import Execution, StepRun
from pipelines.registry import ModelVersion, compare_metrics
from pipelines.ui.console import print_all
from pipelines.ui.registry_views import versions_table
from pipelines.ui.run_views import execution_view, executions_table

ACCOUNT = "123456789012"
BUCKET = f"mlops-local-artifacts-{ACCOUNT}"
PIPELINE = "mlops-local-pipeline"
STEPS = [
    ("PreprocessData", "Processing"),
    ("CheckDataQuality", "QualityCheck"),
    ("CheckDataBias", "ClarifyCheck"),
    ("TrainModel", "Training"),
    ("EvaluateModel", "Processing"),
    ("CheckModelQualityBaseline", "QualityCheck"),
    ("CheckQuality", "Condition"),
    ("RegisterModel-RegisterModel", "RegisterModel"),
    ("QualityGateFailed", "Fail"),
]
PARAMETERS = [
    {"Name": "InputDataUrl", "Type": "String"},
    {"Name": "NEstimators", "Type": "Integer", "DefaultValue": 100},
    {"Name": "MinTestR2", "Type": "Float", "DefaultValue": 0.7},
    {"Name": "SkipDataQualityCheck", "Type": "Boolean", "DefaultValue": False},
]
REASON = (
    "Step CheckDataQuality failed: ClientError: DATA_QUALITY check failed: 2 violation(s) "
    f"against model package arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/"
    f"{PIPELINE}-models/3 (the latest Approved version); see s3://{BUCKET}/{PIPELINE}/"
    "abc123def456/CheckDataQuality/constraint_violations.json"
)
METRICS = {"r2": 0.8702, "rmse": 3.0412, "mae": 2.1034, "mse": 9.2489}
CHAMPION = {"r2": 0.8734, "rmse": 2.9733, "mae": 2.0981, "mse": 8.8405}


def check(name: str, kind: str, **props) -> StepRun:
    properties = {
        "CheckType": "DATA_QUALITY",
        "CalculatedBaselineConstraints": f"s3://{BUCKET}/new/constraints.json",
        "BaselineUsedForDriftCheckConstraints": f"s3://{BUCKET}/old/constraints.json",
        "BaselineSource": f"model package arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/"
        f"{PIPELINE}-models/3 (the latest Approved version)",
        "ViolationCount": 0,
        "SkipCheck": False,
        **props,
    }
    return StepRun(name, kind, "Succeeded", 1000.0, 1012.5, properties=properties)


def steps(log_path: str) -> list[StepRun]:
    job = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/pipelines-abc123-TrainModel-x1y2"
    report = {
        "regression_metrics": {
            name: {"value": value, "standard_deviation": 0.01} for name, value in METRICS.items()
        }
    }
    return [
        StepRun("PreprocessData", "Processing", "Succeeded", 1000.0, 1010.0, log_path=log_path,
                peak_memory_bytes=180 * 2**20, cache_hit_of="zzz111yyy222"),
        check("CheckDataQuality", "QualityCheck"),
        check("CheckDataBias", "ClarifyCheck", SkipCheck=True),
        StepRun("TrainModel", "Training", "Succeeded", 1010.0, 1040.0, log_path=log_path,
                metrics={"validation:rmse": 3.15, "train:rmse": 1.2},
                properties={"TrainingJobArn": job, "ModelArtifacts": {
                    "S3ModelArtifacts": f"s3://{BUCKET}/{PIPELINE}/abc123def456/TrainModel/"
                    "output/model.tar.gz"}}),
        StepRun("EvaluateModel", "Processing", "Failed", 1040.0, 1050.0, log_path=log_path,
                failure_reason=REASON, property_files={"EvaluationReport": report}),
        StepRun("RegisterModel-RegisterModel", "RegisterModel", "Succeeded", 1050.0, 1051.0,
                properties={"ModelPackageArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:"
                            f"model-package/{PIPELINE}-models/4", "ModelPackageVersion": 4,
                            "ModelApprovalStatus": "PendingManualApproval"}),
    ]  # fmt: skip


def execution(execution_id: str, status: str, failure: str | None = None) -> Execution:
    definition = {
        "Parameters": PARAMETERS,
        "Steps": [{"Name": name, "Type": kind, "Arguments": {}} for name, kind in STEPS],
    }
    return Execution(
        execution_id=execution_id,
        execution_arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/{PIPELINE}/execution/"
        + execution_id,
        pipeline_name=PIPELINE,
        status=status,
        created_at=1_767_000_000.0,
        ended_at=1_767_000_300.0,
        display_name="new-data-0123abcd-dirty-20260304-050607",
        failure_reason=failure,
        parameters={
            "InputDataUrl": f"s3://{BUCKET}/datasets/{'ab' * 32}/boston_housing.csv",
            "NEstimators": 250,
            "MinTestR2": 0.7,
            "SkipDataQualityCheck": False,
        },
        definition=json.dumps(definition),
        definition_sha256="f" * 64,
        lineage={
            "trigger": "new-data",
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "git_dirty": True,
            "input_data": {
                "uri": f"s3://{BUCKET}/datasets/incoming/boston_housing.csv",
                "version_id": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
            },
        },
    )


def version(number: int, status: str, note: str | None = None) -> ModelVersion:
    return ModelVersion(
        arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{PIPELINE}-models/{number}",
        version=number,
        status=status,
        created_at=1_767_000_000.0 + number,
        approval_description=note,
        execution_arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/{PIPELINE}/execution/"
        f"exec{number:08d}",
        commit="0123456789abcdef0123456789abcdef01234567",
        drift_baselines=("data", "bias", "model"),
    )


def models_view(log_path: str) -> list:
    versions = [
        version(4, "PendingManualApproval"),
        version(3, "Approved", "approved by alice at 2026-03-04T05:06:07Z: R² within 0.01 of v2"),
        version(2, "Rejected", "rejected by bob at 2026-03-03T01:02:03Z: CheckDataQualityBaseline"),
    ]
    metrics = {4: METRICS, 3: CHAMPION, 2: {"r2": 0.5, "rmse": 6.1}}
    checks = {4: steps(log_path), 3: steps(log_path), 2: None}
    return [versions_table(versions, metrics, checks, versions[1])]


def executions_view(log_path: str) -> list:
    runs = [
        execution("abc123def456", "Failed", REASON),
        execution("bcd234efa567", "Succeeded"),
        execution("cde345fab678", "Executing"),
    ]
    return [executions_table(runs)]


def show_view(log_path: str) -> list:
    found = steps(log_path)
    champion = ChampionComparison(version(3, "Approved"), compare_metrics(METRICS, CHAMPION))
    links = [("work folder", "/home/someone/project/.mlops/executions/abc123def456")]
    shown = Shown(execution("abc123def456", "Failed", REASON), found, links, champion)
    return execution_view(shown)


def rendered(view: list, width: int) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    print_all(view, to=console)
    return console.export_text()


def words(text: str) -> set[str]:
    return set(re.sub(r"[\u2500-\u257f]", " ", text).split())


@pytest.fixture
def log_path(tmp_path) -> str:
    log = tmp_path / "job.log"
    log.write_text("Traceback (most recent call last):\nValueError: Input contains NaN\n")
    return str(log)


@pytest.mark.parametrize("view", [models_view, executions_view, show_view])
@pytest.mark.parametrize("width", [80, 200])
def test_no_word_is_broken_at_any_width(view, width, log_path):
    whole = words(rendered(view(log_path), 10_000))
    text = rendered(view(log_path), width)
    broken = sorted(words(text) - whole)
    assert broken == [], f"broken or cut words at {width} columns: {broken}\n{text}"
    # Tables fit the width; only whole values (URIs, commands) may run past it, unwrapped.
    for line in text.splitlines():
        if line[:1] in "┏┃┡│└" and line.strip():
            assert len(line) <= width, line


def test_the_word_check_sees_a_folded_word(log_path):
    from rich.table import Table

    table = Table()  # rich's own table: a column too narrow folds its words
    table.add_column("step", overflow="fold")
    table.add_column("checks", overflow="fold")
    table.add_row("PreprocessData", "CheckDataQuality passed")
    whole = words(rendered([table], 10_000))
    assert words(rendered([table], 24)) - whole  # e.g. "CheckDataQu", "ality"


def test_at_80_columns_the_views_keep_what_matters(log_path):
    models = rendered(models_view(log_path), 80)
    for word in ("version", "Pending", "0.8702", "worse", "champion"):
        assert word in words(models), models
    executions = rendered(executions_view(log_path), 80)
    for word in ("abc123def456", "Failed", "CheckDataQuality"):
        assert word in words(executions), executions
    show = rendered(show_view(log_path), 80)
    assert f"s3://{BUCKET}/datasets/{'ab' * 32}/boston_housing.csv" in show  # whole
    assert "invoke logs --execution abc123def456 --step EvaluateModel" in show
