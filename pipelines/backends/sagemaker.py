"""The SageMaker backend: the same definition on a real account, through the SDK and boto3.

``start`` upserts with ``Pipeline.upsert(role_arn=...)`` and starts with
``Pipeline.start(parameters=..., execution_display_name=...)``; status comes from
DescribePipelineExecution, steps from ListPipelineExecutionSteps (paginated), stop
and retry from their APIs. Throttling and transient errors are retried by the
client's botocore retry configuration (adaptive mode); only the polling interval
between two looks at an execution is the backend's own, and it backs off.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.infra_config import InfraConfig
from pipelines.core import polling
from pipelines.core.aws import AwsConnection, api_error
from pipelines.core.errors import MlopsError
from pipelines.core.records import Execution, StepRun
from pipelines.core.s3io import parse_s3_uri

if TYPE_CHECKING:
    from pipelines.launch.prepare import PreparedRun

# Metadata key of a ListPipelineExecutionSteps entry → the step type of the definition.
_METADATA_TYPES = {
    "TrainingJob": "Training",
    "ProcessingJob": "Processing",
    "TransformJob": "Transform",
    "TuningJob": "Tuning",
    "Model": "Model",
    "RegisterModel": "RegisterModel",
    "Condition": "Condition",
    "Callback": "Callback",
    "Lambda": "Lambda",
    "EMR": "EMR",
    "QualityCheck": "QualityCheck",
    "ClarifyCheck": "ClarifyCheck",
    "Fail": "Fail",
    "AutoMLJob": "AutoML",
}
_MAX_POLL_SECONDS = 30.0


def _seconds(value: Any) -> float | None:
    return value.timestamp() if hasattr(value, "timestamp") else None


def _api_error(action: str, error: Exception) -> MlopsError:
    return api_error(f"SageMaker {action}", error)


class SageMakerBackend:
    name = "aws"
    # SageMaker steps take minutes: look every 5 s, backing off to 30 s.
    poll_schedule = polling.PollSchedule(5.0, _MAX_POLL_SECONDS)

    def __init__(
        self,
        connection: AwsConnection,
        config: InfraConfig,
        *,
        sagemaker_client: BaseClient | None = None,
        logs_client: BaseClient | None = None,
        studio_domain_id: str | None = None,
    ) -> None:
        self.connection = connection
        self.config = config
        self.studio_domain_id = studio_domain_id
        self.sagemaker = sagemaker_client or connection.sagemaker()
        self._logs = logs_client
        self._definitions: dict[str, str] = {}
        self._parameters: dict[str, dict[str, Any]] = {}

    # --- naming ---------------------------------------------------------------------------

    def execution_arn(self, execution_id: str) -> str:
        if execution_id.startswith("arn:"):
            return execution_id
        return (
            f"arn:aws:sagemaker:{self.config.region}:{self.config.account_id}:pipeline/"
            f"{self.config.pipeline_name}/execution/{execution_id}"
        )

    # --- runs -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def launching(self) -> Iterator[Callable[[PreparedRun], Execution]]:
        """Nothing to start ahead on AWS: SageMaker runs the execution."""
        yield self.start

    def start(self, run: PreparedRun) -> Execution:
        """Pipeline.upsert with the Terraform role, then Pipeline.start."""
        try:
            run.pipeline.upsert(role_arn=run.config.execution_role_arn)
            # Every value, defaults too: the execution records exactly what it ran with.
            values = run.parameters.with_defaults()
            started = run.pipeline.start(
                parameters={k: str(v) for k, v in values.items() if v is not None},
                execution_display_name=run.display_name,
            )
        except (ClientError, BotoCoreError) as error:
            raise _api_error("upsert/start", error) from error
        return self.describe(started.arn)

    def describe(self, execution_id: str) -> Execution:
        arn = self.execution_arn(execution_id)
        try:
            response = self.sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        except (ClientError, BotoCoreError) as error:
            raise _api_error(f"DescribePipelineExecution of {arn}", error) from error
        created = _seconds(response.get("CreationTime")) or time.time()
        status = response["PipelineExecutionStatus"]
        ended = (
            _seconds(response.get("LastModifiedTime"))
            if status in ("Succeeded", "Failed", "Stopped")
            else None
        )
        return Execution(
            execution_id=arn.rsplit("/", 1)[-1],
            execution_arn=arn,
            pipeline_name=response["PipelineArn"].rsplit("/", 1)[-1],
            status=status,
            created_at=created,
            display_name=response.get("PipelineExecutionDisplayName", ""),
            ended_at=ended,
            failure_reason=response.get("FailureReason"),
            parameters=self._execution_parameters(arn),
            definition=self._execution_definition(arn),
        )

    def _execution_definition(self, arn: str) -> str:
        if arn not in self._definitions:
            try:
                response = self.sagemaker.describe_pipeline_definition_for_execution(
                    PipelineExecutionArn=arn
                )
                self._definitions[arn] = response["PipelineDefinition"]
            except (ClientError, BotoCoreError):
                return ""  # the view then lists the steps SageMaker reports
        return self._definitions[arn]

    def _execution_parameters(self, arn: str) -> dict[str, Any]:
        if arn not in self._parameters:
            try:
                pages = self.sagemaker.get_paginator(
                    "list_pipeline_parameters_for_execution"
                ).paginate(PipelineExecutionArn=arn)
                self._parameters[arn] = {
                    p["Name"]: p["Value"] for page in pages for p in page["PipelineParameters"]
                }
            except (ClientError, BotoCoreError):
                return {}
        return self._parameters[arn]

    def steps(self, execution_id: str) -> list[StepRun]:
        arn = self.execution_arn(execution_id)
        try:
            pages = self.sagemaker.get_paginator("list_pipeline_execution_steps").paginate(
                PipelineExecutionArn=arn, SortOrder="Ascending"
            )
            entries = [entry for page in pages for entry in page["PipelineExecutionSteps"]]
        except (ClientError, BotoCoreError) as error:
            raise _api_error(f"ListPipelineExecutionSteps of {arn}", error) from error
        return [self._step(entry) for entry in entries]

    def _step(self, entry: Mapping[str, Any]) -> StepRun:
        metadata = entry.get("Metadata", {})
        kind = next((_METADATA_TYPES[k] for k in metadata if k in _METADATA_TYPES), "")
        properties: dict[str, Any] = {}
        if "Condition" in metadata:
            properties["Outcome"] = metadata["Condition"].get("Outcome")
        if "RegisterModel" in metadata:
            properties["ModelPackageArn"] = metadata["RegisterModel"].get("Arn")
        for key in ("TrainingJob", "ProcessingJob", "Model"):
            if key in metadata:
                properties[f"{key}Arn"] = metadata[key].get("Arn")
        cache = entry.get("CacheHitResult", {}).get("SourcePipelineExecutionArn")
        return StepRun(
            name=entry["StepName"],
            type=kind,
            status=entry["StepStatus"],
            started_at=_seconds(entry.get("StartTime")),
            ended_at=_seconds(entry.get("EndTime")),
            failure_reason=entry.get("FailureReason")
            or metadata.get("Fail", {}).get("ErrorMessage"),
            properties=properties,
            cache_hit_of=cache.rsplit("/", 1)[-1] if cache else None,
            attempt=entry.get("AttemptCount", 1),
        )

    def details(self, execution: Execution, steps: list[StepRun]) -> list[StepRun]:
        """Fill in what the summary shows: training metrics and artifacts, the model
        package version, and the property files (read from S3), one call per step."""
        definition = json.loads(execution.definition or "{}")
        property_files = _property_file_specs(definition)
        for step in steps:
            try:
                if step.properties.get("TrainingJobArn"):
                    name = step.properties["TrainingJobArn"].rsplit("/", 1)[-1]
                    job = self.sagemaker.describe_training_job(TrainingJobName=name)
                    step.properties["TrainingJobName"] = name
                    step.properties["ModelArtifacts"] = job.get("ModelArtifacts", {})
                    step.metrics = {
                        m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])
                    }
                if step.properties.get("ProcessingJobArn"):
                    name = step.properties["ProcessingJobArn"].rsplit("/", 1)[-1]
                    step.properties["ProcessingJobName"] = name
                    if step.name in property_files and step.status == "Succeeded":
                        job = self.sagemaker.describe_processing_job(ProcessingJobName=name)
                        step.property_files = self._read_property_files(
                            job, property_files[step.name]
                        )
                if step.properties.get("ModelPackageArn"):
                    package = self.sagemaker.describe_model_package(
                        ModelPackageName=step.properties["ModelPackageArn"]
                    )
                    step.properties["ModelPackageVersion"] = package.get("ModelPackageVersion")
                    step.properties["ModelApprovalStatus"] = package.get("ModelApprovalStatus")
            except (ClientError, BotoCoreError, ValueError, KeyError):
                continue  # the summary shows what it could read
        return steps

    def _read_property_files(
        self, job: Mapping[str, Any], specs: list[Mapping[str, str]]
    ) -> dict[str, Any]:
        outputs = {
            o["OutputName"]: o["S3Output"]["S3Uri"]
            for o in job.get("ProcessingOutputConfig", {}).get("Outputs", [])
        }
        s3 = self.connection.client("s3")
        files = {}
        for spec in specs:
            if spec["OutputName"] not in outputs:
                continue
            bucket, key = parse_s3_uri(
                f"{outputs[spec['OutputName']].rstrip('/')}/{spec['FilePath']}"
            )
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            files[spec["PropertyFileName"]] = json.loads(body)
        return files

    def links(self, execution: Execution, steps: list[StepRun]) -> list[tuple[str, str]]:
        """Where to look in the AWS console: the pipeline in Studio and each job's logs."""
        region = self.config.region
        found: list[tuple[str, str]] = []
        if self.studio_domain_id:
            found.append(
                (
                    "studio",
                    f"https://studio-{self.studio_domain_id}.studio.{region}.sagemaker.aws/"
                    f"pipelines/{execution.pipeline_name}",
                )
            )
        found.append(
            (
                "describe",
                f"aws sagemaker describe-pipeline-execution --region {region} "
                f"--pipeline-execution-arn {execution.execution_arn}",
            )
        )
        for step in steps:
            for key, group in (
                ("TrainingJobArn", "TrainingJobs"),
                ("ProcessingJobArn", "ProcessingJobs"),
            ):
                if step.properties.get(key):
                    job = step.properties[key].rsplit("/", 1)[-1]
                    found.append((f"logs {step.name}", cloudwatch_logs_url(region, group, job)))
        return found

    # --- logs -----------------------------------------------------------------------------

    def log_location(self, step: StepRun) -> str:
        group, job = _log_source(step)
        return f"CloudWatch Logs {group}, streams {job}/*"

    def read_log(self, step: StepRun, cursor: Any = None) -> tuple[str, Any]:
        """The job's CloudWatch log streams (``<job>/algo-1-...``, one per instance), each
        read on from its own forward token (GetLogEvents returns the token it was given
        at the end of a stream)."""
        group, job = _log_source(step)
        tokens: dict[str, str] = dict(cursor or {})
        logs = self._logs or self.connection.client("logs")
        lines: list[str] = []
        try:
            pages = logs.get_paginator("describe_log_streams").paginate(
                logGroupName=group, logStreamNamePrefix=f"{job}/"
            )
            streams = sorted(s["logStreamName"] for page in pages for s in page["logStreams"])
            for stream in streams:
                request = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
                if stream in tokens:
                    request["nextToken"] = tokens[stream]
                while True:
                    page = logs.get_log_events(**request)
                    lines += [event["message"] for event in page["events"]]
                    if page["nextForwardToken"] == request.get("nextToken"):
                        break
                    request["nextToken"] = page["nextForwardToken"]
                tokens[stream] = request["nextToken"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return "", tokens  # the job has not logged yet
            raise _api_error(f"reading the log of {job}", error) from error
        except BotoCoreError as error:
            raise _api_error(f"reading the log of {job}", error) from error
        return "".join(f"{line.rstrip()}\n" for line in lines), tokens

    def list_executions(self, pipeline_name: str | None = None, limit: int = 20) -> list[Execution]:
        try:
            response = self.sagemaker.list_pipeline_executions(
                PipelineName=pipeline_name or self.config.pipeline_name,
                SortBy="CreationTime",
                SortOrder="Descending",
                MaxResults=min(max(limit, 1), 100),
            )
        except (ClientError, BotoCoreError) as error:
            raise _api_error("ListPipelineExecutions", error) from error
        found = [
            Execution(
                execution_id=summary["PipelineExecutionArn"].rsplit("/", 1)[-1],
                execution_arn=summary["PipelineExecutionArn"],
                pipeline_name=pipeline_name or self.config.pipeline_name,
                status=summary["PipelineExecutionStatus"],
                created_at=_seconds(summary.get("StartTime")) or 0.0,
                display_name=summary.get("PipelineExecutionDisplayName", ""),
                failure_reason=summary.get("PipelineExecutionFailureReason"),
            )
            for summary in response.get("PipelineExecutionSummaries", [])
        ]
        # Newest first, whatever order the service answers in.
        return sorted(found, key=lambda e: e.created_at, reverse=True)[:limit]

    def latest(self, pipeline_name: str | None = None) -> Execution:
        executions = self.list_executions(pipeline_name, limit=1)
        if not executions:
            raise MlopsError(
                f"Pipeline {pipeline_name or self.config.pipeline_name} has no executions yet."
            )
        return self.describe(executions[0].execution_arn)

    def stop(self, execution_id: str) -> Execution:
        arn = self.execution_arn(execution_id)
        try:
            self.sagemaker.stop_pipeline_execution(
                PipelineExecutionArn=arn, ClientRequestToken=secrets.token_hex(16)
            )
        except (ClientError, BotoCoreError) as error:
            raise _api_error(f"StopPipelineExecution of {arn}", error) from error
        return self.describe(arn)

    def retry(self, execution_id: str) -> Execution:
        arn = self.execution_arn(execution_id)
        current = self.describe(arn)
        if current.status not in ("Failed", "Stopped"):
            raise MlopsError(
                f"Execution {current.execution_id} is {current.status}; only Failed or Stopped "
                "executions can be retried."
            )
        try:
            self.sagemaker.retry_pipeline_execution(
                PipelineExecutionArn=arn, ClientRequestToken=secrets.token_hex(16)
            )
        except (ClientError, BotoCoreError) as error:
            raise _api_error(f"RetryPipelineExecution of {arn}", error) from error
        return self.describe(arn)

    def wait(self, execution_id: str, poll: float = 5.0, timeout: float | None = None) -> Execution:
        """Poll until the execution finishes, backing off to 30 s between looks."""
        try:
            return polling.poll(
                lambda: self.describe(execution_id),
                lambda execution: execution.finished,
                polling.PollSchedule(poll, _MAX_POLL_SECONDS),
                timeout=timeout,
            )
        except polling.PollTimeout as late:
            raise MlopsError(
                f"Execution {execution_id} is still {late.last.status} after "
                f"{timeout:.0f} s; it keeps running on SageMaker."
            ) from None


def _log_source(step: StepRun) -> tuple[str, str]:
    """(log group, job name) of a step's SageMaker job."""
    for key, group in (("TrainingJobArn", "TrainingJobs"), ("ProcessingJobArn", "ProcessingJobs")):
        if step.properties.get(key):
            return f"/aws/sagemaker/{group}", step.properties[key].rsplit("/", 1)[-1]
    raise MlopsError(f"Step {step.name} ({step.type}) ran no SageMaker job: it has no log.")


def cloudwatch_logs_url(region: str, group: str, job_name: str) -> str:
    """The CloudWatch console view of a SageMaker job's log streams."""

    def encode(text: str) -> str:
        # The console's fragment encoding: URL-encode, then turn % into $25.
        return quote(text, safe="").replace("%", "$25")

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{encode('/aws/sagemaker/' + group)}"
        f"$3FlogStreamNameFilter$3D{encode(job_name)}"
    )


def _property_file_specs(definition: Mapping[str, Any]) -> dict[str, list[Mapping[str, str]]]:
    specs: dict[str, list[Mapping[str, str]]] = {}

    def visit(steps: list[Mapping[str, Any]]) -> None:
        for step in steps:
            if step.get("PropertyFiles"):
                specs[step["Name"]] = step["PropertyFiles"]
            if step.get("Type") == "Condition":
                visit(step["Arguments"].get("IfSteps", []))
                visit(step["Arguments"].get("ElseSteps", []))

    visit(definition.get("Steps", []))
    return specs
