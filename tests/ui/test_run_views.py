"""The progress view and the run summary, rendered for every execution status."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from rich.console import Console

from pipelines.core.records import Execution, StepRun
from pipelines.ui.run_views import execution_summary, executions_table, report_metrics, steps_table

DEFINITION = json.dumps(
    {
        "Steps": [
            {"Name": "Prep", "Type": "Processing", "Arguments": {}},
            {
                "Name": "Train",
                "Type": "Training",
                "Arguments": {"X": {"Get": "Steps.Prep.ProcessingJobName"}},
            },
            {
                "Name": "Gate",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [
                        {"Type": "Equals", "LeftValue": {"Get": "Steps.Train.X"}, "RightValue": 1}
                    ],
                    "IfSteps": [{"Name": "Register", "Type": "RegisterModel", "Arguments": {}}],
                    "ElseSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {}}],
                },
            },
        ]
    }
)


def render(*renderables) -> str:
    console = Console(record=True, width=160, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    # Table borders out, whitespace collapsed: assertions read the cells in order.
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", console.export_text()).split())


def execution(status: str, **extra) -> Execution:
    return Execution(
        execution_id="abc123def456",
        execution_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc123def456",
        pipeline_name="p",
        status=status,
        created_at=1000.0,
        ended_at=None if status in ("Executing", "Stopping") else 1065.0,
        definition=DEFINITION,
        definition_sha256="f" * 64,
        lineage={
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "git_dirty": True,
            "input_data": {"uri": "s3://b/data.csv", "version_id": "v42"},
        },
        **extra,
    )


def step(name: str, kind: str, status: str, **extra) -> StepRun:
    return StepRun(name=name, type=kind, status=status, started_at=1000.0, ended_at=1010.0, **extra)


def test_executing_shows_running_and_pending_steps():
    steps = [
        step("Prep", "Processing", "Succeeded"),
        StepRun("Train", "Training", "Executing", started_at=1000.0),
    ]
    text = render(steps_table(execution("Executing"), steps))
    assert "p · abc123def456 · Executing" in text
    assert "Prep Processing Succeeded 10.0s" in text
    assert "Train Training Executing" in text
    assert "Gate Condition Pending" in text
    assert "Register RegisterModel Pending" in text


def test_succeeded_summary_has_metrics_outcome_package_links_and_lineage():
    report = {"regression_metrics": {"r2": {"value": 0.8738, "standard_deviation": 0.0312}}}
    steps = [
        step("Prep", "Processing", "Succeeded", cache_hit_of="zzz111yyy222"),
        step(
            "Train",
            "Training",
            "Succeeded",
            metrics={"validation:rmse": 3.15},
            properties={"ModelArtifacts": {"S3ModelArtifacts": "s3://b/model.tar.gz"}},
            property_files={"Report": report},
        ),
        step("Gate", "Condition", "Succeeded", properties={"Outcome": "True"}),
        step(
            "Register",
            "RegisterModel",
            "Succeeded",
            properties={
                "ModelPackageArn": "arn:aws:sagemaker:us-east-1:1:model-package/g/7",
                "ModelPackageVersion": 7,
                "ModelApprovalStatus": "PendingManualApproval",
            },
        ),
    ]
    run = execution("Succeeded")
    table = render(steps_table(run, steps))
    assert "Prep Processing Succeeded 10.0s hit" in table
    assert "Stop Fail Not run" in table
    text = render(*execution_summary(run, steps, [("logs Train", "https://example/logs")]))
    assert "Execution abc123def456 Succeeded in 1m05s" in text
    assert "Train validation:rmse 3.1500" in text
    assert "Train regression_metrics.r2 0.8738 ± 0.0312" in text
    assert "condition Gate → True" in text
    assert "model package version 7, PendingManualApproval (--full shows its ARN)" in text
    full = render(*execution_summary(run, steps, full=True))
    package = "arn:aws:sagemaker:us-east-1:1:model-package/g/7"
    assert f"model package version 7, PendingManualApproval ({package})" in full
    assert "model artifact s3://b/model.tar.gz" in text
    assert "cache hit Prep reused execution zzz111yyy222" in text
    assert "logs Train https://example/logs" in text
    assert "code git 0123456789ab (uncommitted changes)" in text
    assert "data s3://b/data.csv (version v42)" in text


def test_failed_summary_names_the_reason_and_shows_the_log_tail(tmp_path):
    log = tmp_path / "job.log"
    log.write_text(
        "\n".join(f"line {i}" for i in range(30)) + "\nERROR: column 'medv' is missing\n"
    )
    steps = [
        step(
            "Prep",
            "Processing",
            "Failed",
            failure_reason="AlgorithmError: ERROR: column 'medv' is missing",
            log_path=str(log),
        )
    ]
    run = execution(
        "Failed", failure_reason="Step Prep failed: AlgorithmError: ERROR: column 'medv' is missing"
    )
    text = render(steps_table(run, steps), *execution_summary(run, steps))
    assert "Prep Processing Failed" in text
    assert "Train Training Not run" in text
    assert "Failure: Step Prep failed: AlgorithmError: ERROR: column 'medv' is missing" in text
    assert f"Last lines of Prep's log ({log})" in text
    assert "line 29 ERROR: column 'medv' is missing" in text
    assert "line 10" not in text  # only the tail


@pytest.mark.parametrize(
    ("status", "expected"),
    [("Stopped", "resume it with `invoke pipeline-retry`"), ("Stopping", "Stopping")],
)
def test_stopped_and_stopping(status, expected):
    steps = [step("Prep", "Processing", "Stopped" if status == "Stopped" else "Stopping")]
    run = execution(status)
    text = render(steps_table(run, steps), *execution_summary(run, steps))
    assert f"p · abc123def456 · {status}" in text
    assert expected in text


def test_executions_table_lists_status_trigger_data_and_failure():
    long_reason = (
        "Step TrainModel failed: AlgorithmError: ValueError: bad input (exit code 1; log: "
        "/home/someone/.mlops/executions/abc123def456/steps/TrainModel/attempt-1/job.log)"
    )
    runs = [
        execution("Failed", failure_reason="bad data", display_name="new-data-01234567-x"),
        dataclasses.replace(execution("Failed", failure_reason=long_reason), lineage={}),
    ]
    text = render(executions_table(runs))
    assert (
        "abc123def456 Failed 1970-01-01 00:16:40 1m05s new-data data.csv version v42 bad data"
        in (text)
    )
    # In brief: the path is for execution-show.
    assert "1m05s - - Step TrainModel failed: AlgorithmError: ValueError: bad input (exit" in text
    assert "/home/someone" not in text


def test_report_metrics_pairs_values_with_their_spread_and_skips_metadata():
    report = {
        "regression_metrics": {
            "mse": {"value": 8.8, "standard_deviation": 2.3},
            "r2": {"value": 0.87},
        },
        "metadata": {"test_rows": 76},
    }
    assert report_metrics(report) == [
        ("regression_metrics.mse", "8.8000 ± 2.3000"),
        ("regression_metrics.r2", "0.8700"),
    ]


def _long_run() -> tuple[Execution, list[StepRun]]:
    # The real pipeline's step names, whose table was cut at 80 columns in a CI log.
    names = [
        ("PreprocessData", "Processing"),
        ("TrainModel", "Training"),
        ("EvaluateModel", "Processing"),
        ("CheckModelQuality", "Condition"),
        ("Register-RegisterModel", "RegisterModel"),
        ("QualityGateFailed", "Fail"),
    ]
    definition = json.dumps(
        {"Steps": [{"Name": name, "Type": kind, "Arguments": {}} for name, kind in names]}
    )
    steps = [
        step(name, kind, "Succeeded", peak_memory_bytes=180 * 2**20) for name, kind in names[:5]
    ]
    return dataclasses.replace(execution("Succeeded"), definition=definition), steps


@pytest.mark.parametrize("width", [200, 80, 60])
def test_steps_table_never_cuts_a_cell(width):
    # A pipe gets our wide width; a narrow terminal leaves columns out, never a word.
    run, steps = _long_run()
    console = Console(record=True, width=width, color_system=None)
    console.print(steps_table(run, steps))
    text = console.export_text()
    assert "…" not in text
    words = set(re.sub(r"[\u2500-\u257f]", " ", text).split())
    for word in ("duration", "Register-RegisterModel", "CheckModelQuality", "Succeeded"):
        assert word in words
    if width >= 80:
        assert "memory" in words
    if width == 200:
        assert "RegisterModel" in words  # the type column


def test_output_width_is_wide_for_pipes_and_the_terminals_own_for_terminals(tmp_path):
    import io

    from pipelines.ui.console import PIPE_WIDTH, output_width

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert output_width(io.StringIO(), environ={}) == PIPE_WIDTH
    assert output_width(Terminal(), environ={}) is None
    # COLUMNS is the user's explicit choice, honoured by rich itself.
    assert output_width(io.StringIO(), environ={"COLUMNS": "100"}) is None
    with open(tmp_path / "log", "w") as log:
        assert output_width(log, environ={}) == PIPE_WIDTH


def check_step(name: str, **properties) -> StepRun:
    base = {
        "CheckType": "DATA_QUALITY",
        "CalculatedBaselineConstraints": "s3://b/new/constraints.json",
        "BaselineUsedForDriftCheckConstraints": "s3://b/old/constraints.json",
        "BaselineSource": "model package arn:.../3 (the latest Approved version)",
        "ViolationCount": 0,
        "SkipCheck": False,
    }
    return StepRun(name=name, type="QualityCheck", status="Succeeded", properties=base | properties)


def test_models_show_each_versions_baselines_and_check_results():
    from pipelines.registry import ModelVersion
    from pipelines.ui.registry_views import version_checks, versions_table

    steps = [
        check_step("CheckDataQuality"),
        check_step(
            "CheckModelQualityBaseline",
            SkipCheck=True,
            BaselineUsedForDriftCheckConstraints="s3://b/new/constraints.json",
        ),
        StepRun(name="TrainModel", type="Training", status="Succeeded"),
    ]
    checks = version_checks(steps)
    assert checks.splitlines() == [
        "CheckDataQuality: passed, 0 violation(s); baseline kept",
        "CheckModelQualityBaseline: skipped; baseline new",
    ]
    version = ModelVersion(
        arn="arn:aws:sagemaker:us-east-1:1:model-package/g/4",
        version=4,
        status="Approved",
        created_at=0.0,
        drift_baselines=("data", "bias", "model"),
    )
    older = dataclasses.replace(version, version=1, drift_baselines=())
    text = render(versions_table([version, older], {4: {"r2": 0.87}}, {4: steps}))
    assert "data, bias, model" in text
    assert "4 Approved 1970-01-01 00:00 0.8700 - 1 passed, 1 skipped" in text
    assert "1 Approved 1970-01-01 00:00 - - none" in text  # registered before the checks


def test_execution_show_lists_each_violation_and_each_check():
    reason = (
        "Step CheckDataQuality failed: ClientError: DATA_QUALITY check failed: 2 violation(s) "
        "against model package arn:.../3 (the latest Approved version); see s3://b/v.json\n"
        "  - rm: baseline_drift_check: Baseline drift distance: 0.88 exceeds threshold: 0.1\n"
        "  - age: completeness_check: Completeness 0.8 of 'age' is below the baseline's 1"
    )
    failed = StepRun(
        name="CheckDataQuality", type="QualityCheck", status="Failed", failure_reason=reason
    )
    passed = check_step("CheckDataBias")
    text = render(*execution_summary(execution("Failed", failure_reason=reason), [passed, failed]))
    assert "- rm: baseline_drift_check: Baseline drift distance: 0.88" in text
    assert "- age: completeness_check:" in text
    assert "CheckDataBias: passed, 0 violation(s); baseline kept" in text
    assert "(the latest Approved version)" in text


def test_execution_show_lists_parameters_and_marks_those_not_at_their_default():
    definition = json.loads(DEFINITION) | {
        "Parameters": [
            {"Name": "InputDataUrl", "Type": "String"},
            {"Name": "NEstimators", "Type": "Integer", "DefaultValue": 100},
            {"Name": "MinTestR2", "Type": "Float", "DefaultValue": 0.7},
            {"Name": "SkipDataQualityCheck", "Type": "Boolean", "DefaultValue": False},
        ]
    }
    # SageMaker reports every value as a string: "0.70" is still the default 0.7.
    run = execution(
        "Succeeded",
        parameters={
            "InputDataUrl": "s3://b/datasets/abc/data.csv",
            "NEstimators": "250",
            "MinTestR2": "0.70",
            "SkipDataQualityCheck": "True",
        },
    )
    run.definition = json.dumps(definition)
    text = render(*execution_summary(run, []))
    assert "Parameters (2 of 4 not the default):" in text
    assert "NEstimators 250 (default 100)" in text
    assert "SkipDataQualityCheck True (default False)" in text
    assert "MinTestR2 0.70 SkipDataQualityCheck" in text  # at its default: unmarked
    assert "InputDataUrl s3://b/datasets/abc/data.csv NEstimators" in text  # the run's own


def test_a_run_is_compared_with_the_approved_version_metric_by_metric():
    from pipelines.actions.runs import ChampionComparison
    from pipelines.registry import ModelVersion, compare_metrics

    deltas = compare_metrics(
        {"r2": 0.8702, "rmse": 2.90, "mae": 2.1, "explained": 1.0},
        {"r2": 0.8734, "rmse": 2.97, "mae": 2.1},
    )
    assert [(d.name, d.verdict) for d in deltas] == [
        ("r2", "worse"),  # higher R² is better
        ("rmse", "better"),  # lower errors are better
        ("mae", "same"),
    ]
    champion = ModelVersion("arn:g/1", 1, "Approved", 0.0)
    text = render(
        *execution_summary(
            execution("Succeeded"), [], champion=ChampionComparison(champion, deltas)
        )
    )
    assert "Compared with version 1 (Approved)" in text
    assert "r2 0.8702 0.8734 -0.0032 worse" in text
    assert "rmse 2.9000 2.9700 -0.0700 better" in text
