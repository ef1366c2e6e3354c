"""`invoke pipeline-run`: from the Terraform outputs to a started execution.

1. make sure the infrastructure is up (local: start the emulator and apply if needed);
2. upload the training code (content-addressed) and the input data (versioned);
3. build the definition and upsert it;
4. start it on the target's backend, with lineage.

Parameter overrides are checked against the definition's parameters before any of
this happens.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.infra import stack as infra
from pipelines.backends.base import Backend
from pipelines.backends.local import LocalBackend
from pipelines.backends.sagemaker import SageMakerBackend
from pipelines.definition.code_package import package_code, upload_code
from pipelines.runs.datasets import StagedDataset, stage_dataset
from pipelines.definition.pipeline import (
    FRAMEWORK_VERSION,
    TRAINING_DIR,
    build_parameters,
    definition_json,
    get_pipeline,
)
from pipelines.core.errors import MlopsError
from pipelines.config.infra_config import InfraConfig
from pipelines.runs.lineage import git_state
from pipelines.definition.parameters import ParameterError, parse_assignments, resolve_parameters
from pipelines.runtime.environments import EnvironmentCache, JobRuntime
from pipelines.runtime.interpreters import find_interpreter
from pipelines.runtime.profiles import profiles
from pipelines.definition.sdk import definition_session
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.core.aws import AwsConnection, Deployment

if TYPE_CHECKING:
    from sagemaker.workflow.pipeline import Pipeline

INPUT_PARAMETER = "InputDataUrl"
COMMIT_PARAMETER = "GitCommit"


@dataclass(frozen=True)
class PreparedRun:
    """Everything a backend needs to start a run; ``definition`` is ``pipeline``'s JSON."""

    config: InfraConfig
    pipeline: Pipeline
    definition: str
    parameters: dict[str, Any]
    dataset: StagedDataset
    lineage: dict[str, Any]
    display_name: str


def check_overrides(pairs: list[str], data: str | None) -> dict[str, str]:
    """Parse and type-check ``--param`` values before anything runs."""
    overrides = parse_assignments(pairs)
    if data is not None and INPUT_PARAMETER in overrides:
        raise MlopsError(
            f"Give the input either as --data or as --param {INPUT_PARAMETER}, not both."
        )
    template = {
        "Parameters": [
            {"Name": p.name, "Type": p.parameter_type.value, "DefaultValue": p.default_value}
            for p in build_parameters(input_data_uri="").as_list()
        ]
    }
    check_meanings(resolve_parameters(template, overrides))
    return overrides


def _r2_threshold(value: float) -> str | None:
    if not math.isfinite(value) or value > 1.0:
        return "must be a finite R² threshold of at most 1 (R² is never above 1)"
    return None


def _at_least(minimum: int) -> Callable[[int], str | None]:
    return lambda value: None if value >= minimum else f"must be at least {minimum}"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    return lambda value: None if value in choices else "must be one of " + ", ".join(choices)


# What each value means, beyond its type; checked before any work starts, so a bad
# threshold is not found only by the condition step at the end of a full run.
PARAMETER_RULES: dict[str, Callable[[Any], str | None]] = {
    "MinTestR2": _r2_threshold,
    "NEstimators": _at_least(1),
    "MaxDepth": _at_least(0),
    "RandomState": _at_least(0),
    "ProcessingInstanceCount": _at_least(1),
    "ModelApprovalStatus": _one_of("PendingManualApproval", "Approved", "Rejected"),
}


def check_meanings(values: Mapping[str, Any]) -> None:
    problems = [
        f"{name}={values[name]!r} {problem}"
        for name, rule in PARAMETER_RULES.items()
        if name in values and (problem := rule(values[name])) is not None
    ]
    if problems:
        raise ParameterError("Invalid parameter value(s): " + "; ".join(problems) + ".")


def backend_for(stack: infra.Stack, config: InfraConfig) -> Backend:
    """The one place that maps a target to its backend."""
    if stack.deployment.is_local:
        return LocalBackend(stack.settings, stack.connection)
    return SageMakerBackend(
        stack.connection, config, studio_domain_id=stack.settings.studio_domain_id
    )


def open_target(
    settings: Settings, deployment: Deployment
) -> tuple[infra.Stack, InfraConfig, Backend]:
    """An existing deployment's stack, outputs and backend (nothing is applied)."""
    stack = infra.open_stack(settings, deployment)
    config = infra.read_infra_config(stack)
    return stack, config, backend_for(stack, config)


def ensure_local_stack(
    settings: Settings, on_output: Callable[[str], None] | None = None
) -> tuple[infra.Stack, InfraConfig, infra.UpResult | None]:
    """The local stack, applied; the third item is infra-up's result when it had to
    run (with its timings), None when the stack was already up.

    Serialised on the infrastructure lock: of two concurrent cold runs, the second
    waits, then finds the stack applied and goes on without touching Terraform.
    """
    deployment = Deployment.parse("local")
    with infra.infra_lock(settings, deployment):
        if infra.emulator_for(settings).status().running:
            stack = infra.open_stack(settings, deployment)
            try:
                config = infra.read_infra_config(stack)
                stack.connection.client("s3").head_bucket(Bucket=config.bucket_name)
                return stack, config, None
            except (MlopsError, ClientError, BotoCoreError):
                pass  # not applied yet, or applied to an emulator that has since been reset
        stack = infra.open_stack(settings, deployment, start_emulator=True, on_output=on_output)
        result = infra.infra_up(stack)
        return stack, InfraConfig.from_outputs(result.outputs), result


def start_runtime_build(
    settings: Settings, notify: Callable[[str], None]
) -> Future[JobRuntime] | None:
    """Start building the job runtime the definition's images need, on a thread, so
    that a first run builds it while Terraform applies (the provider's lifecycle
    waiter alone takes 55 s) instead of after.

    The interpreter is looked up now, so a missing Python is reported before any
    slow work starts. The executor's own ``ensure`` later finds the environment
    built, or waits on the same file lock while the build finishes."""
    if settings.runtime_host:
        return None
    profile = profiles()[f"sklearn-{FRAMEWORK_VERSION}"]
    cache = EnvironmentCache(settings.runtime_cache, progress=notify)
    if cache.ready(profile):
        return None
    find_interpreter(profile.python, cache.uv_bin)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runtime-build")
    future = executor.submit(cache.ensure, profile)
    executor.shutdown(wait=False)
    return future


def prepare_run(
    connection: AwsConnection,
    config: InfraConfig,
    overrides: Mapping[str, str],
    data: str | None,
    *,
    root: Path = PROJECT_ROOT,
) -> PreparedRun:
    """Upload the code and the data, build the definition and type the parameters."""
    code = package_code(TRAINING_DIR)
    try:
        upload_code(code, connection.client("s3"), config.bucket_name, config.pipeline_name)
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Could not upload the training code: {error}") from error
    session = definition_session(
        config.region,
        config.bucket_name,
        connection.session,
        sagemaker_client=connection.client("sagemaker", max_attempts=10, retries_mode="adaptive"),
        # On the emulator, the SDK's own clients (S3 uploads, bucket checks) go there too.
        endpoint_url=connection.endpoint_url,
        ca_bundle=str(connection.ca_bundle) if connection.ca_bundle else None,
    )
    pipeline = get_pipeline(config, session, code=code)
    definition = definition_json(pipeline)
    overrides = dict(overrides)
    dataset = stage_dataset(connection, config, data or overrides.get(INPUT_PARAMETER))
    # The job reads the content-addressed copy: exactly the bytes lineage records.
    overrides[INPUT_PARAMETER] = dataset.read_uri or dataset.uri
    git = git_state(root)
    if git["git_commit"]:
        overrides.setdefault(
            COMMIT_PARAMETER, git["git_commit"] + ("-dirty" if git["git_dirty"] else "")
        )
    parameters = resolve_parameters(json.loads(definition), overrides)
    lineage = {
        **git,
        "input_data": {
            "uri": dataset.uri,
            "version_id": dataset.version_id,
            "etag": dataset.etag,
            "source": dataset.source,
            "read_uri": dataset.read_uri,
            "sha256": dataset.sha256,
        },
        "code_sha256": code.sha256,
    }
    return PreparedRun(
        config, pipeline, definition, parameters, dataset, lineage, display_name(lineage)
    )


def display_name(lineage: dict[str, Any]) -> str:
    """``run-<git short sha>[-dirty]``: which code an execution ran, at a glance."""
    commit = lineage.get("git_commit")
    name = f"run-{commit[:8]}" if commit else "run"
    return name + ("-dirty" if lineage.get("git_dirty") else "")
