"""The SageMaker backend, without AWS: the calls the emulator implements go to it, the
others are stubbed with botocore's Stubber (which validates every request against
the SageMaker API model) or answered at the transport level to exercise retries."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ParamValidationError
from botocore.stub import ANY, Stubber

from pipelines.backends.local import LocalBackend
from pipelines.backends.sagemaker import SageMakerBackend, cloudwatch_logs_url
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.core.records import StepRun
from pipelines.definition.parameters import check_arguments
from pipelines.launch import prepare as run
from tests.support import terraform_named

ACCOUNT = "123456789012"
PIPELINE = "aws-backend-pipeline"
CONFIG = terraform_named(
    InfraConfig(
        region="us-east-1",
        account_id=ACCOUNT,
        environment="dev",
        name_prefix="mlops",
        bucket_name="aws-backend-tests",
        bucket_arn="arn:aws:s3:::aws-backend-tests",
        execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/aws-backend-tests",
        model_package_group_name="aws-backend-models",
        model_package_group_arn=(
            f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/aws-backend-models"
        ),
        pipeline_name=PIPELINE,
    )
)
EXECUTION_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/{PIPELINE}/execution/abcdef123456"
T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def prepared(emulator_connection) -> run.PreparedRun:
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=CONFIG.bucket_name)
    sagemaker = emulator_connection.client("sagemaker")
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.create_model_package_group(ModelPackageGroupName=CONFIG.model_package_group_name)
    return run.prepare_run(
        emulator_connection, CONFIG, check_arguments(["NEstimators=30"], None), None
    )


# --- against the emulator ------------------------------------------------------------------


def test_start_upserts_and_starts_through_the_sdk(emulator_connection, prepared):
    backend = SageMakerBackend(emulator_connection, CONFIG)
    execution = backend.start(prepared)
    assert execution.execution_arn.startswith(
        f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/{PIPELINE}/execution/"
    )
    assert execution.display_name == prepared.display_name
    assert execution.display_name.startswith("manual-")

    sagemaker = emulator_connection.client("sagemaker")
    pipeline = sagemaker.describe_pipeline(PipelineName=PIPELINE)
    assert pipeline["RoleArn"] == CONFIG.execution_role_arn
    assert pipeline["PipelineDefinition"] == prepared.definition

    described = backend.describe(execution.execution_id)
    assert described.execution_arn == execution.execution_arn
    assert described.definition == prepared.definition
    assert described.parameters["NEstimators"] == "30"
    assert described.parameters["TargetColumn"] == "medv"
    listed = [e.execution_id for e in backend.list_executions()]
    assert execution.execution_id in listed


def test_a_second_start_updates_the_pipeline(emulator_connection, prepared):
    backend = SageMakerBackend(emulator_connection, CONFIG)
    first = backend.start(prepared)
    second = backend.start(prepared)
    assert first.execution_arn != second.execution_arn
    listed = {e.execution_arn for e in backend.list_executions(limit=100)}
    assert {first.execution_arn, second.execution_arn} <= listed


def test_aws_receives_the_bytes_the_local_executor_runs(emulator_connection, prepared, tmp_path):
    aws = SageMakerBackend(emulator_connection, CONFIG).start(prepared)
    sagemaker = emulator_connection.client("sagemaker")
    sent = sagemaker.describe_pipeline_definition_for_execution(
        PipelineExecutionArn=aws.execution_arn
    )["PipelineDefinition"]

    local_backend = LocalBackend(
        Settings(root=tmp_path, state_dir=tmp_path / ".mlops"), emulator_connection
    )
    # As pipeline-run starts it: on the worker spawned while the run was prepared.
    with local_backend.launching() as launch:
        started = launch(prepared)
    local = local_backend.wait(started.execution_id, timeout=300)
    assert local.status == "Succeeded", local.failure_reason
    assert sent.encode() == local.definition.encode() == prepared.definition.encode()


# --- stubbed: the calls the emulator does not implement -------------------------------------


def stubbed_backend(emulator_connection) -> tuple[SageMakerBackend, Stubber]:
    client = boto3.Session(region_name="us-east-1").client("sagemaker")
    backend = SageMakerBackend(emulator_connection, CONFIG, sagemaker_client=client)
    return backend, Stubber(client)


def describe_response(status: str, failure: str | None = None) -> dict[str, Any]:
    response = {
        "PipelineArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/{PIPELINE}",
        "PipelineExecutionArn": EXECUTION_ARN,
        "PipelineExecutionDisplayName": "run-abc12345",
        "PipelineExecutionStatus": status,
        "CreationTime": T0,
        "LastModifiedTime": T0 + dt.timedelta(minutes=9),
    }
    if failure:
        response["FailureReason"] = failure
    return response


def expect_describe(stubber: Stubber, status: str, failure: str | None = None) -> None:
    stubber.add_response(
        "describe_pipeline_execution",
        describe_response(status, failure),
        {"PipelineExecutionArn": EXECUTION_ARN},
    )
    stubber.add_response(
        "list_pipeline_parameters_for_execution",
        {"PipelineParameters": [{"Name": "NEstimators", "Value": "100"}]},
        {"PipelineExecutionArn": EXECUTION_ARN},
    )
    stubber.add_response(
        "describe_pipeline_definition_for_execution",
        {"PipelineDefinition": json.dumps({"Steps": []}), "CreationTime": T0},
        {"PipelineExecutionArn": EXECUTION_ARN},
    )


def step(name: str, status: str, metadata: dict, minutes: int, **extra: Any) -> dict[str, Any]:
    entry = {
        "StepName": name,
        "StepStatus": status,
        "StartTime": T0 + dt.timedelta(minutes=minutes),
        "Metadata": metadata,
        "AttemptCount": 1,
    }
    if status in ("Succeeded", "Failed", "Stopped"):
        entry["EndTime"] = T0 + dt.timedelta(minutes=minutes + 1)
    entry.update(extra)
    return entry


def job(kind: str, name: str) -> dict[str, Any]:
    resource = {"TrainingJob": "training-job", "ProcessingJob": "processing-job"}[kind]
    return {kind: {"Arn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:{resource}/{name}"}}


def expect_steps(stubber: Stubber, steps: list[dict[str, Any]]) -> None:
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps},
        {"PipelineExecutionArn": EXECUTION_ARN, "SortOrder": "Ascending"},
    )


SUCCEEDED_STEPS = [
    step("PreprocessData", "Succeeded", job("ProcessingJob", "pipelines-abc-PreprocessData-1"), 0),
    step("TrainModel", "Succeeded", job("TrainingJob", "pipelines-abc-TrainModel-2"), 2),
    step("EvaluateModel", "Succeeded", job("ProcessingJob", "pipelines-abc-EvaluateModel-3"), 5),
    step("CheckModelQuality", "Succeeded", {"Condition": {"Outcome": "True"}}, 7),
    step(
        "Register-RegisterModel",
        "Succeeded",
        {"RegisterModel": {"Arn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/m/3"}},
        8,
    ),
]


def test_a_run_that_succeeds(emulator_connection):
    backend, stubber = stubbed_backend(emulator_connection)
    expect_describe(stubber, "Succeeded")
    expect_steps(stubber, SUCCEEDED_STEPS)
    with stubber:
        execution = backend.describe("abcdef123456")
        steps = backend.steps(execution.execution_id)
    stubber.assert_no_pending_responses()
    assert execution.status == "Succeeded"
    assert execution.duration == pytest.approx(540)
    assert [(s.name, s.type, s.status) for s in steps] == [
        ("PreprocessData", "Processing", "Succeeded"),
        ("TrainModel", "Training", "Succeeded"),
        ("EvaluateModel", "Processing", "Succeeded"),
        ("CheckModelQuality", "Condition", "Succeeded"),
        ("Register-RegisterModel", "RegisterModel", "Succeeded"),
    ]
    assert steps[3].properties == {"Outcome": "True"}
    assert steps[4].properties["ModelPackageArn"].endswith(":model-package/m/3")
    assert steps[1].duration == 60


def test_a_run_that_fails_at_training(emulator_connection):
    reason = "AlgorithmError: ERROR: column 'medv' is missing (exit code 2)"
    backend, stubber = stubbed_backend(emulator_connection)
    expect_describe(stubber, "Failed", "Step failure: One or multiple steps failed.")
    expect_steps(
        stubber,
        [
            SUCCEEDED_STEPS[0],
            step(
                "TrainModel",
                "Failed",
                job("TrainingJob", "pipelines-abc-TrainModel-2"),
                2,
                FailureReason=reason,
            ),
        ],
    )
    with stubber:
        execution = backend.describe(EXECUTION_ARN)
        steps = backend.steps(EXECUTION_ARN)
    assert execution.status == "Failed"
    assert execution.failure_reason == "Step failure: One or multiple steps failed."
    assert steps[1].status == "Failed"
    assert steps[1].failure_reason == reason


def test_a_cache_hit(emulator_connection):
    source = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/{PIPELINE}/execution/zzz999yyy888"
    backend, stubber = stubbed_backend(emulator_connection)
    expect_steps(
        stubber,
        [{**SUCCEEDED_STEPS[0], "CacheHitResult": {"SourcePipelineExecutionArn": source}}],
    )
    with stubber:
        steps = backend.steps(EXECUTION_ARN)
    assert steps[0].cache_hit_of == "zzz999yyy888"


def test_a_stop(emulator_connection):
    backend, stubber = stubbed_backend(emulator_connection)
    stubber.add_response(
        "stop_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION_ARN},
        {"PipelineExecutionArn": EXECUTION_ARN, "ClientRequestToken": ANY},
    )
    expect_describe(stubber, "Stopping")
    stubber.add_response(
        "describe_pipeline_execution",
        describe_response("Stopped"),
        {"PipelineExecutionArn": EXECUTION_ARN},
    )
    with stubber:
        stopping = backend.stop(EXECUTION_ARN)
        assert stopping.status == "Stopping"
        stopped = backend.wait(EXECUTION_ARN, poll=0.01)
    stubber.assert_no_pending_responses()
    assert stopped.status == "Stopped"


def test_a_retry(emulator_connection):
    backend, stubber = stubbed_backend(emulator_connection)
    expect_describe(stubber, "Failed", "Step failure: One or multiple steps failed.")
    stubber.add_response(
        "retry_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION_ARN},
        {"PipelineExecutionArn": EXECUTION_ARN, "ClientRequestToken": ANY},
    )
    stubber.add_response(
        "describe_pipeline_execution",
        describe_response("Executing"),
        {"PipelineExecutionArn": EXECUTION_ARN},
    )
    with stubber:
        resumed = backend.retry(EXECUTION_ARN)
    assert resumed.status == "Executing"


def test_retry_of_a_running_execution_is_refused(emulator_connection):
    backend, stubber = stubbed_backend(emulator_connection)
    expect_describe(stubber, "Executing")
    with stubber, pytest.raises(MlopsError, match="only Failed or Stopped"):
        backend.retry(EXECUTION_ARN)


def test_stubbed_requests_are_validated_against_the_api(emulator_connection):
    """The Stubber keeps botocore's parameter validation on: a malformed request fails
    here, as it would against AWS, even with a response queued for it."""
    backend, stubber = stubbed_backend(emulator_connection)
    stubber.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": []})
    with stubber, pytest.raises(ParamValidationError, match="PipelineExecutionArn"):
        backend.sagemaker.list_pipeline_execution_steps(
            PipelineExecutionArn=42, SortOrder="Ascending"
        )


# --- throttling: botocore's retries, seen from the transport ---------------------------------


def throttled_client(responses: list[tuple[int, dict[str, Any]]]):
    """A real client whose HTTP layer answers from a script: botocore parses each answer
    and its retry handler decides what to do, as it would with AWS."""
    client = boto3.Session(region_name="us-east-1").client(
        "sagemaker", config=Config(retries={"mode": "standard", "max_attempts": 5})
    )
    sent: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        status, body = responses.pop(0)
        sent.append(request.headers.get("X-Amz-Target", b"").decode())
        raw = type("Raw", (), {"stream": lambda self, **kw: iter([json.dumps(body).encode()])})()
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, raw)

    client.meta.events.register("before-send.sagemaker.*", answer)
    return client, sent


def test_throttling_is_retried_by_botocore_then_succeeds(emulator_connection, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # botocore's backoff sleeps
    steps_body = {
        "PipelineExecutionSteps": [
            {
                "StepName": "PreprocessData",
                "StepStatus": "Executing",
                "StartTime": T0.timestamp(),
                "Metadata": {},
            }
        ]
    }
    throttle = {"__type": "ThrottlingException", "message": "Rate exceeded"}
    client, sent = throttled_client([(400, throttle), (400, throttle), (200, steps_body)])
    backend = SageMakerBackend(emulator_connection, CONFIG, sagemaker_client=client)
    steps = backend.steps(EXECUTION_ARN)
    assert [s.name for s in steps] == ["PreprocessData"]
    assert sent == ["SageMaker.ListPipelineExecutionSteps"] * 3


def test_persistent_throttling_surfaces_as_a_clear_error(emulator_connection, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    throttle = {"__type": "ThrottlingException", "message": "Rate exceeded"}
    client, _ = throttled_client([(400, throttle)] * 6)  # the first try and five retries
    backend = SageMakerBackend(emulator_connection, CONFIG, sagemaker_client=client)
    with pytest.raises(MlopsError, match="ThrottlingException: Rate exceeded"):
        backend.steps(EXECUTION_ARN)


def test_links_point_at_studio_and_each_jobs_logs(emulator_connection):
    backend = SageMakerBackend(emulator_connection, CONFIG, studio_domain_id="d-abc123")
    backend_steps = [backend._step(entry) for entry in SUCCEEDED_STEPS]
    execution = type("E", (), {"pipeline_name": PIPELINE, "execution_arn": EXECUTION_ARN})()
    links = dict(backend.links(execution, backend_steps))
    assert (
        links["studio"]
        == f"https://studio-d-abc123.studio.us-east-1.sagemaker.aws/pipelines/{PIPELINE}"
    )
    assert links["logs TrainModel"] == cloudwatch_logs_url(
        "us-east-1", "TrainingJobs", "pipelines-abc-TrainModel-2"
    )
    assert "log-group/$252Faws$252Fsagemaker$252FTrainingJobs" in links["logs TrainModel"]
    assert links["logs TrainModel"].endswith("$3FlogStreamNameFilter$3Dpipelines-abc-TrainModel-2")


# --- logs: CloudWatch Logs of the step's job, stubbed (requests validated) -------------------

TRAINING_JOB = "pipelines-abcdef123456-TrainModel-Xy12ab"


def training_step() -> StepRun:
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{TRAINING_JOB.lower()}"
    return StepRun("TrainModel", "Training", "Executing", properties={"TrainingJobArn": arn})


def logs_backend() -> tuple[SageMakerBackend, Stubber]:
    session = boto3.Session(region_name="us-east-1")
    logs = session.client("logs")
    backend = SageMakerBackend(
        None,  # type: ignore[arg-type] - both clients are given: no connection is needed
        CONFIG,
        sagemaker_client=session.client("sagemaker"),
        logs_client=logs,
    )
    return backend, Stubber(logs)


def expect_events(stubber: Stubber, stream: str, token: str | None, events: list[str], new: str):
    request = {
        "logGroupName": "/aws/sagemaker/TrainingJobs",
        "logStreamName": stream,
        "startFromHead": True,
    }
    if token:
        request["nextToken"] = token
    response = {
        "events": [{"timestamp": 1, "message": m, "ingestionTime": 2} for m in events],
        "nextForwardToken": new,
        "nextBackwardToken": "b",
    }
    stubber.add_response("get_log_events", response, request)


def test_a_steps_log_is_read_from_its_jobs_streams_and_read_on_from_where_it_stopped():
    backend, stubber = logs_backend()
    job = TRAINING_JOB.lower()
    stream = f"{job}/algo-1-1767000000"
    streams = {"logStreams": [{"logStreamName": stream}]}
    listing = {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamNamePrefix": f"{job}/"}
    stubber.add_response("describe_log_streams", streams, listing)
    expect_events(stubber, stream, None, ["epoch 1", "epoch 2"], "f/1")
    expect_events(stubber, stream, "f/1", [], "f/1")  # the same token: the end, for now
    stubber.add_response("describe_log_streams", streams, listing)
    expect_events(stubber, stream, "f/1", ["train-rmse: 1.2"], "f/2")
    expect_events(stubber, stream, "f/2", [], "f/2")
    with stubber:
        text, cursor = backend.read_log(training_step())
        assert text == "epoch 1\nepoch 2\n"
        more, _ = backend.read_log(training_step(), cursor)
        assert more == "train-rmse: 1.2\n"
    assert backend.log_location(training_step()) == (
        f"CloudWatch Logs /aws/sagemaker/TrainingJobs, streams {job}/*"
    )


def test_a_job_that_has_not_logged_yet_reads_as_empty_and_a_step_without_a_job_says_so():
    backend, stubber = logs_backend()
    stubber.add_client_error(
        "describe_log_streams",
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
    with stubber:
        assert backend.read_log(training_step()) == ("", {})
    with pytest.raises(MlopsError, match="Step CheckQuality \\(Condition\\) ran no SageMaker job"):
        backend.read_log(StepRun("CheckQuality", "Condition", "Succeeded"))
