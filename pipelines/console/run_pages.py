"""The run pages: the list of runs, one run with its graph (``run_graph``), a step's log,
and runs compared (a run with the champion: on its own page)."""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.console.page import Page
from pipelines.core.errors import MlopsError
from pipelines.core.records import FINISHED

if TYPE_CHECKING:
    from pipelines.backends.base import Backend
    from pipelines.console.source import Source
    from pipelines.core.records import Execution, StepRun

RUNS_SHOWN = 50
EXPORTED_RUNS = 20
REFRESH_SECONDS = 2
LOG_LINES_SHOWN = 20_000  # the end of a longer log; `invoke logs` prints all of it


@dataclass
class RunRow:
    id: str
    status: str
    started: float
    duration: float
    trigger: str
    data: str
    commit: str
    failure: str
    metrics: dict[str, float] = field(default_factory=dict)


def run_row(execution: Execution, metrics: dict[str, float]) -> RunRow:
    from pipelines.launch.lineage import trigger_of
    from pipelines.ui.run_views import data_version

    commit = execution.lineage.get("git_commit") or ""
    return RunRow(
        id=execution.execution_id,
        status=execution.status,
        started=execution.created_at,
        duration=execution.duration,
        trigger=trigger_of(execution.display_name, execution.lineage) or "",
        data=data_version(execution),
        commit=commit[:12]
        + (" (uncommitted changes)" if execution.lineage.get("git_dirty") else ""),
        failure=(execution.failure_reason or "").split("\n")[0],
        metrics=metrics,
    )


def key_metrics(source: Source, execution: Execution) -> dict[str, float]:
    """The evaluation's metrics. A listing without the definition (SageMaker's) does not
    say where the report is: its row shows none, rather than three API calls per run."""
    from pipelines.actions import runs

    if not execution.definition:
        return {}
    return runs.evaluation_metrics(runs.execution_details(source.backend(), execution))


def runs(source: Source, query: Mapping[str, str]) -> Page:

    executions = source.backend().list_executions(limit=RUNS_SHOWN)
    rows = [run_row(e, key_metrics(source, e)) for e in executions]
    # The run each was started after, as its run page links it.
    previous = {e.execution_id: previous_run(executions, e) for e in executions}
    status, trigger = query.get("status", ""), query.get("trigger", "")
    shown = [
        r
        for r in rows
        if (not status or r.status == status) and (not trigger or r.trigger == trigger)
    ]
    return Page(
        "Runs",
        "runs.html",
        {
            "pipeline": executions[0].pipeline_name if executions else source.settings.name_prefix,
            "runs": shown,
            "statuses": sorted({r.status for r in rows}),
            "triggers": sorted({r.trigger for r in rows if r.trigger}),
            "status": status,
            "trigger": trigger,
            "previous": previous,
            "exported_ids": {e.execution_id for e in executions[:EXPORTED_RUNS]},
        },
        section="runs",
        refresh_seconds=REFRESH_SECONDS
        if any(e.status not in FINISHED for e in executions)
        else None,
    )


def _newest(backend: Backend) -> list[Execution]:
    """The runs the runs page lists; the export writes pages for the first EXPORTED_RUNS."""
    return backend.list_executions(limit=RUNS_SHOWN)


def previous_run(listed: list[Execution], execution: Execution) -> str | None:
    """The run of the same pipeline started just before this one, among ``listed``
    (newest first)."""
    earlier = [
        e
        for e in listed
        if e.pipeline_name == execution.pipeline_name and e.created_at < execution.created_at
    ]
    return earlier[0].execution_id if earlier else None


def has_log(step: StepRun) -> bool:
    """A step whose log `invoke logs` shows: one that ran a job, or reused one."""
    props = step.properties
    return bool(
        step.log_path
        or step.cache_hit_of
        or props.get("TrainingJobArn")
        or props.get("ProcessingJobArn")
    )


@dataclass
class StepRow:
    name: str
    type: str
    status: str
    step: StepRun | None  # None: not run (yet)

    @property
    def logged(self) -> bool:
        return self.step is not None and has_log(self.step)


@dataclass
class ParameterRow:
    name: str
    value: Any
    default: Any
    changed: bool


@dataclass
class CheckRow:
    step: str
    summary: str
    violations: list[str]


def parameter_rows(execution: Execution) -> list[ParameterRow]:
    """Every parameter, as the run set it or the definition's default; a changed value
    names the default (the input and the commit are the run's own: never "changed")."""
    from pipelines.ui.run_views import RUN_SET, definition_defaults, same_value

    defaults = definition_defaults(execution)
    values = {**{name: default for name, default in defaults.items()}, **execution.parameters}
    return [
        ParameterRow(
            name,
            value,
            defaults.get(name),
            name not in RUN_SET
            and name in defaults
            and not same_value(name, value, defaults[name]),
        )
        for name, value in values.items()
    ]


def metric_rows(steps: list[StepRun]) -> list[tuple[str, str, str]]:
    """(step, metric, "value ± standard deviation"), as `execution-show` lists them."""
    from pipelines.ui.run_views import report_metrics

    rows = []
    for step in steps:
        rows += [(step.name, name, f"{value:.4f}") for name, value in sorted(step.metrics.items())]
        for document in step.property_files.values():
            rows += [(step.name, name, value) for name, value in report_metrics(document)]
    return rows


def failed_violations(step: StepRun) -> list[str]:
    """The violations a check that failed on them lists in its failure reason (a failed
    step records no properties): the executor writes one ``  - <violation>`` line each."""
    if step.status != "Failed":
        return []
    lines = (step.failure_reason or "").splitlines()[1:]
    return [line.strip()[2:] for line in lines if line.strip().startswith("- ")]


def check_rows(steps: list[StepRun]) -> list[CheckRow]:
    from pipelines.executor.checks import describe_violation
    from pipelines.ui.registry_views import CHECK_STEP_TYPES, check_summary

    return [
        CheckRow(
            step.name,
            check_summary(step).removeprefix(f"{step.name}: "),
            [describe_violation(v) for v in step.properties.get("Violations") or []]
            or failed_violations(step),
        )
        for step in steps
        if step.type in CHECK_STEP_TYPES
    ]


def lineage_rows(execution: Execution) -> list[tuple[str, str]]:
    from pipelines.launch.lineage import trigger_of

    lineage = execution.lineage
    data = lineage.get("input_data") or {}
    commit = lineage.get("git_commit")
    rows = [
        ("trigger", trigger_of(execution.display_name, lineage) or ""),
        ("data", str(data.get("uri") or execution.parameters.get("InputDataUrl") or "")),
        ("data version", str(data.get("version_id") or "")),
        ("data sha256", str(data.get("sha256") or "")),
        ("commit", (commit or "") + (" (uncommitted changes)" if lineage.get("git_dirty") else "")),
        ("code sha256", str(lineage.get("code_sha256") or "")),
        ("definition sha256", execution.definition_sha256),
    ]
    return [(label, value) for label, value in rows if value]


# Lines of `execution-show`'s details the run page shows in sections of its own.
_SHOWN_ELSEWHERE = {"check", "cache hit", "logs", "trigger", "code", "data", "definition"}


def run(source: Source, query: Mapping[str, str], execution: str) -> Page:
    from pipelines.actions import runs as run_actions
    from pipelines.console.run_graph import NODE_HEIGHT, NODE_WIDTH, layout
    from pipelines.executor.graph import DefinitionError
    from pipelines.ui.run_views import details, step_order

    backend = source.backend()
    shown = run_actions.show(
        source.settings, source.deployment, backend, backend.describe(execution)
    )
    found, steps = shown.execution, shown.steps
    newest = _newest(backend)
    graph, graph_error = None, None
    try:
        definition = json.loads(found.definition or "{}")
        graph = layout(definition, steps, finished=found.finished, now=time.time())
    except (DefinitionError, json.JSONDecodeError) as error:
        graph_error = f"The execution's definition cannot be drawn: {error}"
    by_name = {step.name: step for step in steps}
    ordered = step_order(found) or [(s.name, s.type) for s in steps]
    missing = "Not run" if found.finished else "Pending"
    step_rows = [
        StepRow(name, kind, by_name[name].status if name in by_name else missing, by_name.get(name))
        for name, kind in ordered
    ]
    step_rows += [
        StepRow(s.name, s.type, s.status, s) for s in steps if s.name not in dict(ordered)
    ]
    return Page(
        f"Run {found.execution_id}",
        "run.html",
        {
            "execution": found,
            "graph": graph,
            "graph_error": graph_error,
            "node_width": NODE_WIDTH,
            "node_height": NODE_HEIGHT,
            "steps": step_rows,
            "parameters": parameter_rows(found),
            "metrics": metric_rows(steps),
            "champion": shown.champion,
            "champion_note": shown.note,
            "checks": check_rows(steps),
            "lineage": lineage_rows(found),
            "details": [
                (label, value)
                for label, value in details(found, steps, shown.links, True)
                if label not in _SHOWN_ELSEWHERE
            ],
            "previous": previous_run(newest, found),
            "exported_ids": {e.execution_id for e in newest[:EXPORTED_RUNS]},
        },
        section="runs",
        refresh_seconds=None if found.finished else REFRESH_SECONDS,
    )


def run_log(source: Source, query: Mapping[str, str], execution: str, step: str) -> Page:
    """A step's persisted log, as `invoke logs` prints it; ``q``: only the lines holding it
    (case-insensitive)."""
    from pipelines.actions import runs as run_actions

    log = run_actions.open_step_log(source.settings, source.deployment, execution, step)
    where = log.where
    lines = "".join(run_actions.log_text(log)).splitlines()
    search = query.get("q", "").strip()
    shown = [line for line in lines if search.lower() in line.lower()] if search else lines
    cut = max(0, len(shown) - LOG_LINES_SHOWN)
    return Page(
        f"Log of {step}",
        "run_log.html",
        {
            "execution_id": execution,
            "step": step,
            "log": log,
            "where": where,
            "lines": shown[cut:],
            "cut": cut,
            "total": len(lines),
            "q": search,
        },
        section="runs",
        refresh_seconds=None if log.step.finished else REFRESH_SECONDS,
    )


@dataclass
class Compared:
    execution: Execution
    row: RunRow
    metrics: dict[str, float]
    checks: dict[str, str]
    definition: str  # pretty-printed, for the diff


def _pretty(definition: str) -> str:
    try:
        return json.dumps(json.loads(definition or "{}"), indent=2, sort_keys=True)
    except json.JSONDecodeError:
        return definition


def definition_diff(
    first: Execution, other: Execution, first_text: str, other_text: str
) -> list[str]:
    """The unified diff of two definitions (pretty-printed); empty when they are the same."""
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            first_text.splitlines(),
            other_text.splitlines(),
            first.execution_id,
            other.execution_id,
            lineterm="",
        )
    ]


def compare(source: Source, query: Mapping[str, str], executions: str) -> Page:
    """Runs side by side; the first is what the others are measured against."""
    from pipelines.actions import runs as run_actions
    from pipelines.ui.registry_views import CHECK_STEP_TYPES, check_summary
    from pipelines.ui.run_views import definition_defaults, same_value

    ids = [part for part in executions.split(",") if part]
    if len(ids) < 2 or len(set(ids)) != len(ids):
        raise MlopsError(
            "Compare takes two or more different execution ids joined by commas, "
            f"not {executions!r}."
        )
    backend = source.backend()
    compared = []
    for execution_id in ids:
        found = backend.describe(execution_id)
        steps = run_actions.execution_details(backend, found)
        metrics = run_actions.evaluation_metrics(steps)
        compared.append(
            Compared(
                found,
                run_row(found, metrics),
                metrics,
                {
                    s.name: check_summary(s).removeprefix(f"{s.name}: ")
                    for s in steps
                    if s.type in CHECK_STEP_TYPES
                },
                _pretty(found.definition),
            )
        )
    first = compared[0]
    # What each run ran with: what it set, else its own definition's default.
    values_of = [{**definition_defaults(c.execution), **c.execution.parameters} for c in compared]
    defaults = definition_defaults(first.execution)
    names = list(dict.fromkeys(name for values in values_of for name in values))
    parameters = []
    for name in names:
        values = [run_values.get(name) for run_values in values_of]
        differs = any(not same_value(name, v, values[0]) for v in values[1:])
        parameters.append((name, defaults.get(name), values, differs))
    metric_names = list(dict.fromkeys(n for c in compared for n in c.metrics))
    check_names = list(dict.fromkeys(n for c in compared for n in c.checks))
    diffs = [
        (
            c.execution.execution_id,
            definition_diff(first.execution, c.execution, first.definition, c.definition),
        )
        for c in compared[1:]
    ]
    newest = {e.execution_id for e in _newest(backend)[:EXPORTED_RUNS]}
    return Page(
        "Compare " + ", ".join(ids),
        "compare.html",
        {
            "runs": compared,
            "parameters": parameters,
            "metric_names": metric_names,
            "check_names": check_names,
            "diffs": diffs,
            "exported_ids": newest,
        },
        section="runs",
        refresh_seconds=None if all(c.execution.finished for c in compared) else REFRESH_SECONDS,
    )


def exported(source: Source) -> Iterable[tuple[str, dict[str, str]]]:
    """The runs index; the newest runs, each with its step logs and its comparison with the
    run before it: every link of an exported page names a file of the export."""
    yield "runs", {}
    backend = source.backend()
    newest = _newest(backend)
    for execution in newest[:EXPORTED_RUNS]:
        execution_id = execution.execution_id
        yield "run", {"execution": execution_id}
        for step in backend.steps(execution_id):
            if has_log(step):
                yield "run_log", {"execution": execution_id, "step": step.name}
        previous = previous_run(newest, execution)
        if previous is not None:
            yield "compare", {"executions": f"{previous},{execution_id}"}
