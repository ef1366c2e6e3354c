"""What each command does, as plain functions: a task parses its arguments, calls
one of these and prints what it returns. Tests call them without invoke."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.backends.base import Backend
from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.core.records import Execution, StepRun
from pipelines.definition.builder import build_definition
from pipelines.launch.datasets import StagedDataset, check_data_argument
from pipelines.launch.prepare import check_overrides, prepare_run
from pipelines.registry import APPROVED, REJECTED, ModelVersion, Registry
from pipelines.stack.review import PlanReview, review_plan
from pipelines.stack.stacks import UpResult, infra_lock, infra_up, read_infra_config
from pipelines.targets import TARGET_MAP, open_target, target_for
from pipelines.ui.views import version_checks, watch

Notify = Callable[[str], None]


# --- infrastructure -------------------------------------------------------------------


def bring_up(settings: Settings, deployment: Deployment, on_output: Notify) -> UpResult:
    """`infra-up`: apply the stack (starting what it runs on), serialised per deployment."""
    with infra_lock(settings, deployment):
        stack = target_for(deployment).open_stack(
            settings, deployment, start=True, on_output=on_output
        )
        return infra_up(stack)


def outputs(settings: Settings, deployment: Deployment) -> InfraConfig:
    return read_infra_config(target_for(deployment).open_stack(settings, deployment))


def review(settings: Settings, deployment: Deployment, directory: Path | None) -> PlanReview:
    """`plan`: the review folder (plan.md, plan.json, plan.txt, checkov.json)."""
    stack = target_for(deployment).open_stack(settings, deployment, start=True)
    return review_plan(stack, directory)


def definition(settings: Settings, deployment: Deployment) -> tuple[InfraConfig, str]:
    """The definition JSON, from the outputs in the Terraform state."""
    config = target_for(deployment).outputs_from_state(settings, deployment)
    return config, build_definition(config)


# --- pipeline runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    backend: Backend
    execution: Execution
    dataset: StagedDataset


def start_run(
    settings: Settings,
    deployment: Deployment,
    params: list[str],
    data: str | None,
    *,
    notify: Notify,
    on_output: Notify,
) -> Started:
    """`pipeline-run` up to a started execution. Every argument is checked before
    any slow work: the parameters' types and meanings, then the data's location."""
    overrides = check_overrides(params, data)
    check_data_argument(data)
    target = target_for(deployment)
    ready = target.ready_for_run(settings, deployment, notify=notify, on_output=on_output)
    prepared = prepare_run(
        ready.stack.connection, ready.config, overrides, data, root=settings.root
    )
    note = "uploaded" if prepared.dataset.uploaded else "unchanged"
    notify(f"Input data: {prepared.dataset.uri} ({note})")
    backend = target.backend(ready.stack, ready.config)
    execution = backend.start(prepared)
    notify(f"Started {execution.execution_arn} ({execution.display_name})")
    target.after_start(settings)
    return Started(backend, execution, prepared.dataset)


def follow(
    backend: Backend,
    execution: Execution,
    timeout: float,
    *,
    confirm_stop: Callable[[Execution], bool],
    notify: Notify,
) -> Execution | None:
    """Watch an execution to its end. On Ctrl-C, stop it: at once on a target whose
    job is ours, after ``confirm_stop`` on one that keeps running without us.
    None: the user left it running."""
    try:
        return watch(backend, execution, timeout=timeout)
    except KeyboardInterrupt:
        if TARGET_MAP[backend.name].asks_before_stopping and not confirm_stop(execution):
            return None
        notify("Stopping the execution (its running job is terminated)...")
        backend.stop(execution.execution_id)
        return backend.wait(execution.execution_id, timeout=600)


def records(settings: Settings, deployment: Deployment) -> Backend:
    """A backend for reading executions (locally: the executor's records alone)."""
    return target_for(deployment).records(settings, deployment)


def find_execution(backend: Backend, execution: str | None) -> Execution:
    return backend.describe(execution) if execution else backend.latest()


def execution_details(backend: Backend, execution: Execution) -> list[StepRun]:
    return backend.details(execution, backend.steps(execution.execution_id))


def retry(
    settings: Settings, deployment: Deployment, execution: str | None
) -> tuple[Backend, Execution]:
    _, _, backend = open_target(settings, deployment)
    return backend, backend.retry(find_execution(backend, execution).execution_id)


def stop(settings: Settings, deployment: Deployment, execution: str | None) -> Execution:
    _, _, backend = open_target(settings, deployment)
    stopped = backend.stop(find_execution(backend, execution).execution_id)
    return backend.wait(stopped.execution_id, timeout=600)


# --- model registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class VersionListing:
    versions: list[ModelVersion]
    metrics: dict[int, dict[str, float]]
    checks: dict[int, str]


def list_versions(settings: Settings, deployment: Deployment, status: str | None) -> VersionListing:
    stack, config, backend = open_target(settings, deployment)
    registry = Registry(stack.connection, config.model_package_group_name)
    versions = registry.versions(status)
    metrics = {v.version: registry.metrics(v) for v in versions}
    checks = {}
    for version in versions:
        if version.execution_id:
            try:
                checks[version.version] = version_checks(backend.steps(version.execution_id))
            except MlopsError:
                checks[version.version] = ""  # the execution's records are gone
    return VersionListing(versions, metrics, checks)


def set_approval(
    settings: Settings,
    deployment: Deployment,
    version: int | None,
    approved: bool,
    reason: str | None,
) -> ModelVersion:
    """Approve or reject a version (default: the latest), recording who and why; a
    rejection must say why."""
    if not approved and not reason:
        raise MlopsError("Say why with --reason: it is recorded with the rejection.")
    stack, config, _ = open_target(settings, deployment)
    registry = Registry(stack.connection, config.model_package_group_name)
    status = APPROVED if approved else REJECTED
    who = target_for(deployment).actor(stack)
    return registry.set_status(version, status, reason or "", who)
