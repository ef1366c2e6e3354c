"""The console on the AWS target, against recorded API responses: no AWS is reachable.

Only how the stack is found is replaced (Terraform's remote state: the outputs are
``CONFIG``); the pages then read through ``AwsTarget`` and ``SageMakerBackend`` as
`invoke ui --target aws` does, on the connection's own clients, each answered by botocore's
Stubber (which validates every request and answer against the API model, in order).
``assert_no_pending_responses`` at the end of each test proves the pages made exactly the
calls expected, no more and no fewer: a call outside them would fail the page."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3
import numpy as np
import pytest
import requests
from botocore.response import StreamingBody
from botocore.stub import Stubber

from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings
from pipelines.console import app, automation_pages
from pipelines.console.source import Source
from pipelines.core.aws import AwsConnection
from pipelines.definition.builder import build_definition
from pipelines.definition.names import EVALUATE_STEP, TRAIN_STEP
from pipelines.launch.prepare import display_name
from pipelines.promotion.approval import Approval
from pipelines.serving.deployment_records import DeploymentRecord
from pipelines.stack.stacks import Stack
from tests.backends.test_sagemaker_backend import ACCOUNT, CONFIG, PIPELINE, T0, job, step
from tests.console.conftest import FEATURES, _evaluate_module
from tests.console.serving import Running, console_server
from tests.support import terraform_named

# A real console server (uvicorn) per test: the server tier, not the fast one.
pytestmark = pytest.mark.server

REGION = CONFIG.region
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}"
GROUP = CONFIG.model_package_group_name
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/ml-engineer/ada"
TRAINING_FAILURE = "AlgorithmError: ERROR: column 'medv' is missing (exit code 2)"


@pytest.fixture(scope="module")
def definition() -> str:
    """The definition SageMaker returns for an execution: the one the project builds."""
    return build_definition(CONFIG)


def _report(noise: float, seed: int) -> dict[str, Any]:
    """An evaluation report built by training/evaluate.py, as the pipeline writes it."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(22.0, 9.0, 200)
    predicted = truth + rng.normal(0.0, noise, truth.size)
    return _evaluate_module().build_report(truth, predicted, "medv", FEATURES, 20, 0)


@dataclass
class Run:
    id: str
    status: str
    display_name: str
    created: dt.datetime
    steps: list[dict[str, Any]]
    failure: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"{PIPELINE_ARN}/execution/{self.id}"


@dataclass
class Version:
    number: int
    status: str
    report: dict[str, Any]
    run: Run | None = None
    approval: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/{self.number}"

    @property
    def report_uri(self) -> str:
        return f"s3://{CONFIG.bucket_name}/reports/v{self.number}/evaluation.json"


def _evaluation_output(run: Run) -> str:
    return f"s3://{CONFIG.bucket_name}/{PIPELINE}/{run.id}/EvaluateModel/evaluation"


def _steps_of_a_run(run_id: str, version: int) -> list[dict[str, Any]]:
    """Every step of a successful execution, with the metadata SageMaker reports."""
    check = {"CheckType": "DATA_QUALITY", "SkipCheck": False, "RegisterNewBaseline": False}
    return [
        step("PreprocessData", "Succeeded", job("ProcessingJob", f"{run_id}-PreprocessData"), 0),
        step("CheckDataQuality", "Succeeded", {"QualityCheck": check}, 1),
        step(
            "CheckDataBias",
            "Succeeded",
            {"ClarifyCheck": {"CheckType": "DATA_BIAS", "SkipCheck": False}},
            1,
        ),
        step(TRAIN_STEP, "Succeeded", job("TrainingJob", f"{run_id}-TrainModel"), 2),
        step(EVALUATE_STEP, "Succeeded", job("ProcessingJob", f"{run_id}-EvaluateModel"), 5),
        step(
            "CheckModelQualityBaseline",
            "Succeeded",
            {"QualityCheck": {**check, "CheckType": "MODEL_QUALITY"}},
            6,
        ),
        step("CheckModelQuality", "Succeeded", {"Condition": {"Outcome": "True"}}, 7),
        step(
            "Register-RegisterModel",
            "Succeeded",
            {
                "RegisterModel": {
                    "Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/{version}"
                }
            },
            8,
        ),
    ]


SUCCEEDED = Run(
    "abcdef123456",
    "Succeeded",
    display_name({"trigger": "new-data", "git_commit": "0123abcd" * 5}, T0),
    T0,
    _steps_of_a_run("abcdef123456", 2),
    parameters={"NEstimators": "200", "MaxDepth": "6", "TargetColumn": "medv"},
)
FAILED = Run(
    "fedcba654321",
    "Failed",
    display_name({"trigger": "manual"}, T0 - dt.timedelta(hours=1)),
    T0 - dt.timedelta(hours=1),
    [
        step("PreprocessData", "Succeeded", job("ProcessingJob", "fedcba654321-Preprocess"), -60),
        step(
            TRAIN_STEP,
            "Failed",
            job("TrainingJob", "fedcba654321-TrainModel"),
            -58,
            FailureReason=TRAINING_FAILURE,
        ),
    ],
    failure="Step failure: One or multiple steps failed.",
    parameters={"NEstimators": "50", "TargetColumn": "medv"},
)
RUNS = [SUCCEEDED, FAILED]  # newest first, as ListPipelineExecutions is asked for them


class RecordedAccount:
    """The account's answers, queued on the console connection's own clients in the order
    each page asks: the expect_* methods mirror what a page reads, call by call."""

    def __init__(self, connection: AwsConnection, versions: list[Version]) -> None:
        self.sagemaker = Stubber(connection.sagemaker())
        self.s3 = Stubber(connection.client("s3"))
        self.sts = Stubber(connection.client("sts"))
        # The deployer's own client (standard retries) for its endpoint's status.
        self.endpoints = Stubber(connection.client("sagemaker"))
        self.logs = Stubber(connection.client("logs"))
        self.versions = versions

    @property
    def stubbers(self) -> tuple[Stubber, ...]:
        return (self.sagemaker, self.s3, self.sts, self.endpoints, self.logs)

    def expect_log(self, job_arn: str, lines: list[str]) -> None:
        """A training job's one CloudWatch stream, read to its end (GetLogEvents answers the
        token it was given once nothing follows)."""
        job_name = job_arn.rsplit("/", 1)[-1]
        group = "/aws/sagemaker/TrainingJobs"
        stream = f"{job_name}/algo-1-1700000000"
        self.logs.add_response(
            "describe_log_streams",
            {"logStreams": [{"logStreamName": stream}]},
            {"logGroupName": group, "logStreamNamePrefix": f"{job_name}/"},
        )
        request = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        for token, events in ((None, lines), ("f/1", [])):
            self.logs.add_response(
                "get_log_events",
                {
                    "events": [{"timestamp": 1, "message": m, "ingestionTime": 2} for m in events],
                    "nextForwardToken": "f/1",
                    "nextBackwardToken": "b/1",
                },
                request | ({"nextToken": token} if token else {}),
            )

    # --- the stages ----------------------------------------------------------------------

    def expect_stage(
        self, env: str, serving: Version | None, records: list[DeploymentRecord]
    ) -> None:
        """A stage's status (the endpoint, and the version behind it when it serves one),
        then its deployment history from the bucket."""
        endpoint = terraform_named(CONFIG, environment=env).endpoint_name(None)
        by_name = {"EndpointName": endpoint}
        if serving is None:
            self.endpoints.add_client_error(
                "describe_endpoint",
                "ValidationException",
                f'Could not find endpoint "{endpoint}".',
                expected_params=by_name,
            )
        else:
            described = {
                "EndpointName": endpoint,
                "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{endpoint}",
                "EndpointConfigName": f"{endpoint}-v{serving.number}",
                "EndpointStatus": "InService",
                "CreationTime": T0,
                "LastModifiedTime": T0,
            }
            model = f"{endpoint}-v{serving.number}"
            self.endpoints.add_response("describe_endpoint", described, by_name)
            self.sagemaker.add_response("describe_endpoint", described, by_name)
            self.sagemaker.add_response(
                "describe_endpoint_config",
                {
                    "EndpointConfigName": described["EndpointConfigName"],
                    "EndpointConfigArn": described["EndpointArn"] + "-config",
                    "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": model}],
                    "CreationTime": T0,
                },
                {"EndpointConfigName": described["EndpointConfigName"]},
            )
            self.sagemaker.add_response(
                "describe_model",
                {
                    "ModelName": model,
                    "PrimaryContainer": {"ModelPackageName": serving.arn},
                    "CreationTime": T0,
                    "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{model}",
                },
                {"ModelName": model},
            )
            self._expect_package(serving)
        prefix = f"deployments/{endpoint}/"
        keys = [f"{prefix}{record.at:.0f}-v{record.version}.json" for record in records]
        self.s3.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": key} for key in keys], "KeyCount": len(keys)},
            {"Bucket": CONFIG.bucket_name, "Prefix": prefix},
        )
        for key, record in zip(keys, records, strict=True):
            self._expect_object(f"s3://{CONFIG.bucket_name}/{key}", asdict(record))

    # --- executions --------------------------------------------------------------------

    def expect_list(self) -> None:
        self.sagemaker.add_response(
            "list_pipeline_executions",
            {
                "PipelineExecutionSummaries": [
                    {
                        "PipelineExecutionArn": run.arn,
                        "StartTime": run.created,
                        "PipelineExecutionStatus": run.status,
                        "PipelineExecutionDisplayName": run.display_name,
                        **({"PipelineExecutionFailureReason": run.failure} if run.failure else {}),
                    }
                    for run in RUNS
                ]
            },
            {
                "PipelineName": PIPELINE,
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 50,
            },
        )

    def expect_describe(self, run: Run, definition: str | None = None) -> None:
        """DescribePipelineExecution; the first time, its parameters and definition too
        (the backend keeps those: they do not change)."""
        answer = {
            "PipelineArn": PIPELINE_ARN,
            "PipelineExecutionArn": run.arn,
            "PipelineExecutionDisplayName": run.display_name,
            "PipelineExecutionStatus": run.status,
            "CreationTime": run.created,
            "LastModifiedTime": run.created + dt.timedelta(minutes=9),
            **({"FailureReason": run.failure} if run.failure else {}),
        }
        by_arn = {"PipelineExecutionArn": run.arn}
        self.sagemaker.add_response("describe_pipeline_execution", answer, by_arn)
        if definition is None:
            return
        self.sagemaker.add_response(
            "list_pipeline_parameters_for_execution",
            {"PipelineParameters": [{"Name": k, "Value": v} for k, v in run.parameters.items()]},
            by_arn,
        )
        self.sagemaker.add_response(
            "describe_pipeline_definition_for_execution",
            {"PipelineDefinition": definition, "CreationTime": run.created},
            by_arn,
        )

    def expect_steps(self, run: Run) -> None:
        self.sagemaker.add_response(
            "list_pipeline_execution_steps",
            {"PipelineExecutionSteps": run.steps},
            {"PipelineExecutionArn": run.arn, "SortOrder": "Ascending"},
        )

    def expect_details(self, run: Run, *, with_definition: bool) -> None:
        """The steps, then what the summary reads per step: the training job's metrics, the
        evaluation report (only known from the definition's property files), the version."""
        self.expect_steps(run)
        for entry in run.steps:
            metadata = entry["Metadata"]
            if "TrainingJob" in metadata:
                self._expect_training_job(metadata["TrainingJob"]["Arn"], entry["StepStatus"])
            if (
                "ProcessingJob" in metadata
                and entry["StepName"] == EVALUATE_STEP
                and entry["StepStatus"] == "Succeeded"
                and with_definition
            ):
                self._expect_evaluation(run, metadata["ProcessingJob"]["Arn"])
            if "RegisterModel" in metadata:
                number = int(metadata["RegisterModel"]["Arn"].rsplit("/", 1)[-1])
                self._expect_package(self._version(number))

    def _expect_training_job(self, arn: str, status: str) -> None:
        name = arn.rsplit("/", 1)[-1]
        answer = {
            "TrainingJobName": name,
            "TrainingJobArn": arn,
            "ModelArtifacts": {
                "S3ModelArtifacts": f"s3://{CONFIG.bucket_name}/{name}/model.tar.gz"
            },
            "TrainingJobStatus": "Completed" if status == "Succeeded" else status,
            "SecondaryStatus": "Completed" if status == "Succeeded" else status,
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "sklearn"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "CreationTime": T0,
            "FinalMetricDataList": [{"MetricName": "train:rmse", "Value": 2.5, "Timestamp": T0}]
            if status == "Succeeded"
            else [],
        }
        self.sagemaker.add_response("describe_training_job", answer, {"TrainingJobName": name})

    def _expect_evaluation(self, run: Run, arn: str) -> None:
        name = arn.rsplit("/", 1)[-1]
        output = _evaluation_output(run)
        answer = {
            "ProcessingJobName": name,
            "ProcessingJobArn": arn,
            "ProcessingJobStatus": "Completed",
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 30,
                }
            },
            "AppSpecification": {"ImageUri": "sklearn"},
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "evaluation",
                        "S3Output": {
                            "S3Uri": output,
                            "LocalPath": "/opt/ml/processing/evaluation",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
            "CreationTime": T0,
        }
        self.sagemaker.add_response("describe_processing_job", answer, {"ProcessingJobName": name})
        version = next(v for v in self.versions if v.run is run)
        self._expect_object(f"{output}/evaluation.json", version.report)

    def _expect_object(self, uri: str, document: dict[str, Any]) -> None:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        body = json.dumps(document).encode()
        self.s3.add_response(
            "get_object",
            {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentLength": len(body)},
            {"Bucket": bucket, "Key": key},
        )

    # --- the registry ------------------------------------------------------------------

    def _version(self, number: int) -> Version:
        return next(v for v in self.versions if v.number == number)

    def _package(self, version: Version) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "ModelPackageName": GROUP,
            "ModelPackageGroupName": GROUP,
            "ModelPackageVersion": version.number,
            "ModelPackageArn": version.arn,
            "CreationTime": T0 + dt.timedelta(days=version.number),
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": version.status,
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sklearn:1.2-1",
                        "ModelDataUrl": f"s3://{CONFIG.bucket_name}/v{version.number}/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": version.report_uri}
                }
            },
        }
        if version.run is not None:
            answer["MetadataProperties"] = {"GeneratedBy": version.run.arn}
        if version.approval:
            answer["ApprovalDescription"] = version.approval
        return answer

    def _expect_package(self, version: Version) -> None:
        self.sagemaker.add_response(
            "describe_model_package", self._package(version), {"ModelPackageName": version.arn}
        )

    def expect_versions(self, status: str | None = None) -> list[Version]:
        """ListModelPackages (filtered by the service), then DescribeModelPackage of each."""
        listed = [v for v in self.versions if status is None or v.status == status]
        request = {"ModelPackageGroupName": GROUP}
        if status:
            request["ModelApprovalStatus"] = status
        self.sagemaker.add_response(
            "list_model_packages",
            {
                "ModelPackageSummaryList": [
                    {
                        "ModelPackageArn": v.arn,
                        "ModelPackageGroupName": GROUP,
                        "ModelPackageVersion": v.number,
                        "CreationTime": T0 + dt.timedelta(days=v.number),
                        "ModelPackageStatus": "Completed",
                        "ModelApprovalStatus": v.status,
                    }
                    for v in listed
                ]
            },
            request,
        )
        for version in listed:
            self._expect_package(version)
        return listed

    def expect_report(self, version: Version) -> None:
        self._expect_object(version.report_uri, version.report)

    def expect_listing(self) -> None:
        """`invoke models` (the registry page): the versions with their metrics, the
        champion, the checks of the run behind each, each metric's ±."""
        listed = sorted(self.expect_versions(), key=lambda v: v.number, reverse=True)
        for version in listed:
            self.expect_report(version)
        self.expect_versions("Approved")
        for version in listed:
            if version.run is not None:
                self.expect_steps(version.run)
        for version in listed:
            self.expect_report(version)


@pytest.fixture
def aws_console(
    tmp_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Source, RecordedAccount]]:
    # Credentials that reach nothing: every call is answered by a Stubber before signing.
    session = boto3.Session(
        aws_access_key_id="AKIDRECORDED", aws_secret_access_key="recorded", region_name=REGION
    )

    def leaving(request: Any, **_: Any) -> None:
        # Stubbed calls are answered before this point: anything here would go to AWS.
        raise AssertionError(f"A call outside the recorded answers: {request.method} {request.url}")

    session.events.register("before-send", leaving)
    connection = AwsConnection(session=session, region=REGION)

    def open_stack(self, settings, deployment, **_):
        return Stack(settings, deployment, None, connection)  # type: ignore[arg-type]

    monkeypatch.setattr("pipelines.targets.AwsTarget.open_stack", open_stack)
    # Each environment's outputs (on AWS a stage is an environment of its own).
    monkeypatch.setattr(
        "pipelines.targets.read_infra_config",
        lambda stack: terraform_named(CONFIG, environment=stack.deployment.env),
    )
    account = RecordedAccount(
        connection,
        [
            Version(
                1,
                "Approved",
                _report(2.0, 1),
                approval="approved by ops at 2026-11-20T09:00:00Z: baseline",
            ),
            Version(2, "PendingManualApproval", _report(3.0, 2), run=SUCCEEDED),
        ],
    )
    for stubber in account.stubbers:
        stubber.activate()
    yield Source(tmp_settings, Deployment.parse("aws", "dev")), account
    for stubber in account.stubbers:
        stubber.deactivate()


def _table(page: str, table: str) -> str:
    found = re.search(rf'<table id="{table}">(.*?)</table>', page, re.DOTALL)
    assert found, f"the page has no {table} table"
    return found.group(1)


def _rows(table: str) -> list[list[str]]:
    """Each row's cells (a row heading first), as text; header rows are left out."""
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.DOTALL)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.DOTALL)
        if "<td" in row
    ]


def _session(running: Running) -> requests.Session:
    """The cookie of the printed URL, without following its redirect to the runs page
    (which would read the account once more than the test expects)."""
    session = requests.Session()
    opened = session.get(app.url(running.port, running.keys), allow_redirects=False)
    assert opened.status_code == 303
    return session


def _get(source: Source, path: str) -> str:
    with console_server(source) as running:
        answer = _session(running).get(f"{running.base}{path}")
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_runs_page_lists_the_executions_from_the_api(aws_console):
    source, account = aws_console
    account.expect_list()  # and nothing per row: the listing names no evaluation report
    page = _get(source, "/")
    for stubber in account.stubbers:
        stubber.assert_no_pending_responses()
    assert '<span class="target">target aws · env dev</span>' in page
    assert f"of {PIPELINE}" in page
    rows = {cells[0]: cells for cells in _rows(_table(page, "runs"))}
    assert list(rows) == [SUCCEEDED.id, FAILED.id]
    assert rows[SUCCEEDED.id][1] == "Succeeded"
    assert rows[SUCCEEDED.id][4] == "new-data"
    assert rows[FAILED.id][1] == "Failed"
    assert rows[FAILED.id][4] == "manual"
    assert rows[FAILED.id][8] == FAILED.failure


def _definition_steps(definition: str) -> list[str]:
    """Every step's name in the definition, those inside a condition's branches too."""
    names = []
    pending = list(json.loads(definition)["Steps"])
    while pending:
        found = pending.pop(0)
        names.append(found["Name"])
        arguments = found.get("Arguments", {})
        if found["Type"] == "Condition":
            pending += arguments.get("IfSteps", []) + arguments.get("ElseSteps", [])
    return names


def test_a_run_page_draws_the_definition_with_the_steps_parameters_and_the_champion(
    aws_console, definition
):
    source, account = aws_console
    account.expect_describe(SUCCEEDED, definition)  # the page finds the run
    account.expect_describe(SUCCEEDED)  # `execution-show` reads it as it is now
    account.expect_details(SUCCEEDED, with_definition=True)
    champion = account.expect_versions("Approved")[0]  # the run's metrics against v1
    account.expect_report(champion)
    account.expect_list()  # the run before it, for "compare with the previous run"
    page = _get(source, f"/runs/{SUCCEEDED.id}")
    for stubber in account.stubbers:
        stubber.assert_no_pending_responses()

    assert '<span class="target">target aws · env dev</span>' in page
    svg = re.search(r'<svg id="graph".*?</svg>', page, re.DOTALL)
    assert svg, "no graph"
    drawn = set(re.findall(r'font-weight="600"[^>]*>([^<]+)</text>', svg.group(0)))
    assert drawn == set(_definition_steps(definition))
    statuses = {cells[0]: cells[1] for cells in _rows(_table(page, "steps"))}
    assert statuses == {entry["StepName"]: "Succeeded" for entry in SUCCEEDED.steps} | {
        "QualityGateFailed": "Not run"  # the condition's other branch
    }
    parameters = {cells[0]: cells for cells in _rows(_table(page, "parameters"))}
    assert parameters["NEstimators"][1] == "200"
    assert parameters["NEstimators"][2].startswith("default ")  # set by the run
    assert "MinTestR2" in parameters  # a default, from the definition
    report_r2 = account.versions[1].report["regression_metrics"]["r2"]["value"]
    champion_r2 = champion.report["regression_metrics"]["r2"]["value"]
    metrics = {
        (step_name, name): value for step_name, name, value in _rows(_table(page, "metrics"))
    }
    assert metrics[(EVALUATE_STEP, "regression_metrics.r2")].startswith(f"{report_r2:.4f}")
    assert metrics[(TRAIN_STEP, "train:rmse")] == "2.5000"
    compared = {cells[0]: cells for cells in _rows(_table(page, "champion"))}
    assert f"v{champion.number}" in page
    assert float(compared["r2"][2]) == pytest.approx(champion_r2, abs=1e-4)
    assert 'id="failure"' not in page


def test_a_failed_run_page_shows_why_and_the_steps_that_did_not_run(aws_console, definition):
    source, account = aws_console
    account.expect_describe(FAILED, definition)
    account.expect_describe(FAILED)
    account.expect_details(FAILED, with_definition=True)  # no report: no registry call
    account.expect_list()
    page = _get(source, f"/runs/{FAILED.id}")
    for stubber in account.stubbers:
        stubber.assert_no_pending_responses()

    failure = re.search(r'<pre id="failure"[^>]*>(.*?)</pre>', page, re.DOTALL)
    assert failure
    assert html.unescape(failure.group(1)) == FAILED.failure
    rows = {cells[0]: cells for cells in _rows(_table(page, "steps"))}
    assert rows[TRAIN_STEP][1] == "Failed"
    assert html.unescape(rows[TRAIN_STEP][7]) == TRAINING_FAILURE
    assert rows["PreprocessData"][1] == "Succeeded"
    assert rows[EVALUATE_STEP][1] == "Not run"
    assert {cells[0]: cells[1] for cells in _rows(_table(page, "parameters"))}[
        "NEstimators"
    ] == "50"
    assert '<svg id="graph"' in page


class Matching:
    """An expected request parameter that must match a pattern (Stubber compares with ``!=``)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(self.pattern, other) is not None

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __repr__(self) -> str:
        return f"Matching({self.pattern!r})"


def _version_row(page: str, version: int) -> list[str]:
    found = re.search(rf'<tr id="version-{version}">.*?</tr>', page, re.DOTALL)
    assert found, f"version {version} is not listed"
    return _rows(found.group(0))[0]


def test_the_registry_page_lists_versions_and_approves_with_a_reason_as_model_approve_does(
    aws_console,
):
    source, account = aws_console
    champion, candidate = account.versions
    reason = "better on the held-out split"
    account.expect_listing()  # the page, for its form
    # The POST: who acts (the caller's ARN on AWS), the version, the update, its answer.
    account.sts.add_response(
        "get_caller_identity", {"UserId": "AROAEXAMPLE:ada", "Account": ACCOUNT, "Arn": CALLER}
    )
    account.expect_versions()
    account.sagemaker.add_response(
        "update_model_package",
        {"ModelPackageArn": candidate.arn},
        {
            "ModelPackageArn": candidate.arn,
            "ModelApprovalStatus": "Approved",
            "ApprovalDescription": Matching(
                rf"approved by {re.escape(CALLER)} at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ: "
                + re.escape(reason)
            ),
        },
    )
    candidate.status = "Approved"
    candidate.approval = f"approved by {CALLER} at 2026-12-06T07:00:00Z: {reason}"
    account._expect_package(candidate)  # set_status answers with the version as it is now
    account.expect_listing()  # the page shown after the decision
    with console_server(source) as running:
        session = _session(running)
        before = session.get(f"{running.base}/registry").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', before)
        assert csrf
        after = session.post(
            f"{running.base}/registry",
            data={"csrf": csrf.group(1), "version": candidate.number, "decision": "approve",
                  "reason": reason},
        )  # fmt: skip
    for stubber in account.stubbers:
        stubber.assert_no_pending_responses()

    assert '<span class="target">target aws · env dev</span>' in before
    assert [int(n) for n in re.findall(r'<tr id="version-(\d+)">', before)] == [2, 1]
    pending = _version_row(before, candidate.number)
    assert pending[1] == "Pending"
    assert pending[7] == SUCCEEDED.id  # the run that registered it
    assert "<form" in before
    approved = _version_row(before, champion.number)
    assert approved[1].startswith("Approved")
    assert "champion" in approved[1]
    assert "approved by ops" in approved[6]
    report_r2 = candidate.report["regression_metrics"]["r2"]["value"]
    assert f"r2 {report_r2:.4f}" in pending[3]

    assert after.status_code == 200, after.text
    assert f"Version {candidate.number}: Approved" in html.unescape(after.text)
    now = _version_row(after.text, candidate.number)
    assert now[1].startswith("Approved")
    assert "champion" in now[1]  # the newest Approved version
    assert CALLER in now[6]
    assert reason in now[6]


def test_the_deployments_page_shows_each_stage_environment_from_the_api(aws_console):
    source, account = aws_console
    champion = account.versions[0]
    endpoint = CONFIG.endpoint_name(None)
    deployed = DeploymentRecord(
        "default", endpoint, champion.number, champion.arn, "deploy", "all-at-once",
        "deployed", at=T0.timestamp(), approval=Approval(CALLER, "first", "flags").to_dict(),
    )  # fmt: skip
    account.expect_stage("dev", champion, [deployed])  # the console's environment
    account.expect_stage("staging", None, [])  # each stage is its own environment
    account.expect_stage("prod", None, [])
    page = _get(source, "/deployments")
    for stubber in account.stubbers:
        stubber.assert_no_pending_responses()

    default = page.split('id="stage-default"')[1].split("</div>\n  </div>")[0]
    assert endpoint in default
    assert f"serves version {champion.number}" in default
    staging = page.split('id="stage-staging"')[1].split('id="stage-prod"')[0]
    assert terraform_named(CONFIG, environment="staging").endpoint_name(None) in staging
    assert "serves nothing (ValidationException: Could not find endpoint" in html.unescape(staging)
    history = page.split('id="history-default"')[1]
    assert CALLER in history
    assert "deployed" in history


def test_the_automation_page_says_it_is_local_only_and_monitoring_names_the_stage_endpoint(
    aws_console,
):
    source, account = aws_console
    with console_server(source) as running:
        session = _session(running)
        automation = session.get(f"{running.base}/automation")
        monitoring = session.get(f"{running.base}/monitoring?stage=staging")
    for stubber in account.stubbers:
        stubber.assert_no_pending_responses()  # neither page calls the account
    assert automation.status_code == 200
    shown = re.search(r'<p class="empty" id="not-here">(.*?)</p>', automation.text, re.DOTALL)
    assert shown
    assert html.unescape(shown.group(1)) == automation_pages.NOT_ON_AWS
    assert "invoke automation-up" not in automation.text
    assert monitoring.status_code == 200, monitoring.text
    # The staging stage's endpoint is the staging environment's (not dev's).
    staging = terraform_named(CONFIG, environment="staging").endpoint_name(None)
    assert f'<span class="note">{staging}</span>' in monitoring.text
    assert "No monitoring results for staging yet" in monitoring.text


def test_a_failed_steps_log_is_read_from_cloudwatch_and_searched(aws_console, definition):
    source, account = aws_console
    lines = ["Reading /opt/ml/input/data/train", TRAINING_FAILURE]
    training = FAILED.steps[1]["Metadata"]["TrainingJob"]["Arn"]
    for _ in ("whole", "searched"):  # `invoke logs` reads the run afresh each time
        account.expect_describe(FAILED, definition)
        account.expect_steps(FAILED)
        account.expect_log(training, lines)
    with console_server(source) as running:
        session = _session(running)
        whole = session.get(f"{running.base}/runs/{FAILED.id}/logs/{TRAIN_STEP}")
        found = session.get(f"{running.base}/runs/{FAILED.id}/logs/{TRAIN_STEP}?q=medv")
    for stubber in account.stubbers:
        stubber.assert_no_pending_responses()
    assert whole.status_code == 200, whole.text
    shown = re.search(r'<pre id="log">(.*?)</pre>', whole.text, re.DOTALL)
    assert shown
    assert html.unescape(shown.group(1)).splitlines() == lines
    assert "CloudWatch Logs /aws/sagemaker/TrainingJobs" in whole.text
    searched = re.search(r'<pre id="log">(.*?)</pre>', found.text, re.DOTALL)
    assert searched
    assert html.unescape(searched.group(1)).splitlines() == [TRAINING_FAILURE]


def test_two_runs_compared_from_the_api(aws_console, definition):
    source, account = aws_console
    for run in (FAILED, SUCCEEDED):
        account.expect_describe(run, definition)
        account.expect_details(run, with_definition=True)
    account.expect_list()
    page = _get(source, f"/compare/{FAILED.id},{SUCCEEDED.id}")
    for stubber in account.stubbers:
        stubber.assert_no_pending_responses()
    runs = {cells[0]: cells[1:] for cells in _rows(_table(page, "runs-compared"))}
    assert runs["status"] == ["Failed", "Succeeded"]
    assert runs["trigger"] == ["manual", "new-data"]
    parameters = {cells[0]: cells[2:] for cells in _rows(_table(page, "parameters"))}
    assert parameters["NEstimators"] == ["50", "200"]
    assert f"{FAILED.id} and {SUCCEEDED.id}: identical definitions." in page
