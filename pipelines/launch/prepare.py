"""Preparing a run: from the Terraform outputs to what a backend starts.

Upload the training code (content-addressed) and the input data (versioned), build
the definition, and add the run's own values (its input, its commit) to the typed
parameters, with lineage. The parameters were typed and checked before any of this
(``pipelines.definition.parameters.check_arguments``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import PROJECT_ROOT
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.definition.code_package import package_code, upload_code
from pipelines.definition.names import TRAINING_DIR
from pipelines.definition.parameters import CHECK_SWITCHES, Param, RunParameters
from pipelines.launch.datasets import StagedDataset, stage_dataset
from pipelines.launch.lineage import check_trigger, git_state

if TYPE_CHECKING:
    from sagemaker.workflow.pipeline import Pipeline


@dataclass(frozen=True)
class PreparedRun:
    """Everything a backend needs to start a run; ``definition`` is ``pipeline``'s JSON."""

    config: InfraConfig
    pipeline: Pipeline
    definition: str
    parameters: RunParameters
    dataset: StagedDataset
    lineage: dict[str, Any]
    display_name: str
    # The check switches this run set itself: the group's first run (no Approved version).
    first_run_switches: tuple[str, ...] = ()


def prepare_run(
    connection: AwsConnection,
    config: InfraConfig,
    arguments: RunParameters,
    data: str | None,
    *,
    root: Path = PROJECT_ROOT,
    trigger: str = "manual",
) -> PreparedRun:
    """Upload the code and the data, build the definition, complete the parameters;
    ``trigger`` (``lineage.TRIGGERS``) says what started the run."""
    # The SDK loads only here, when a run is really prepared.
    from pipelines.definition.builder import definition_json, get_pipeline
    from pipelines.definition.sdk_session import definition_session

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
    parameters = RunParameters(arguments)
    dataset = stage_dataset(connection, config, data or parameters.get(Param.INPUT_DATA))
    # The job reads the content-addressed copy: exactly the bytes lineage records.
    parameters.set(Param.INPUT_DATA, dataset.read_uri or dataset.uri)
    switches = first_run_switches(connection, config, parameters)
    git = git_state(root)
    if git["git_commit"] and Param.GIT_COMMIT not in parameters:
        parameters.set(Param.GIT_COMMIT, git["git_commit"] + ("-dirty" if git["git_dirty"] else ""))
    lineage = {
        **git,
        "trigger": check_trigger(trigger),
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
        config, pipeline, definition, parameters, dataset, lineage, display_name(lineage), switches
    )


def has_approved_version(connection: AwsConnection, group: str) -> bool:
    try:
        listed = connection.sagemaker().list_model_packages(
            ModelPackageGroupName=group, ModelApprovalStatus="Approved"
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "ValidationException",
            "ResourceNotFound",
        ):
            return False
        raise MlopsError(f"Could not list the Approved versions of {group}: {error}") from error
    except BotoCoreError as error:
        raise MlopsError(f"Could not list the Approved versions of {group}: {error}") from error
    summaries = listed.get("ModelPackageSummaryList", [])
    return any(p.get("ModelApprovalStatus", "Approved") == "Approved" for p in summaries)


def first_run_switches(
    connection: AwsConnection, config: InfraConfig, parameters: RunParameters
) -> tuple[str, ...]:
    """On a group's first run, set the check switches the user left unset to true (a check
    with no baseline fails otherwise, on SageMaker as here); explicit values are kept.
    Returns the names it set."""
    if has_approved_version(connection, config.model_package_group_name):
        return ()
    unset = [name for pair in CHECK_SWITCHES for name in pair if name not in parameters]
    for name in unset:
        parameters.set(name, True)
    return tuple(unset)


def display_name(lineage: dict[str, Any], now: datetime | None = None) -> str:
    """``<trigger>-<git short sha>[-dirty]-<UTC time>``: what started an execution and
    which code it ran, at a glance, and unique to the second (SageMaker's display names
    allow 82 letters, digits and hyphens)."""
    commit = lineage.get("git_commit")
    parts = [lineage.get("trigger") or "manual", *([commit[:8]] if commit else [])]
    if lineage.get("git_dirty"):
        parts.append("dirty")
    parts.append((now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S"))
    return "-".join(parts)
