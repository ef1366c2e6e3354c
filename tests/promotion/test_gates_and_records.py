"""Promotion's decisions as plain functions: traffic weights, gate figures, settings,
approvals and the history's rollback target. No servers."""

from __future__ import annotations

import dataclasses
import io
import json
from collections import Counter

import boto3
import pandas as pd
import pytest
from botocore.stub import ANY, Stubber

from pipelines.config.promotion_settings import PromotionSettings
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.core.records import StepRun
from pipelines.promotion import gates
from pipelines.promotion.approval import obtain_approval
from pipelines.promotion.promote import (
    PREPROCESS_STEP,
    check_promotion,
    held_out_split_uri,
    recorded_split_uri,
)
from pipelines.registry import ModelVersion
from pipelines.serving.deployment_records import DeploymentRecord, HistoryStore
from pipelines.serving.router import pick_variant, variants_of
from pipelines.targets import resolve_deployment

# --- the shift's weights -------------------------------------------------------------------


def test_weights_split_draws_in_proportion():
    variants = [
        {"address": "a", "version": 1, "weight": 0.9},
        {"address": "b", "version": 2, "weight": 0.1},
    ]
    picked = Counter(pick_variant(variants, i / 1000)["version"] for i in range(1000))
    assert picked == {1: 900, 2: 100}


def test_weights_need_not_sum_to_one_and_zero_weights_get_nothing():
    variants = [
        {"address": "a", "weight": 3},
        {"address": "b", "weight": 1},
        {"address": "c", "weight": 0},
    ]
    picked = Counter(pick_variant(variants, i / 400)["address"] for i in range(400))
    assert picked == {"a": 300, "b": 100}
    assert pick_variant([], 0.5) is None


def test_a_state_without_variants_routes_everything_to_its_upstream():
    assert variants_of({"upstream": "v4.sock", "version": 4}) == [
        {"address": "v4.sock", "version": 4, "weight": 1.0}
    ]
    assert variants_of({}) == []
    shifted = {
        "upstream": "v4.sock",
        "variants": [
            {"address": "v4.sock", "weight": 0.0},
            {"address": "v5.sock", "version": 5, "weight": 1.0},
        ],
    }
    assert [v["address"] for v in variants_of(shifted)] == ["v5.sock"]


# --- gates ----------------------------------------------------------------------------------

ROWS = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.0, 1.0, 0.0, 1.0]})
ACTUAL = [1.0, 2.0, 3.0, 5.0]


def echo_first_column(body: bytes) -> bytes:
    values = [float(line.split(",")[0]) for line in body.decode().splitlines() if line]
    return json.dumps({"predictions": values}).encode()


def test_the_accuracy_gate_passes_when_the_endpoint_scores_the_registered_figures():
    registered = {"rmse": 0.5, "r2": 1 - 1.0 / 8.75}  # residuals 0,0,0,1; mean 2.75
    result = gates.accuracy_gate(ROWS, ACTUAL, echo_first_column, registered, 0.001)
    assert result.passed, result.summary
    assert result.figures["rmse_served"] == pytest.approx(0.5)


def test_the_accuracy_gate_names_the_metric_that_differs():
    registered = {"rmse": 0.4, "r2": 1 - 1.0 / 8.75}
    result = gates.accuracy_gate(ROWS, ACTUAL, echo_first_column, registered, 0.01)
    assert not result.passed
    assert "rmse 0.5000 vs registered 0.4000" in result.summary
    assert "r2" not in result.summary.split("registered 0.4000")[1]


def test_the_accuracy_gate_fails_with_the_reason_when_the_model_fails(tmp_path):
    """A 500 from the model (SageMaker's ModelError) fails the gate with the invoker's
    sentence, so the blocked promotion is recorded rather than ending in an error."""
    log = tmp_path / "model_server.log"

    def failing(body: bytes) -> bytes:
        raise MlopsError(f"The model failed on the request (500 ...); its traceback is in {log}.")

    result = gates.accuracy_gate(ROWS, ACTUAL, failing, {"rmse": 0.5, "r2": 0.9}, 0.01)
    assert not result.passed
    assert result.summary.startswith("the endpoint could not predict the test split: ")
    assert str(log) in result.summary


def test_the_load_gate_reports_p99_against_the_slo_and_every_error():
    calls = Counter()

    def flaky(body: bytes) -> bytes:
        calls["n"] += 1
        if calls["n"] % 10 == 0:
            raise MlopsError("The endpoint refused the request (500): boom")
        return b"{}"

    result = gates.load_gate(ROWS, flaky, requests=50, clients=2, slo_ms=10_000)
    assert not result.passed
    assert result.figures["errors"] == 5
    assert "5 of 50 requests failed (first: The endpoint refused the request (500)" in (
        result.summary
    )
    slow = gates.load_gate(ROWS, echo_first_column, requests=20, clients=2, slo_ms=0.0)
    assert not slow.passed
    assert "is over the SLO of 0 ms" in slow.summary
    fine = gates.load_gate(ROWS, echo_first_column, requests=20, clients=2, slo_ms=10_000)
    assert fine.passed
    assert fine.figures["requests"] == 20


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert gates.percentile(values, 0.99) == 99.0
    assert gates.percentile(values, 0.5) == 50.0
    assert gates.percentile([7.0], 0.99) == 7.0


def test_a_failed_health_check_stops_the_other_gates():
    def never(*_):
        raise AssertionError("must not run")

    results = gates.run_gates(lambda: (False, "not running"), never, never, {}, PromotionSettings())
    assert [r.name for r in results] == ["health", "accuracy", "load", "monitoring"]
    assert [r.passed for r in results] == [False, False, False, False]
    assert "not run" in results[1].summary


def test_the_monitoring_gate_is_skipped_without_a_schedule_and_fails_on_violations():
    assert gates.monitoring_gate(None).skipped
    assert not gates.monitoring_gate(2).passed


# --- settings and arguments, checked before any work ------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"p99_slo_ms": -1}, "promotion.p99_slo_ms in invoke.yaml must be a number from 0"),
        ({"load_requests": 0}, "promotion.load_requests in invoke.yaml must be a whole number"),
        ({"load_clients": 2.5}, "promotion.load_clients in invoke.yaml must be a whole number"),
        ({"metric_tolerance": "x"}, "promotion.metric_tolerance in invoke.yaml must be a number"),
        ({"load_requests": 2, "load_clients": 4}, r"load_clients \(4\) cannot exceed"),
        ({"p99": 5}, r"Unknown promotion setting\(s\) in invoke.yaml: p99"),
        (
            {"source_model_package_group": "dev-models"},
            "promotion.source_model_package_group in invoke.yaml must be a model package group ARN",
        ),
    ],
)
def test_bad_promotion_settings_are_named(tmp_path, values, message):
    settings = dataclasses.replace(Settings.load(None, root=tmp_path, environ={}), promotion=values)
    with pytest.raises(MlopsError, match=message):
        check_promotion(settings, "staging", "prod", None)


@pytest.mark.parametrize(
    ("stages", "strategy", "message"),
    [
        (("staging", "staging"), None, "--from and --to are both 'staging'"),
        (("staging", "qa"), None, "Unknown stage 'qa': use staging or prod"),
        (("staging", "prod"), "rolling", "Unknown deployment strategy 'rolling'"),
    ],
)
def test_bad_promotion_arguments_are_refused(tmp_path, stages, strategy, message):
    settings = Settings.load(None, root=tmp_path, environ={})
    with pytest.raises(MlopsError, match=message):
        check_promotion(settings, *stages, strategy)


def test_a_stage_on_aws_is_its_own_environment():
    assert str(resolve_deployment("aws", None, "prod")) == "aws/prod"
    assert str(resolve_deployment("local", None, "prod")) == "local"
    with pytest.raises(MlopsError, match="cannot be combined with --env dev"):
        resolve_deployment("aws", "dev", "staging")


def test_the_test_split_is_where_the_pipeline_writes_it():
    from pipelines.definition.builder import PREPROCESS_STEP as DEFINED

    assert PREPROCESS_STEP == DEFINED
    version = ModelVersion(
        arn="arn:p/3", version=3, status="Approved", created_at=0,
        execution_arn="arn:aws:sagemaker:us-east-1:1:pipeline/p/execution/abc123",
    )  # fmt: skip
    assert held_out_split_uri("b", "p", version) == "s3://b/p/abc123/PreprocessData/test/test.csv"
    with pytest.raises(MlopsError, match="records no pipeline execution"):
        held_out_split_uri("b", "p", dataclasses.replace(version, execution_arn=None))


# --- approval -------------------------------------------------------------------------------


def test_flags_approve_without_a_terminal_and_must_come_in_pairs():
    approval = obtain_approval("?", approved_by="ci-bot", reason="nightly", interactive=False)
    assert (approval.approved_by, approval.reason, approval.how) == ("ci-bot", "nightly", "flags")
    with pytest.raises(MlopsError, match="needs both --approved-by NAME and --reason TEXT"):
        obtain_approval("?", approved_by="ci-bot", reason=None, interactive=True)
    with pytest.raises(MlopsError, match="run it at a terminal to confirm"):
        obtain_approval("?", approved_by=None, reason=None, interactive=False)


def test_a_person_confirms_and_gives_a_reason():
    answers = iter(["yes", "checked the canary dashboards"])
    approval = obtain_approval(
        "Promote?", approved_by=None, reason=None, interactive=True, ask=lambda _: next(answers)
    )
    assert approval.how == "terminal"
    assert approval.reason == "checked the canary dashboards"
    with pytest.raises(MlopsError, match="Not approved"):
        obtain_approval("?", approved_by=None, reason=None, interactive=True, ask=lambda _: "no")


# --- history, against a stubbed S3 (request validation on) -------------------------------


def record(version: int, outcome: str = "deployed", at: float = 0.0) -> DeploymentRecord:
    return DeploymentRecord(
        stage="prod", endpoint="e", version=version, package_arn=f"arn:p/{version}",
        kind="promote", strategy="canary", outcome=outcome, at=at,
    )  # fmt: skip


def stubbed_history(records: list[DeploymentRecord]) -> tuple[HistoryStore, Stubber]:
    s3 = boto3.Session(region_name="us-east-1").client("s3")
    stubber = Stubber(s3)
    keys = [f"deployments/e/{i:03d}.json" for i in range(len(records))]
    stubber.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": key} for key in reversed(keys)], "IsTruncated": False},
        {"Bucket": "b", "Prefix": "deployments/e/"},
    )
    for key, item in zip(keys, records, strict=True):
        body = io.BytesIO(json.dumps(dataclasses.asdict(item)).encode())
        stubber.add_response("get_object", {"Body": body}, {"Bucket": "b", "Key": key})
    return HistoryStore(s3, "b", "e"), stubber


def test_rollback_goes_to_the_last_other_version_that_was_deployed():
    store, stubber = stubbed_history([record(1), record(2), record(3, "blocked: load"), record(2)])
    with stubber:
        assert store.rollback_target().version == 1


def test_rollback_needs_a_previous_version():
    store, stubber = stubbed_history([record(4), record(5, "failed: x")])
    with stubber, pytest.raises(MlopsError, match="has served only version 4"):
        store.rollback_target()


def test_a_record_is_written_as_json_under_the_stage_prefix():
    s3 = boto3.Session(region_name="us-east-1").client("s3")
    stubber = Stubber(s3)
    stubber.add_response(
        "put_object",
        {},
        {
            "Bucket": "b",
            "Key": "deployments/e/19700101T000100000000Z-v7.json",
            "Body": ANY,
            "ContentType": "application/json",
        },
    )
    with stubber:
        HistoryStore(s3, "b", "e").add(record(7, at=60.0))
    stubber.assert_no_pending_responses()


def test_the_split_comes_from_the_preprocessing_steps_record():
    outputs = {
        "Outputs": [
            {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/p/first/PreprocessData/train"}},
            {"OutputName": "test", "S3Output": {"S3Uri": "s3://b/p/first/PreprocessData/test/"}},
        ]
    }
    # Locally (and for a cache hit) the record carries the job's description.
    cached = StepRun(PREPROCESS_STEP, "Processing", "Succeeded", properties={
        "ProcessingOutputConfig": outputs,
    })  # fmt: skip
    assert recorded_split_uri([cached], None) == "s3://b/p/first/PreprocessData/test/test.csv"
    assert recorded_split_uri([], None) is None
    # On SageMaker the record names the job, which is described (request validated).
    sagemaker = boto3.Session(region_name="us-east-1").client("sagemaker")
    stubber = Stubber(sagemaker)
    stubber.add_response(
        "describe_processing_job",
        {
            "ProcessingJobName": "pre-1",
            "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:1:processing-job/pre-1",
            "ProcessingJobStatus": "Completed",
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 30,
                }
            },
            "AppSpecification": {"ImageUri": "image"},
            "CreationTime": 0,
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "test",
                        "S3Output": {
                            "S3Uri": "s3://b/p/x/PreprocessData/test",
                            "LocalPath": "/opt/ml/processing/test",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
        },
        {"ProcessingJobName": "pre-1"},
    )
    remote = StepRun(PREPROCESS_STEP, "Processing", "Succeeded", properties={
        "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:1:processing-job/pre-1",
    })  # fmt: skip
    with stubber:
        assert recorded_split_uri([remote], sagemaker) == "s3://b/p/x/PreprocessData/test/test.csv"
