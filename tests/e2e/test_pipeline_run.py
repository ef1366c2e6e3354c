"""`invoke pipeline-run` end to end on the local target: the real definition, real jobs."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import subprocess
import tarfile
import time

import numpy as np
import pytest

from pipelines.config.settings import PROJECT_ROOT
from pipelines.containers.environments import EnvironmentCache
from pipelines.containers.profiles import profile_for_image
from pipelines.core.errors import MlopsError
from pipelines.core.s3io import parse_s3_uri
from pipelines.definition.parameters import check_arguments
from pipelines.launch import prepare as run
from tests.support import free_port, invoke_task

pytestmark = pytest.mark.e2e


PREDICT = """
import json, runpy, sys
handlers = runpy.run_path(sys.argv[1])
model = handlers["model_fn"](sys.argv[2])
rows = handlers["input_fn"](sys.stdin.read(), "text/csv")
print(json.dumps([float(v) for v in handlers["predict_fn"](rows, model)]))
"""


def predict_in_runtime(image: str, model_dir, features: str, local_stack) -> list[float]:
    profile = profile_for_image(image)
    assert profile is not None, image
    python = EnvironmentCache(local_stack.settings.runtime_cache).ensure(profile).python
    done = subprocess.run(
        [python, "-I", "-c", PREDICT, str(PROJECT_ROOT / "training" / "inference.py"), model_dir],
        input=features,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_pipeline_run_registers_one_model_that_loads_and_predicts(local_stack, tmp_path):
    before = local_stack.model_packages()
    result = local_stack.invoke("pipeline-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Succeeded" in result.stdout
    assert "CheckModelQuality → True" in result.stdout
    assert "regression_metrics.r2" in result.stdout
    assert re.search(r"\(manual-[0-9a-f]{8}(-dirty)?-\d{8}-\d{6}\)", result.stdout)
    assert "Parameters (" in result.stdout
    assert "invoke logs --execution " in result.stdout

    new = sorted(set(local_stack.model_packages()) - set(before))
    assert len(new) == 1
    sagemaker = local_stack.stack.connection.client("sagemaker")
    package = sagemaker.describe_model_package(ModelPackageName=new[0])
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    quality = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert quality.endswith("/evaluation.json")

    bucket, key = parse_s3_uri(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])
    archive = local_stack.stack.connection.client("s3").get_object(Bucket=bucket, Key=key)
    with tarfile.open(fileobj=io.BytesIO(archive["Body"].read())) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    rows = (PROJECT_ROOT / "sample_data" / "boston_housing.csv").read_text().splitlines()[1:4]
    features = "\n".join(",".join(row.split(",")[:-1]) for row in rows)
    # The model loads where SageMaker serves it: the package's inference image's runtime.
    image = package["InferenceSpecification"]["Containers"][0]["Image"]
    predictions = predict_in_runtime(image, tmp_path / "model", features, local_stack)
    assert len(predictions) == 3
    actual = [float(row.split(",")[-1]) for row in rows]
    assert np.all(np.abs(np.asarray(predictions, dtype=float) - actual) < 10)

    pipeline = sagemaker.describe_pipeline(PipelineName=local_stack.config.pipeline_name)
    assert json.loads(pipeline["PipelineDefinition"])["Steps"][0]["Name"] == "PreprocessData"


def test_second_run_is_served_from_cache(local_stack):
    first = local_stack.run()
    second = local_stack.run()
    assert first.status == second.status == "Succeeded"
    steps = local_stack.steps(second)
    cached = ("PreprocessData", "TrainModel", "EvaluateModel")
    checks = ("CheckDataQuality", "CheckDataBias", "CheckModelQualityBaseline")
    for name in (*cached, *checks):
        assert steps[name].cache_hit_of is not None, name
    assert steps["Register-RegisterModel"].status == "Succeeded"


def test_a_changed_hyperparameter_retrains_without_preprocessing_again(local_stack):
    local_stack.run()
    changed = local_stack.run(["NEstimators=60"])
    steps = local_stack.steps(changed)
    assert steps["PreprocessData"].cache_hit_of is not None
    assert steps["TrainModel"].cache_hit_of is None
    assert steps["EvaluateModel"].cache_hit_of is None
    assert steps["TrainModel"].properties["HyperParameters"]["n_estimators"] == "60"


def test_another_dataset_needs_only_parameters(local_stack, diabetes_csv):
    before = set(local_stack.model_packages())
    # Another dataset in the same model group: its own bias facet, and the checks against
    # the Boston versions' baselines skipped (they would rightly fail on every column).
    execution = local_stack.run(
        [
            "TargetColumn=target",
            "MinTestR2=0.2",
            "BiasFacetColumn=sex",
            "BiasFacetThreshold=0",
            "SkipDataQualityCheck=true",
            "SkipDataBiasCheck=true",
            "SkipModelQualityCheck=true",
        ],
        data=str(diabetes_csv),
    )
    assert execution.status == "Succeeded", execution.failure_reason
    steps = local_stack.steps(execution)
    report = steps["EvaluateModel"].property_files["EvaluationReport"]
    assert report["metadata"]["target"] == "target"
    assert "bmi" in report["metadata"]["features"]
    assert len(set(local_stack.model_packages()) - before) == 1
    assert execution.lineage["input_data"]["uri"].endswith("/datasets/diabetes.csv")


BAD_INPUTS = {
    "malformed": ("a,b,medv\n1,2\n3,4,5\n", "is not a valid CSV: line 2 has 2 fields, expected 3"),
    "no-target": ("crim,zn\n" + "1,2\n" * 30, "missing column(s) 'medv' (target)"),
    "text-cells": (
        "x,medv\n" + "1,2\n" * 25 + "abc,3\n",
        "column 'x' has 1 invalid value(s)",
    ),
    "empty": ("", "is empty (0 bytes, 0 data rows)"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_clearly_and_registers_nothing(local_stack, tmp_path, case):
    content, message = BAD_INPUTS[case]
    data = tmp_path / f"{case}.csv"
    data.write_text(content)
    before = local_stack.model_packages()
    result = local_stack.invoke("pipeline-run", "--data", str(data))
    assert result.returncode == 1
    assert "Failed" in result.stdout
    assert message in result.stdout
    assert "Step PreprocessData failed" in result.stdout
    assert local_stack.model_packages() == before


def test_a_model_below_the_threshold_ends_in_the_fail_step(local_stack):
    before = local_stack.model_packages()
    execution = local_stack.run(["MinTestR2=0.99"])
    assert execution.status == "Failed"
    assert execution.failure_reason.startswith("Model quality gate failed: test R2 0.8")
    assert "is below the minimum MinTestR2 0.99" in execution.failure_reason
    steps = local_stack.steps(execution)
    assert steps["QualityGateFailed"].status == "Failed"
    assert "Register-RegisterModel" not in steps
    assert local_stack.model_packages() == before


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("Bogus=1", "Unknown parameter Bogus"),
        ("NEstimators=many", "Parameter NEstimators is an Integer; got 'many'"),
        ("MinTestR2", "Parameter overrides look like NAME=VALUE"),
    ],
)
def test_bad_parameters_are_rejected_before_anything_runs(local_stack, argument, message):
    database = local_stack.settings.state_dir / "executor.db"
    count = sqlite3.connect(database).execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    result = local_stack.invoke("pipeline-run", "--param", argument)
    assert result.returncode == 1
    assert message in result.stderr
    after = sqlite3.connect(database).execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    assert after == count
    with pytest.raises(MlopsError):
        check_arguments([argument], None)


def test_stop_leaves_nothing_registered_and_retry_resumes(local_stack):
    before = local_stack.model_packages()
    # A hyperparameter no other test uses: training really runs and can be stopped.
    overrides = check_arguments(["NEstimators=400"], None)
    prepared = run.prepare_run(local_stack.stack.connection, local_stack.config, overrides, None)
    execution = local_stack.backend.start(prepared)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        train = local_stack.steps(execution).get("TrainModel")
        if train is not None and train.status == "Executing":
            break
        time.sleep(0.05)
    local_stack.backend.stop(execution.execution_id)
    stopped = local_stack.backend.wait(execution.execution_id, timeout=60)
    assert stopped.status == "Stopped"
    assert local_stack.steps(stopped)["TrainModel"].status == "Stopped"
    assert "Register-RegisterModel" not in local_stack.steps(stopped)
    assert local_stack.model_packages() == before

    preprocess = local_stack.steps(stopped)["PreprocessData"]
    local_stack.backend.retry(execution.execution_id)
    resumed = local_stack.backend.wait(execution.execution_id, timeout=300)
    assert resumed.status == "Succeeded", resumed.failure_reason
    steps = local_stack.steps(resumed)
    assert steps["PreprocessData"].started_at == preprocess.started_at
    assert steps["TrainModel"].attempt == 2
    assert len(set(local_stack.model_packages()) - set(before)) == 1


def test_lineage_records_code_data_and_definition(local_stack):
    execution = local_stack.run()
    lineage = execution.lineage
    assert len(lineage["git_commit"]) == 40
    assert isinstance(lineage["git_dirty"], bool)
    assert lineage["input_data"]["version_id"]
    assert len(execution.definition_sha256) == 64


def test_executions_and_execution_show_report_the_runs(local_stack):
    listed = local_stack.invoke("executions", "--limit", "3")
    assert listed.returncode == 0
    latest = local_stack.backend.latest()
    assert latest.execution_id in listed.stdout
    assert "│ manual │" in listed.stdout  # what started it
    shown = local_stack.invoke("execution-show")
    assert shown.returncode == 0
    assert latest.execution_id in shown.stdout
    logged = local_stack.invoke("logs", "--step", "TrainModel")
    assert logged.returncode == 0, logged.stderr
    # The latest run's TrainModel is a cache hit: its log is the run it reused.
    train = next(
        s for s in local_stack.backend.steps(latest.execution_id) if s.name == "TrainModel"
    )
    ran = train.cache_hit_of or latest.execution_id
    reused = (
        f" (a cache hit in {latest.execution_id} reused this run)" if train.cache_hit_of else ""
    )
    assert f"Log of TrainModel in {ran}{reused}:" in logged.stderr
    assert "PreprocessData" in shown.stdout
    assert "definition" in shown.stdout
    # Which runtime each job ran in.
    assert "sklearn 1.2-1 · Python 3.9." in shown.stdout


def test_an_invalid_instance_count_and_type_are_rejected_before_any_step(local_stack):
    before = local_stack.model_packages()
    latest = [e.execution_id for e in local_stack.backend.list_executions(limit=1)]
    # The count's meaning is checked before any slow work, with the other parameters.
    result = local_stack.invoke("pipeline-run", "--param", "ProcessingInstanceCount=0")
    assert result.returncode == 1
    assert "ProcessingInstanceCount=0 must be at least 1" in result.stdout + result.stderr
    assert [e.execution_id for e in local_stack.backend.list_executions(limit=1)] == latest
    # The type is checked by the preflight, against the SageMaker API's own enum.
    result = local_stack.invoke("pipeline-run", "--param", "ProcessingInstanceType=ml.bogus.huge")
    assert result.returncode == 1
    assert "InstanceType: 'ml.bogus.huge' is not one of" in result.stdout + result.stderr
    assert local_stack.steps(local_stack.backend.latest()) == {}
    assert local_stack.model_packages() == before


def test_retry_is_refused_clearly_when_the_emulator_is_down(tmp_path):
    result = invoke_task("pipeline-retry", state_dir=tmp_path, port=free_port())
    assert result.returncode == 1
    assert "The local AWS emulator is not running" in result.stderr
    assert "invoke emulator-up" in result.stderr
