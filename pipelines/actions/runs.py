"""The pipeline tasks: build the definition, start a run, follow, show, retry, stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipelines.backends.base import Backend
from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core.records import Execution, StepRun
from pipelines.definition.parameters import RunParameters, check_arguments
from pipelines.launch.datasets import StagedDataset, check_data_argument
from pipelines.launch.prepare import prepare_run
from pipelines.targets import TARGET_MAP, open_target, target_for

Notify = Callable[[str], None]


def definition(settings: Settings, deployment: Deployment) -> tuple[InfraConfig, str]:
    """`pipeline-definition`: the definition JSON, from the outputs in the Terraform state."""
    from pipelines.definition.builder import build_definition  # the SDK, only when asked

    config = target_for(deployment).outputs_from_state(settings, deployment)
    return config, build_definition(config)


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
    """`pipeline-run` up to a started execution. Every argument is typed and checked
    before any slow work, once: the typed values travel on to the backend."""
    arguments: RunParameters = check_arguments(params, data)
    check_data_argument(data)
    target = target_for(deployment)
    ready = target.ready_for_run(settings, deployment, notify=notify, on_output=on_output)
    prepared = prepare_run(
        ready.stack.connection, ready.config, arguments, data, root=settings.root
    )
    note = "uploaded" if prepared.dataset.uploaded else "unchanged"
    notify(f"Input data: {prepared.dataset.uri} ({note})")
    if prepared.first_run_switches:
        notify(
            f"First run of {ready.config.model_package_group_name} (no Approved version): "
            f"set {', '.join(prepared.first_run_switches)} to true, so the checks register "
            "the baselines they calculate instead of checking against none."
        )
    backend = target.backend(ready.stack, ready.config)
    execution = backend.start(prepared)
    notify(f"Started {execution.execution_arn} ({execution.display_name})")
    return Started(backend, execution, prepared.dataset)


def stop_after_interrupt(
    backend: Backend,
    execution: Execution,
    *,
    confirm_stop: Callable[[Execution], bool],
    notify: Notify,
) -> Execution | None:
    """Ctrl-C while following: stop the execution, at once on a target whose job is ours,
    after ``confirm_stop`` on one that keeps running without us. None: left running."""
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
