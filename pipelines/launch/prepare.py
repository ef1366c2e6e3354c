"""Preparing a run: from the Terraform outputs to what a backend starts.

Upload the training code (content-addressed) and the input data (versioned),
build the definition and type the parameters, with lineage. Parameter overrides
are checked against the definition's parameters before any of this happens.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import PROJECT_ROOT
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.definition.builder import (
    TRAINING_DIR,
    Param,
    definition_json,
    get_pipeline,
    parameters_section,
)
from pipelines.definition.code_package import package_code, upload_code
from pipelines.definition.parameters import ParameterError, parse_assignments, resolve_parameters
from pipelines.definition.sdk_session import definition_session
from pipelines.launch.datasets import StagedDataset, stage_dataset
from pipelines.launch.lineage import git_state

if TYPE_CHECKING:
    from sagemaker.workflow.pipeline import Pipeline

INPUT_PARAMETER = Param.INPUT_DATA
COMMIT_PARAMETER = Param.GIT_COMMIT


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
    check_meanings(resolve_parameters(parameters_section(), overrides))
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
    Param.MIN_TEST_R2: _r2_threshold,
    Param.N_ESTIMATORS: _at_least(1),
    Param.MAX_DEPTH: _at_least(0),
    Param.RANDOM_STATE: _at_least(0),
    Param.PROCESSING_INSTANCE_COUNT: _at_least(1),
    Param.MODEL_APPROVAL_STATUS: _one_of("PendingManualApproval", "Approved", "Rejected"),
}


def check_meanings(values: Mapping[str, Any]) -> None:
    problems = [
        f"{name}={values[name]!r} {problem}"
        for name, rule in PARAMETER_RULES.items()
        if name in values and (problem := rule(values[name])) is not None
    ]
    if problems:
        raise ParameterError("Invalid parameter value(s): " + "; ".join(problems) + ".")


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
        sagemaker_client=connection.sagemaker(),
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
