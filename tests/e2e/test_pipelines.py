"""Several pipelines in one repository, through the tasks as a user drives them: the
built-in abalone pipeline (XGBoost image, built-in algorithm, batch transform) into its own
group, then approve, deploy, predict and monitor it; a third-party module run unmodified by
its file; a dataset with other columns from one configuration block."""

from __future__ import annotations

import csv
import io
import json
import re
import time

import pytest
import yaml

from pipelines.config.settings import PROJECT_ROOT
from pipelines.core.s3io import parse_s3_uri
from pipelines.registry import Registry

pytestmark = pytest.mark.e2e

THIRD_PARTY = "tests/e2e/third_party/pipeline.py:get_pipeline"


def output(result) -> str:
    return f"{result.stdout} {result.stderr}"


def versions(local_stack, group: str) -> list[int]:
    return [v.version for v in Registry(local_stack.stack.connection, group).versions()]


def read_text(local_stack, uri: str) -> str:
    bucket, key = parse_s3_uri(uri)
    s3 = local_stack.stack.connection.client("s3")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def latest(local_stack, pipeline_name: str):
    return local_stack.backend.latest(pipeline_name)


def test_abalone_runs_into_its_own_group_then_deploys_predicts_and_monitors(local_stack, tmp_path):
    abalone = local_stack.config.for_pipeline("abalone")
    assert abalone.model_package_group_name != local_stack.config.model_package_group_name
    housing_before = versions(local_stack, local_stack.config.model_package_group_name)

    run = local_stack.invoke("pipeline-run", "--pipeline", "abalone")
    assert run.returncode == 0, output(run)
    assert "Succeeded" in run.stdout
    execution = latest(local_stack, abalone.pipeline_name)
    steps = {s.name: s for s in local_stack.backend.steps(execution.execution_id)}
    # The built-in algorithm's own metrics, from its log lines.
    assert "validation:rmse" in steps["TrainAbaloneModel"].metrics
    assert versions(local_stack, abalone.model_package_group_name) == [1]
    assert versions(local_stack, local_stack.config.model_package_group_name) == housing_before

    # The batch transform scored every test row: "rings,prediction" per input line, in order.
    test_uri = steps["PreprocessAbaloneData"].properties["ProcessingOutputConfig"]["Outputs"]
    test_prefix = next(o for o in test_uri if o["OutputName"] == "test")["S3Output"]["S3Uri"]
    rows = list(csv.reader(io.StringIO(read_text(local_stack, f"{test_prefix}/test.csv"))))
    out_prefix = steps["TransformAbaloneTest"].properties["TransformOutput"]["S3OutputPath"]
    scored = list(csv.reader(io.StringIO(read_text(local_stack, f"{out_prefix}/test.csv.out"))))
    assert len(scored) == len(rows) == 120
    errors = []
    for row, line in zip(rows, scored, strict=True):
        assert len(line) == 2
        assert float(line[0]) == float(row[0])  # the label, joined back from the input
        errors.append(float(line[1]) - float(row[0]))
    report = json.loads(read_text(local_stack, evaluation_uri(steps)))
    mse = sum(e * e for e in errors) / len(errors)
    # The same model on the same rows: the transform's MSE is the evaluation's.
    assert mse == pytest.approx(report["regression_metrics"]["mse"]["value"], rel=1e-4)

    approved = local_stack.invoke("model-approve", "--pipeline", "abalone", "--reason", "MSE ok")
    assert approved.returncode == 0, output(approved)
    stage = ("--pipeline", "abalone", "--stage", "staging")
    try:
        deployed = local_stack.invoke("deploy", *stage)
        assert deployed.returncode == 0, output(deployed)
        # Beside the housing pipeline's three endpoints: ports of its own.
        assert f":{local_stack.settings.endpoint_port + 3 + 1}/" in deployed.stdout

        features = tmp_path / "abalone-rows.csv"
        baseline = steps["PreprocessAbaloneData"].properties["ProcessingOutputConfig"]["Outputs"]
        prefix = next(o for o in baseline if o["OutputName"] == "baseline")["S3Output"]["S3Uri"]
        features.write_text(read_text(local_stack, f"{prefix}/baseline.csv"))
        predicted = local_stack.invoke("predict", *stage, "--data", str(features), "--limit", "2")
        assert predicted.returncode == 0, output(predicted)
        assert "RMSE" in predicted.stdout

        # The front ships the capture to S3 in the background: monitor until it is there.
        deadline = time.monotonic() + 60
        while True:
            monitored = local_stack.invoke("monitor", *stage)
            assert monitored.returncode == 0, output(monitored)
            if "captured rows" in monitored.stdout or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert "mlops-local-abalone-staging-endpoint (version 1)" in monitored.stdout
        assert "shell_weight" in monitored.stdout

        # The accuracy gate scores the held-out rows the version names in its metadata.
        promoted = local_stack.invoke(
            "promote", "--pipeline", "abalone", "--from", "staging", "--to", "prod",
            "--approved-by", "e2e", "--reason", "gates passed",
        )  # fmt: skip
        assert promoted.returncode == 0, output(promoted)
        assert re.search(r"accuracy\s+│\s+passed", promoted.stdout)
        assert "Promoted version 1 to prod" in promoted.stdout
    finally:
        for where in ("staging", "prod"):
            local_stack.invoke("endpoint-down", "--pipeline", "abalone", "--stage", where)


def evaluation_uri(steps) -> str:
    outputs = steps["EvaluateAbaloneModel"].properties["ProcessingOutputConfig"]["Outputs"]
    prefix = next(o for o in outputs if o["OutputName"] == "evaluation")["S3Output"]["S3Uri"]
    return f"{prefix}/evaluation.json"


def test_a_third_party_module_runs_unmodified_by_its_file(local_stack):
    sample = str(PROJECT_ROOT / "sample_data" / "abalone" / "abalone.csv")
    run = local_stack.invoke(
        "pipeline-run",
        "--pipeline",
        THIRD_PARTY,
        "--data",
        sample,
        "--kwargs",
        '{"processing_instance_type": "ml.m5.large"}',
    )
    assert run.returncode == 0, output(run)
    # Not listed: its own names, derived from its folder, and a group the local stack made.
    derived = local_stack.config.for_pipeline("third-party")
    assert derived.derived
    assert f"{derived.pipeline_name}/execution" in run.stdout
    assert versions(local_stack, derived.model_package_group_name) == [1]

    listed = local_stack.invoke("models", "--pipeline", THIRD_PARTY)
    assert listed.returncode == 0, output(listed)
    assert "Approved" in listed.stdout

    refused = local_stack.invoke(
        "pipeline-run", "--pipeline", THIRD_PARTY, "--kwargs", '{"instance_type": "x"}'
    )
    assert refused.returncode == 1
    assert "takes no argument(s) instance_type" in output(refused)
    executions = local_stack.backend.list_executions(derived.pipeline_name, limit=10)
    typo = local_stack.invoke("pipeline-run", "--pipeline", THIRD_PARTY, "--param", "Aproval=x")
    assert typo.returncode == 1
    assert "Unknown parameter(s) Aproval" in output(typo)
    # Refused before anything ran.
    assert local_stack.backend.list_executions(derived.pipeline_name, limit=10) == executions


def test_a_dataset_with_other_columns_runs_from_one_configuration_block(
    local_stack, diabetes_csv, tmp_path
):
    block = {
        "mlops": {
            "pipelines": {
                "diabetes": {
                    "source": "pipelines.definition.builder:get_pipeline",
                    "data": str(diabetes_csv),
                    "dataset": {
                        "target": "target",
                        "bias_facet": "sex",
                        "bias_facet_threshold": 0.0,
                        "min_test_r2": 0.2,
                    },
                }
            }
        }
    }
    config_file = tmp_path / "diabetes.yaml"
    config_file.write_text(yaml.safe_dump(block))
    run = local_stack.invoke("-f", str(config_file), "pipeline-run", "--pipeline", "diabetes")
    assert run.returncode == 0, output(run)
    assert "Succeeded" in run.stdout
    diabetes = local_stack.config.for_pipeline("diabetes")
    execution = latest(local_stack, diabetes.pipeline_name)
    # No --param: the block's settings are the definition's defaults.
    defaults = {
        p["Name"]: p["DefaultValue"] for p in json.loads(execution.definition)["Parameters"]
    }
    assert defaults["TargetColumn"] == "target"
    assert defaults["BiasFacetColumn"] == "sex"
    assert execution.parameters["TargetColumn"] == "target"
    assert versions(local_stack, diabetes.model_package_group_name) == [1]
