"""Preparing a run: from the Terraform outputs to what a backend starts.

Upload the training code (content-addressed) and the input data (versioned), build
the definition, and add the run's own values (its input, its commit) to the typed
parameters, with lineage. The parameters were typed and checked before any of this
(``pipelines.definition.parameters.check_arguments``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.infra_config import InfraConfig
from pipelines.config.pipeline_catalog import PipelineEntry
from pipelines.config.settings import PROJECT_ROOT
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.definition.code_package import package_code, upload_code
from pipelines.definition.names import TRAINING_DIR
from pipelines.definition.parameters import (
    CHECK_SWITCHES,
    Param,
    RunParameters,
    resolve_parameters,
    typed_defaults,
)
from pipelines.launch.datasets import SAMPLE_DATA, StagedDataset, stage_dataset
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
    entry: PipelineEntry | None = None,
) -> PreparedRun:
    """Upload the code and the data, build the definition, complete the parameters;
    ``trigger`` (``lineage.TRIGGERS``) says what started the run; ``entry``: the project
    pipeline's entry in invoke.yaml (its dataset settings and default data)."""
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
    if config.derived:
        ensure_model_package_group(connection, config.model_package_group_name)
    defaults = typed_defaults(entry.parameters, f"mlops.pipelines.{entry.key}") if entry else {}
    pipeline = get_pipeline(config, session, code=code, defaults=defaults)
    definition = definition_json(pipeline)
    parameters = RunParameters(arguments)
    data = data or parameters.get(Param.INPUT_DATA) or entry_data(entry, root)
    dataset = stage_dataset(connection, config, data)
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


def entry_source(entry: PipelineEntry | None, root: Path) -> str | None:
    """An entry's default input: an s3:// URI, or its file (relative to the root)."""
    if entry is None or not entry.data:
        return None
    if entry.data.startswith("s3://"):
        return entry.data
    path = Path(entry.data)
    return str(path if path.is_absolute() else root / path)


def entry_data(entry: PipelineEntry | None, root: Path) -> str | None:
    """The project pipeline's default input: None for the sample data, which is staged
    under its usual alias."""
    source = entry_source(entry, root)
    if source is not None and Path(source).resolve() == SAMPLE_DATA.resolve():
        return None
    return source


def prepare_module_run(
    connection: AwsConnection,
    config: InfraConfig,
    entry: PipelineEntry,
    assignments: Mapping[str, str],
    data: str | None,
    kwargs: Mapping[str, Any],
    *,
    root: Path = PROJECT_ROOT,
    trigger: str = "manual",
    environment: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> PreparedRun:
    """A pipeline module's run (``get_pipeline(**kwargs)``, AWS's template convention):
    build it with the project's kwargs, the entry's and ``kwargs`` (--kwargs) on top,
    inside ``environment`` (locally: its own boto3 sessions reach the emulator); stage the
    input into the entry's data parameter; type ``assignments`` (--param) against the
    definition's own parameters."""
    from pipelines.definition.modules import (
        build_pipeline,
        call_kwargs,
        infrastructure_kwargs,
        load_function,
        source_sha256,
    )

    where = entry.source.text
    if data is not None and entry.data_parameter in assignments:
        raise MlopsError(
            f"Give the input either as --data or as --param {entry.data_parameter}, not both."
        )
    function = load_function(entry.source)
    derived = infrastructure_kwargs(config)
    chosen = call_kwargs(function, derived, {**entry.kwargs, **kwargs}, where)
    # The stack's view follows what the module was given: registry, deploy and monitor
    # then act on the group and pipeline it really uses.
    config = replace(
        config,
        pipeline_name=str(chosen.get("pipeline_name") or config.pipeline_name),
        model_package_group_name=str(
            chosen.get("model_package_group_name") or config.model_package_group_name
        ),
    )
    ensure_model_package_group(connection, config.model_package_group_name)
    with environment():
        pipeline = build_pipeline(function, chosen, root, where)
        try:
            definition = pipeline.definition()
        except Exception as error:  # the SDK's own failure while rendering: say where
            raise MlopsError(f"{where}: writing the definition failed: {error}") from error
    document = json.loads(definition)
    declared = {p["Name"] for p in document.get("Parameters", [])}
    values: dict[str, Any] = {**entry.parameters, **assignments}
    # --param's input wins over the entry's default data.
    source = data or (None if entry.data_parameter in assignments else entry_source(entry, root))
    if source is not None and entry.data_parameter not in declared:
        raise MlopsError(
            f"{where}: the definition has no parameter {entry.data_parameter} to take "
            f"the input data; set mlops.pipelines.{entry.key}.data_parameter."
        )
    # Every value typed against the definition before the data is staged: a typo stops
    # here, with nothing uploaded.
    staged_later = {entry.data_parameter: "s3://staged/later"} if source is not None else {}
    resolve_parameters(document, {**values, **staged_later})
    dataset = None
    if source is not None:
        dataset = stage_dataset(connection, config, source)
        values[entry.data_parameter] = dataset.read_uri or dataset.uri
    parameters = RunParameters(resolve_parameters(document, values))
    git = git_state(root)
    lineage: dict[str, Any] = {
        **git,
        "trigger": check_trigger(trigger),
        "pipeline": {"key": entry.key, "source": where, "kwargs": _jsonable(chosen)},
        "code_sha256": source_sha256(entry.source),
    }
    if dataset is not None:
        lineage["input_data"] = {
            "uri": dataset.uri,
            "version_id": dataset.version_id,
            "etag": dataset.etag,
            "source": dataset.source,
            "read_uri": dataset.read_uri,
            "sha256": dataset.sha256,
        }
    return PreparedRun(
        config,
        pipeline,
        definition,
        parameters,
        dataset,  # type: ignore[arg-type]
        lineage,
        display_name(lineage),
    )


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(values), default=str))


def ensure_model_package_group(connection: AwsConnection, group: str) -> None:
    """The group a module registers into: Terraform's for a listed pipeline; locally, one
    the emulator creates for a pipeline not listed yet. On AWS a missing group is an error
    before anything runs (list the pipeline in invoke.yaml and run infra-up)."""
    sagemaker = connection.sagemaker()
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        return
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in (
            "ValidationException",
            "ResourceNotFound",
        ):
            raise MlopsError(f"Could not describe model package group {group}: {error}") from error
    except BotoCoreError as error:
        raise MlopsError(f"Could not describe model package group {group}: {error}") from error
    if connection.endpoint_url is None:
        raise MlopsError(
            f"Model package group {group} does not exist in the account: list the pipeline "
            "in invoke.yaml (mlops.pipelines) and run `invoke infra-up --target aws`, or pass "
            'an existing one with --kwargs \'{"model_package_group_name": "..."}\'.'
        )
    try:
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription="Created locally for a pipeline not in invoke.yaml.",
        )
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Could not create model package group {group}: {error}") from error


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
