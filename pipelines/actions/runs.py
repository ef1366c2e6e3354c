"""The pipeline tasks: build the definition, start a run, follow, show, retry, stop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from pipelines.automation.agent import AgentProcess
from pipelines.backends.base import Backend
from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.pipeline_catalog import check_entry_data
from pipelines.config.settings import Settings
from pipelines.core.aws import AwsConnection
from pipelines.core.documents import numeric_leaves
from pipelines.core.errors import MlopsError
from pipelines.core.records import Execution, StepRun
from pipelines.definition.modules import load_function, parse_kwargs, sdk_environment
from pipelines.definition.parameters import (
    RunParameters,
    check_arguments,
    parse_assignments,
    typed_defaults,
)
from pipelines.launch.datasets import (
    NewDataRule,
    StagedDataset,
    check_data_argument,
    check_new_data_file,
    new_data_rule,
    upload_new_data,
)
from pipelines.launch.lineage import check_trigger
from pipelines.launch.prepare import PreparedRun, prepare_module_run, prepare_run
from pipelines.registry import MetricDelta, ModelVersion, Registry, champion_of, compare_metrics
from pipelines.targets import TARGET_MAP, open_target, target_for

Notify = Callable[[str], None]


def definition(
    settings: Settings, deployment: Deployment, kwargs: str | None = None
) -> tuple[InfraConfig, str]:
    """`pipeline-definition`: the definition JSON, from the outputs in the Terraform state.

    A pipeline module's definition is built as a run builds it (its SDK session uploads
    its code), so the stack must be up; the project pipeline's needs only the state."""
    from pipelines.definition.builder import build_definition, pretty  # the SDK, when asked

    entry = settings.pipelines.chosen
    if entry.is_project_pipeline:
        _no_kwargs(kwargs)
        config = target_for(deployment).outputs_from_state(settings, deployment)
        defaults = typed_defaults(entry.parameters, f"mlops.pipelines.{entry.key}")
        return config, build_definition(config, defaults=defaults)
    given = parse_kwargs(kwargs)
    stack, config, _ = open_target(settings, deployment)
    prepared = prepare_module_run(
        stack.connection,
        config,
        replace(entry, data=None),  # a review builds; it stages nothing
        {},
        None,
        given,
        root=settings.root,
        environment=lambda: sdk_environment(stack.connection),
    )
    return prepared.config, pretty(prepared.definition)


def _no_kwargs(kwargs: str | None) -> None:
    if kwargs:
        raise MlopsError(
            "--kwargs is for pipeline modules (get_pipeline(**kwargs)); the project pipeline "
            "takes --param NAME=VALUE and its dataset settings in invoke.yaml."
        )


@dataclass(frozen=True)
class Started:
    backend: Backend
    execution: Execution
    dataset: StagedDataset
    connection: AwsConnection
    config: InfraConfig


def start_run(
    settings: Settings,
    deployment: Deployment,
    params: list[str],
    data: str | None,
    *,
    notify: Notify,
    on_output: Notify,
    trigger: str = "manual",
    kwargs: str | None = None,
) -> Started:
    """`pipeline-run` up to a started execution. Every argument is typed and checked
    before any slow work, once: the typed values travel on to the backend. A pipeline
    module's --param values are typed against its definition once it is built (before
    anything runs)."""
    entry = settings.pipelines.chosen
    if entry.is_project_pipeline:
        _no_kwargs(kwargs)
        arguments: RunParameters = check_arguments(params, data)
        typed_defaults(entry.parameters, f"mlops.pipelines.{entry.key}")
    else:
        assignments = parse_assignments(params)
        given = parse_kwargs(kwargs)
        load_function(entry.source)  # a module that does not import fails now
    check_data_argument(data)
    if data is None:
        check_entry_data(entry, settings.root)
    check_trigger(trigger)
    target = target_for(deployment)
    ready = target.ready_for_run(settings, deployment, notify=notify, on_output=on_output)
    backend = target.backend(ready.stack, ready.config)
    # What starting needs (locally: the worker's interpreter and imports) begins now and
    # overlaps the preparation; a preparation that fails leaves nothing running.
    with backend.launching() as launch:
        if entry.is_project_pipeline:
            prepared = prepare_run(
                ready.stack.connection,
                ready.config,
                arguments,
                data,
                root=settings.root,
                trigger=trigger,
                entry=entry,
            )
        else:
            prepared = prepare_module_run(
                ready.stack.connection,
                ready.config,
                entry,
                assignments,
                data,
                given,
                root=settings.root,
                trigger=trigger,
                environment=lambda: sdk_environment(ready.stack.connection),
            )
        execution = _start(launch, prepared, ready.config.model_package_group_name, notify)
    notify(f"Started {execution.execution_arn} ({execution.display_name})")
    return Started(backend, execution, prepared.dataset, ready.stack.connection, prepared.config)


def _start(
    launch: Callable[[PreparedRun], Execution], prepared: PreparedRun, group: str, notify: Notify
) -> Execution:
    if prepared.dataset is not None:
        note = "uploaded" if prepared.dataset.uploaded else "unchanged"
        notify(f"Input data: {prepared.dataset.uri} ({note})")
    if prepared.first_run_switches:
        notify(
            f"First run of {group} (no Approved version): "
            f"set {', '.join(prepared.first_run_switches)} to true, so the checks register "
            "the baselines they calculate instead of checking against none."
        )
    return launch(prepared)


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


def find_execution(
    backend: Backend, execution: str | None, pipeline_name: str | None = None
) -> Execution:
    """An execution by id or ARN, else the latest (of ``pipeline_name``'s, when given)."""
    return backend.describe(execution) if execution else backend.latest(pipeline_name)


def find_for(
    settings: Settings, deployment: Deployment, execution: str | None
) -> tuple[Backend, Execution]:
    """The records and an execution: by id, else the latest (of --pipeline's, if given)."""
    backend = records(settings, deployment)
    return backend, find_execution(backend, execution, chosen_pipeline_name(settings, deployment))


def chosen_pipeline_name(settings: Settings, deployment: Deployment) -> str | None:
    """The SageMaker pipeline name --pipeline chose (None when it was not given: the
    local records list every pipeline's executions), from the Terraform state."""
    if not settings.pipelines.selected:
        return None
    return target_for(deployment).outputs_from_state(settings, deployment).pipeline_name


def list_executions(settings: Settings, deployment: Deployment, limit: int) -> list[Execution]:
    """`executions`: the newest first; every pipeline's locally, unless --pipeline was given."""
    backend = records(settings, deployment)
    return backend.list_executions(chosen_pipeline_name(settings, deployment), limit=limit)


def execution_details(backend: Backend, execution: Execution) -> list[StepRun]:
    return backend.details(execution, backend.steps(execution.execution_id))


def retry(
    settings: Settings, deployment: Deployment, execution: str | None
) -> tuple[Backend, Execution]:
    _, config, backend = open_target(settings, deployment)
    latest = config.pipeline_name if settings.pipelines.selected else None
    return backend, backend.retry(find_execution(backend, execution, latest).execution_id)


def stop(settings: Settings, deployment: Deployment, execution: str | None) -> Execution:
    _, config, backend = open_target(settings, deployment)
    latest = config.pipeline_name if settings.pipelines.selected else None
    stopped = backend.stop(find_execution(backend, execution, latest).execution_id)
    return backend.wait(stopped.execution_id, timeout=600)


@dataclass(frozen=True)
class ChampionComparison:
    """A run's evaluation against the newest Approved version's (the champion)."""

    champion: ModelVersion
    deltas: list[MetricDelta]


def evaluation_metrics(steps: list[StepRun]) -> dict[str, float]:
    """``{"r2": ..., "rmse": ...}`` from the run's evaluation report (a property file in
    SageMaker's model-quality layout)."""
    for step in steps:
        for document in step.property_files.values():
            if isinstance(document, dict) and "regression_metrics" in document:
                return {
                    path.removesuffix(".value").rsplit(".", 1)[-1]: value
                    for path, value in numeric_leaves(document["regression_metrics"])
                    if path.endswith(".value")
                }
    return {}


def registered_version(steps: list[StepRun]) -> int | None:
    for step in steps:
        if step.type == "RegisterModel" and step.properties.get("ModelPackageVersion"):
            return int(step.properties["ModelPackageVersion"])
    return None


def compare_with_champion(
    connection: AwsConnection, config: InfraConfig, steps: list[StepRun]
) -> ChampionComparison | None:
    """None when the run has no evaluation, no other version is Approved, or the
    registry cannot be read (the summary is shown without the comparison)."""
    metrics = evaluation_metrics(steps)
    if not metrics:
        return None
    registry = Registry(connection, config.model_package_group_name)
    try:
        champion = champion_of(registry, excluding=registered_version(steps))
    except MlopsError:
        return None
    if champion is None:
        return None
    return ChampionComparison(champion, compare_metrics(metrics, registry.metrics(champion)))


@dataclass(frozen=True)
class Shown:
    """What `execution-show` shows of one execution."""

    execution: Execution
    steps: list[StepRun]
    links: list[tuple[str, str]]
    champion: ChampionComparison | None = None
    note: str | None = None  # why there is no comparison with the Approved version


def show(
    settings: Settings, deployment: Deployment, backend: Backend, execution: Execution
) -> Shown:
    """The execution as it is now, its steps' details and, where the registry can be
    reached (records are read without the emulator), its comparison with the champion."""
    found = backend.describe(execution.execution_id)
    steps = execution_details(backend, found)
    links = backend.links(found, steps)
    if not evaluation_metrics(steps):
        return Shown(found, steps, links)
    try:
        stack, config, _ = open_target(settings, deployment)
    except MlopsError as error:
        return Shown(found, steps, links, note=f"No comparison with the Approved version: {error}")
    return Shown(found, steps, links, compare_with_champion(stack.connection, config, steps))


@dataclass(frozen=True)
class StepLog:
    backend: Backend
    execution: Execution
    step: StepRun
    reused_by: str | None = None  # the execution whose cache hit this log stands for

    @property
    def where(self) -> str:
        return self.backend.log_location(self.step)


def open_step_log(
    settings: Settings, deployment: Deployment, execution: str | None, step: str | None
) -> StepLog:
    """`invoke logs`: a step of an execution (default: the latest), by name; without a
    name, the failed step, else the last that ran a job."""
    backend = records(settings, deployment)
    found = find_execution(backend, execution, chosen_pipeline_name(settings, deployment))
    steps = backend.steps(found.execution_id)
    ran = ", ".join(s.name for s in steps) or "none yet"
    if step is not None:
        chosen = next((s for s in steps if s.name == step), None)
        if chosen is None:
            raise MlopsError(
                f"Execution {found.execution_id} has run no step named {step!r} (steps: {ran})."
            )
    else:
        jobs = [s for s in steps if s.type not in ("Condition", "Fail", "RegisterModel")]
        failed = [s for s in jobs if s.status == "Failed"]
        if not jobs:
            raise MlopsError(f"Execution {found.execution_id} has run no job yet (steps: {ran}).")
        chosen = failed[0] if failed else jobs[-1]
    if chosen.cache_hit_of:
        # A cache hit ran nothing: its log is the run whose result it reused.
        source = find_execution(backend, chosen.cache_hit_of)
        ran_there = next(
            (s for s in backend.steps(source.execution_id) if s.name == chosen.name), None
        )
        if ran_there is None:
            raise MlopsError(
                f"Step {chosen.name} reused execution {source.execution_id}, whose records no "
                "longer hold it."
            )
        return StepLog(backend, source, ran_there, reused_by=found.execution_id)
    return StepLog(backend, found, chosen)


def log_text(
    log: StepLog, *, follow: bool = False, sleep: Callable[[float], None] = time.sleep
) -> Iterator[str]:
    """The step's log as it is; with ``follow``, what it adds until the step ends."""
    step, cursor = log.step, None
    while True:
        finished = step.finished  # read before the log: the last read sees everything
        text, cursor = log.backend.read_log(step, cursor)
        if text:
            yield text
        if not follow or finished:
            return
        sleep(log.backend.poll_schedule.first)
        current = log.backend.steps(log.execution.execution_id)
        step = next((s for s in current if s.name == step.name), step)


@dataclass(frozen=True)
class Uploaded:
    """`invoke data-upload`: where the file went and what it starts."""

    uri: str
    version_id: str | None
    rule: NewDataRule
    agent_running: bool | None  # the local automation agent, where the rule feeds it


def upload_data(settings: Settings, deployment: Deployment, file: str | None) -> Uploaded:
    """Put a file under the new-data prefix the automation rule watches (read from the
    applied rule; without automation, the default prefix, and nothing starts)."""
    if not file:
        raise MlopsError("Name the file to upload: invoke data-upload --file FILE.csv.")
    path = check_new_data_file(Path(file))
    stack, config, _ = open_target(settings, deployment)
    rules = config.automation_rule_names or {}
    rule = new_data_rule(stack.connection, rules.get("new_data_retraining"))
    uri, version = upload_new_data(stack.connection, config.bucket_name, rule.prefix, path)
    agent = AgentProcess(settings).status().running if config.automation_queue_url else None
    return Uploaded(uri, version, rule, agent)
