"""One runner per step type. Each takes the step's resolved arguments (the request
SageMaker would receive) and returns the step's properties, shaped like the
matching Describe*Response, so later steps can refer to them."""

from __future__ import annotations

import json
import re
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from pipelines.containers.algorithms import builtin_algorithm, xgboost_algorithm
from pipelines.containers.environments import EnvironmentCache, JobRuntime
from pipelines.containers.profiles import profile_for_image
from pipelines.core import s3io
from pipelines.core.aws import AwsConnection, error_code, error_message
from pipelines.core.errors import MlopsError
from pipelines.core.records import Execution
from pipelines.definition.code_package import ARTIFACTS, SOURCEDIR
from pipelines.events.publish import model_package_changed
from pipelines.executor import toolkit
from pipelines.executor.graph import StepNode
from pipelines.executor.jobs import JobResult, Sandbox, failure_line, local_python, run_job


class StepFailed(Exception):
    """The step failed; ``reason`` is its FailureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StepStopped(Exception):
    """The step was stopped on request."""


@dataclass(frozen=True)
class StepOutcome:
    properties: dict[str, Any]
    property_files: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int | None = None


@dataclass(frozen=True)
class JobContext:
    execution: Execution
    connection: AwsConnection
    step_dir: Path
    stop: threading.Event
    job_env: Mapping[str, str]
    # The runtime of each job image, chosen before the run (pipelines.containers.selection).
    runtimes: Mapping[str, JobRuntime] = field(default_factory=dict)
    runtime_cache: Path | None = None

    def python_for(self, image: str) -> str:
        runtime = self.runtimes.get(image)
        if runtime is None:
            raise StepFailed(
                f"ClientError: no local runtime was prepared for image {image!r}; "
                "start a new execution."
            )
        return runtime.python

    def with_requirements(self, image: str, requirements: Path) -> str:
        """The image's runtime plus a code bundle's requirements.txt (cached by content)."""
        runtime = self.runtimes.get(image)
        if runtime is None or runtime.host or self.runtime_cache is None:
            return self.python_for(image)  # the host runtime installs nothing
        return requirements_runtime(image, requirements, self.runtime_cache).python

    @property
    def log_path(self) -> Path:
        return self.step_dir / "job.log"

    @property
    def account_region(self) -> tuple[str, str]:
        return self.execution.account_id, self.execution.region


Runner = Callable[[StepNode, dict[str, Any], JobContext], StepOutcome]


def container_environment(
    ctx: JobContext, python: str, image: str | None, sandbox: Sandbox
) -> dict[str, str]:
    """The job's environment: the allow-listed base, then the image's own ENV (its
    locale, encoding and SM_* paths, which win over the host's, as in a container),
    with the runtime's bin folder first on the container's PATH."""
    env = dict(ctx.job_env)
    profile = profile_for_image(image) if image else None
    for name, value in profile.environment if profile else ():
        env[name] = sandbox.remap(value)
    if "TEMP" in env:
        # The image's /home/model-server/tmp: a folder of the job's own here.
        temp = sandbox.root / "tmp"
        temp.mkdir(parents=True, exist_ok=True)
        env["TEMP"] = str(temp)
    env["PATH"] = f"{Path(python).parent}:{toolkit.CONTAINER_PATH}"
    return env


def requirements_runtime(image: str, requirements: Path, cache_root: Path) -> JobRuntime:
    profile = profile_for_image(image)
    if profile is None:
        raise StepFailed(f"ClientError: no runtime profile for image {image!r}.")
    lines = tuple(
        line.strip()
        for line in requirements.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    )
    try:
        return EnvironmentCache(cache_root).ensure(profile, extras=lines)
    except MlopsError as error:
        raise StepFailed(f"ClientError: installing requirements.txt failed: {error}") from error


def job_name(execution: Execution, step: str) -> str:
    """SageMaker Pipelines names jobs pipelines-<execution>-<step>-<suffix>; so do we."""
    slug = re.sub(r"[^A-Za-z0-9-]", "-", step)[:30]
    return f"pipelines-{execution.execution_id}-{slug}"[:63].rstrip("-")


def _arn(ctx: JobContext, resource: str) -> str:
    account, region = ctx.account_region
    return f"arn:aws:sagemaker:{region}:{account}:{resource}"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _client_error(action: str, error: Exception) -> StepFailed:
    # SageMaker's FailureReason layout: the error code first.
    return StepFailed(f"{error_code(error) or 'ClientError'}: {action}: {error_message(error)}")


def _job_failure(
    result: JobResult, ctx: JobContext, sandbox: Sandbox, limit: float | None
) -> StepFailed:
    if result.timed_out:
        return StepFailed(
            f"MaxRuntimeExceeded: the job ran longer than its {limit:.0f} s stopping condition."
        )
    # Report container paths, as the job would on SageMaker. A job that explains its
    # failure in /opt/ml/output/failure (the training toolkits and the built-in algorithms
    # do) is reported with that text, as SageMaker's FailureReason is.
    try:
        explained = " ".join(sandbox.path("/opt/ml/output/failure").read_text().split())
    except (FileNotFoundError, UnicodeDecodeError):
        explained = ""
    line = sandbox.unmap(explained[:1024] or failure_line(ctx.log_path) or "no output")
    return StepFailed(f"AlgorithmError: {line} (exit code {result.exit_code}; log: {ctx.log_path})")


def _download_inputs(ctx: JobContext, uri: str, destination: Path, what: str) -> None:
    s3 = ctx.connection.client("s3")
    try:
        objects = s3io.download(s3, uri, destination)
    except (ClientError, BotoCoreError) as error:
        raise _client_error(f"downloading {what} from {uri}", error) from error
    if not objects:
        raise StepFailed(
            f"ClientError: Data download failed: no S3 objects found under {uri} ({what})."
        )


# --- Processing -----------------------------------------------------------------------------


def run_processing(node: StepNode, args: dict[str, Any], ctx: JobContext) -> StepOutcome:
    name = job_name(ctx.execution, node.name)
    sandbox = Sandbox(ctx.step_dir / "sandbox")
    sandbox.root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for item in args.get("ProcessingInputs", []):
        s3_input = item.get("S3Input")
        if s3_input is None:
            raise StepFailed(
                f"Processing input {item.get('InputName')!r}: only S3 inputs run locally."
            )
        if (
            s3_input.get("S3InputMode", "File") != "File"
            or s3_input.get("S3CompressionType", "None") != "None"
        ):
            raise StepFailed(
                f"Processing input {item.get('InputName')!r}: only File mode without "
                "compression runs locally."
            )
        _download_inputs(
            ctx,
            s3_input["S3Uri"],
            sandbox.path(s3_input["LocalPath"]),
            f"input {item['InputName']!r}",
        )
    outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for item in outputs:
        sandbox.path(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)

    app = args["AppSpecification"]
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    python = local_python(entrypoint[0], ctx.python_for(app["ImageUri"])) if entrypoint else None
    if python is None:
        raise StepFailed(
            f"The local executor runs Python entrypoints; got {entrypoint[:1] or 'none'} "
            f"for image {app.get('ImageUri')}."
        )
    command = [
        python,
        *(sandbox.remap(part) for part in entrypoint[1:]),
        *(sandbox.remap(str(part)) for part in app.get("ContainerArguments") or []),
    ]
    env = container_environment(ctx, python, app.get("ImageUri"), sandbox)
    env.update({k: sandbox.remap(str(v)) for k, v in (args.get("Environment") or {}).items()})
    toolkit.write_processing_config(
        args, sandbox, job_name=name, job_arn=_arn(ctx, f"processing-job/{name}")
    )
    limit = args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    result = run_job(
        command,
        cwd=sandbox.root,
        env=env,
        log_path=ctx.log_path,
        stop=ctx.stop,
        max_seconds=limit,
        sandbox=sandbox,
    )
    if result.stopped:
        raise StepStopped()
    if result.exit_code != 0 or result.timed_out:
        raise _job_failure(result, ctx, sandbox, limit)

    s3 = ctx.connection.client("s3")
    for item in outputs:
        local = sandbox.path(item["S3Output"]["LocalPath"])
        try:
            s3io.upload_directory(s3, local, item["S3Output"]["S3Uri"])
        except (ClientError, BotoCoreError) as error:
            raise _client_error(f"uploading output {item['OutputName']!r}", error) from error

    property_files = {}
    by_output = {item["OutputName"]: item for item in outputs}
    for spec in node.spec.get("PropertyFiles", []):
        output = by_output.get(spec["OutputName"])
        if output is None:
            raise StepFailed(
                f"Property file {spec['PropertyFileName']!r} names output "
                f"{spec['OutputName']!r}, which the step does not have."
            )
        path = sandbox.path(output["S3Output"]["LocalPath"]) / spec["FilePath"]
        try:
            property_files[spec["PropertyFileName"]] = json.loads(path.read_text())
        except FileNotFoundError:
            raise StepFailed(
                f"Property file {spec['PropertyFileName']!r}: the job wrote no "
                f"{spec['FilePath']} in output {spec['OutputName']!r}."
            ) from None
        except json.JSONDecodeError as error:
            raise StepFailed(
                f"Property file {spec['PropertyFileName']!r}: {spec['FilePath']} is not JSON: "
                f"{error}."
            ) from None

    ended = time.time()
    properties = {
        **args,
        "ProcessingJobName": name,
        "ProcessingJobArn": _arn(ctx, f"processing-job/{name}"),
        "ProcessingJobStatus": "Completed",
        "ExitMessage": "",
        "CreationTime": _iso(started),
        "ProcessingStartTime": _iso(started),
        "ProcessingEndTime": _iso(ended),
        "LastModifiedTime": _iso(ended),
    }
    return StepOutcome(
        properties=properties,
        property_files=property_files,
        peak_memory_bytes=result.peak_memory_bytes,
    )


# --- Training -------------------------------------------------------------------------------


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def script_mode_arguments(hyperparameters: Mapping[str, Any]) -> list[str]:
    """How the SageMaker training toolkit passes hyperparameters to a script:
    sorted, ``--name value``, values JSON-decoded then rendered as text."""
    args: list[str] = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        if isinstance(value, Mapping):
            rendered = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        else:
            rendered = str(value)
        args += [f"--{name}" if len(name) > 1 else f"-{name}", rendered]
    return args


def _extract_code(archive: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise StepFailed(
            f"ClientError: cannot unpack the training code {archive.name}: {error}"
        ) from error


def _script_mode_code(
    raw_hps: Mapping[str, str], sandbox: Sandbox, ctx: JobContext, s3: Any
) -> tuple[str, str, Path]:
    """The entry point, the code bundle's URI and where it is unpacked."""
    try:
        program = _decode(raw_hps["sagemaker_program"])
        submit_dir = _decode(raw_hps["sagemaker_submit_directory"])
    except KeyError as missing:
        raise StepFailed(
            "The local executor runs script-mode training jobs and the built-in XGBoost "
            f"algorithm; hyperparameter {missing} is missing."
        ) from None
    code_dir = sandbox.path("/opt/ml/code")
    archive = ctx.step_dir / "sourcedir.tar.gz"
    try:
        bucket, key = s3io.parse_s3_uri(submit_dir)
        s3.download_file(bucket, key, str(archive))
    except (ClientError, BotoCoreError) as error:
        raise _client_error(f"downloading the training code {submit_dir}", error) from error
    _extract_code(archive, code_dir)
    if not (code_dir / program).is_file():
        raise StepFailed(f"ClientError: the training code has no entry point {program!r}.")
    return program, submit_dir, code_dir


def run_training(node: StepNode, args: dict[str, Any], ctx: JobContext) -> StepOutcome:
    name = job_name(ctx.execution, node.name)
    sandbox = Sandbox(ctx.step_dir / "sandbox")
    started = time.time()
    image = args["AlgorithmSpecification"]["TrainingImage"]
    raw_hps = {k: str(v) for k, v in (args.get("HyperParameters") or {}).items()}
    s3 = ctx.connection.client("s3")
    # The XGBoost image without an entry point is the built-in algorithm: it runs the
    # algorithm's script (pipelines.containers.algorithms) instead of the user's.
    algorithm = builtin_algorithm(image, raw_hps)
    if algorithm is None:
        program, submit_dir, code_dir = _script_mode_code(raw_hps, sandbox, ctx, s3)
    else:
        program = submit_dir = None
        code_dir = sandbox.root

    for channel in args.get("InputDataConfig", []):
        source = channel.get("DataSource", {}).get("S3DataSource")
        if source is None:
            raise StepFailed(
                f"Channel {channel['ChannelName']!r}: only S3 data sources run locally."
            )
        destination = sandbox.path(f"/opt/ml/input/data/{channel['ChannelName']}")
        _download_inputs(ctx, source["S3Uri"], destination, f"channel {channel['ChannelName']!r}")

    model_dir = sandbox.path("/opt/ml/model")
    output_data = sandbox.path("/opt/ml/output/data")
    for folder in (model_dir, output_data, sandbox.path("/opt/ml/output/intermediate")):
        folder.mkdir(parents=True, exist_ok=True)
    profile = profile_for_image(image)
    contract = toolkit.training_contract(
        args,
        sandbox,
        job_name=name,
        program=program,
        submit_dir=submit_dir,
        cmd_args=script_mode_arguments,
        framework_module=dict(profile.environment if profile else ()).get(
            "SAGEMAKER_TRAINING_MODULE", toolkit.FRAMEWORK_MODULE
        ),
    )
    python = ctx.python_for(image)
    if algorithm is None and (code_dir / "requirements.txt").is_file():
        # The training toolkit pip-installs the bundle's requirements.txt before the
        # script starts; locally they go into a cached environment of their own.
        python = ctx.with_requirements(image, code_dir / "requirements.txt")

    env = container_environment(ctx, python, image, sandbox)
    env.update({k: sandbox.remap(str(v)) for k, v in (args.get("Environment") or {}).items()})
    env.update(contract.env)
    if algorithm is None:
        env["PYTHONPATH"] = str(code_dir)
        command = [python, str(program), *contract.user_args]
    else:
        command = [python, str(algorithm)]

    limit = args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    result = run_job(
        command,
        cwd=code_dir,
        env=env,
        log_path=ctx.log_path,
        stop=ctx.stop,
        max_seconds=limit,
        sandbox=sandbox,
    )
    if result.stopped:
        raise StepStopped()
    if result.exit_code != 0 or result.timed_out:
        raise _job_failure(result, ctx, sandbox, limit)

    output_prefix = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output"
    model_tar = ctx.step_dir / "model.tar.gz"
    output_tar = ctx.step_dir / "output.tar.gz"
    _tar_directory(model_dir, model_tar)
    _tar_directory(output_data, output_tar)
    try:
        s3io.upload_file(s3, model_tar, f"{output_prefix}/model.tar.gz")
        s3io.upload_file(s3, output_tar, f"{output_prefix}/output.tar.gz")
    except (ClientError, BotoCoreError) as error:
        raise _client_error("uploading the model artifacts", error) from error

    ended = time.time()
    specification = dict(args.get("AlgorithmSpecification") or {})
    if algorithm is not None and not specification.get("MetricDefinitions"):
        # A built-in algorithm's own metrics: SageMaker fills them in (and describes them).
        specification["MetricDefinitions"] = xgboost_algorithm.METRIC_DEFINITIONS
    metrics = scrape_metrics(ctx.log_path, specification.get("MetricDefinitions", []))
    properties = {
        **args,
        "AlgorithmSpecification": specification,
        "TrainingJobName": name,
        "TrainingJobArn": _arn(ctx, f"training-job/{name}"),
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": f"{output_prefix}/model.tar.gz"},
        "FinalMetricDataList": [
            {"MetricName": metric, "Value": value, "Timestamp": _iso(ended)}
            for metric, value in metrics.items()
        ],
        "CreationTime": _iso(started),
        "TrainingStartTime": _iso(started),
        "TrainingEndTime": _iso(ended),
        "LastModifiedTime": _iso(ended),
        "TrainingTimeInSeconds": int(result.seconds),
        "BillableTimeInSeconds": int(result.seconds),
    }
    return StepOutcome(
        properties=properties, metrics=metrics, peak_memory_bytes=result.peak_memory_bytes
    )


def scrape_metrics(log_path: Path, definitions: list[Mapping[str, str]]) -> dict[str, float]:
    """The last value each MetricDefinitions regex captures in the job's log, line by line."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return toolkit.scrape_metric_lines(text, definitions)


def _tar_directory(source: Path, archive: Path) -> None:
    # Level 1: models are mostly incompressible floats, and level 9 costs seconds.
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)


# --- Model registry and models -----------------------------------------------------------


def _describe(response: Mapping[str, Any]) -> dict[str, Any]:
    """A boto3 response as JSON-able properties (datetimes as ISO strings)."""
    return json.loads(
        json.dumps({k: v for k, v in response.items() if k != "ResponseMetadata"}, default=str)
    )


# The code bundle's key names the sha256 of its bytes (definition.code_package).
_CONTENT_ADDRESSED = re.compile(r"/code/([0-9a-f]{64})/" + re.escape(SOURCEDIR) + "$")


def artifact_identities(s3: Any, request: Mapping[str, Any]) -> dict[str, str]:
    """The CustomerMetadataProperties that pin a model package's model and code tarballs:
    the sha256 of each object as it is now, and its S3 VersionId where the bucket keeps
    versions. A code bundle that no longer matches the digest its key names fails; an
    artifact that is not there gets no identity (a deploy then refuses the version)."""
    containers = (request.get("InferenceSpecification") or {}).get("Containers") or [{}]
    container = containers[0]
    uris = {
        "model": container.get("ModelDataUrl"),
        "code": (container.get("Environment") or {}).get("SAGEMAKER_SUBMIT_DIRECTORY"),
    }
    found: dict[str, str] = {}
    for name, uri in uris.items():
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            continue
        try:
            digest, version_id = s3io.object_sha256(s3, uri)
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                continue
            raise _client_error(f"reading the {name} artifact {uri}", error) from error
        except BotoCoreError as error:
            raise _client_error(f"reading the {name} artifact {uri}", error) from error
        addressed = _CONTENT_ADDRESSED.search(uri)
        if name == "code" and addressed and addressed.group(1) != digest:
            raise StepFailed(
                f"ClientError: the code bundle {uri} does not hold the code its key names "
                f"(sha256 {digest}): it was changed after upload, so it is not registered."
            )
        found[ARTIFACTS[name].sha256] = digest
        if version_id:
            found[ARTIFACTS[name].version_id] = version_id
    return found


def run_register_model(node: StepNode, args: dict[str, Any], ctx: JobContext) -> StepOutcome:
    sagemaker = ctx.connection.client("sagemaker")
    # The package pins what it serves (SageMaker's RegisterModel carries the same field);
    # values the definition set itself must agree with what is in S3.
    identities = artifact_identities(ctx.connection.client("s3"), args)
    declared = args.get("CustomerMetadataProperties") or {}
    for key, value in identities.items():
        if key in declared and declared[key] != value:
            raise StepFailed(
                f"ClientError: {key} is {declared[key]} in the request but the artifact's is "
                f"{value}: it changed after the definition was built."
            )
    if identities:
        args = {**args, "CustomerMetadataProperties": {**declared, **identities}}
    try:
        # botocore validates the request against the SageMaker API model first.
        arn = sagemaker.create_model_package(**args)["ModelPackageArn"]
        described = sagemaker.describe_model_package(ModelPackageName=arn)
    except ParamValidationError as error:
        raise StepFailed(f"ValidationException: CreateModelPackage: {error}") from error
    except (ClientError, BotoCoreError) as error:
        raise _client_error("CreateModelPackage", error) from error
    # SageMaker emits a state change at creation: a version registered Approved fires the
    # approval rules as one approved later does.
    model_package_changed(ctx.connection, arn, described)
    return StepOutcome(properties=_describe(described))


def run_create_model(node: StepNode, args: dict[str, Any], ctx: JobContext) -> StepOutcome:
    sagemaker = ctx.connection.client("sagemaker")
    request = {"ModelName": job_name(ctx.execution, node.name), **args}
    try:
        sagemaker.create_model(**request)
        described = sagemaker.describe_model(ModelName=request["ModelName"])
    except ParamValidationError as error:
        raise StepFailed(f"ValidationException: CreateModel: {error}") from error
    except (ClientError, BotoCoreError) as error:
        raise _client_error("CreateModel", error) from error
    return StepOutcome(properties=_describe(described))


def run_fail(node: StepNode, args: dict[str, Any], ctx: JobContext) -> StepOutcome:
    raise StepFailed(str(args.get("ErrorMessage") or f"Fail step {node.name} reached."))


# The check steps' runners are in checks.CHECK_RUNNERS and the batch transform's in
# transform.TRANSFORM_RUNNERS: both build on this module's helpers.
RUNNERS: dict[str, Runner] = {
    "Processing": run_processing,
    "Training": run_training,
    "RegisterModel": run_register_model,
    "Model": run_create_model,
    "Fail": run_fail,
}
# Attributes that make up a step's cache key, as SageMaker Pipelines documents them.
CACHE_KEY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
    "Transform": ("DataProcessing", "Environment", "ModelName", "TransformInput"),
}
