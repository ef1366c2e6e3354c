"""The live progress view and the summaries of executions; the same for every backend."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipelines.backends.base import Backend
from pipelines.containers.selection import step_runtime_labels
from pipelines.core import polling
from pipelines.core.documents import numeric_leaves
from pipelines.core.records import Execution, StepRun
from pipelines.executor import retries
from pipelines.executor.graph import DefinitionError, PipelineGraph
from pipelines.ui.registry_views import CHECK_STEP_TYPES, check_summary

_STATUS_STYLE = {
    "Succeeded": "green",
    "Failed": "bold red",
    "Stopped": "yellow",
    "Stopping": "yellow",
    "Executing": "cyan",
    "Starting": "cyan",
    "Pending": "dim",
    "Not run": "dim",
}


def step_order(execution: Execution) -> list[tuple[str, str]]:
    """(name, type) of every step of the execution's definition, in run order."""
    try:
        graph = PipelineGraph.from_definition(json.loads(execution.definition or "{}"))
    except (DefinitionError, json.JSONDecodeError):
        return []
    return [(name, graph.steps[name].type) for name in graph.topological_order()]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _memory(value: int | None) -> str:
    return f"{value / 2**20:.0f} MiB" if value else ""


def status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def steps_table(execution: Execution, steps: list[StepRun]) -> Table:
    table = Table(
        title=f"{execution.pipeline_name} · {execution.execution_id} · "
        f"{execution.status} · {_duration(execution.duration)}",
        title_justify="left",
        show_header=True,
        header_style="bold",
    )
    runtimes = _runtime_labels(execution)
    columns = ["step", "type", "status", "duration", "cache", "memory"]
    if runtimes:
        columns.append("runtime")
    # fold, not ellipsis: on a narrow terminal a cell wraps rather than losing its end.
    for column in columns:
        table.add_column(column, overflow="fold")
    by_name = {step.name: step for step in steps}
    names = [name for name, _ in step_order(execution)] or [s.name for s in steps]
    types = dict(step_order(execution))
    for name in names:
        step = by_name.get(name)
        if step is None:
            status = "Not run" if execution.finished else "Pending"
            extra = [runtimes.get(name, "")] if runtimes else []
            table.add_row(name, types.get(name, ""), status_text(status), "", "", "", *extra)
            continue
        cache = "hit" if step.cache_hit_of else ""
        duration = (
            step.duration if step.finished else time.time() - (step.started_at or time.time())
        )
        table.add_row(
            name,
            step.type,
            status_text(step.status),
            _duration(duration),
            cache,
            _memory(step.peak_memory_bytes),
            *([runtimes.get(name, "")] if runtimes else []),
        )
    return table


def _runtime_labels(execution: Execution) -> dict[str, str]:
    """The local runtime each job step ran in (empty for AWS executions)."""
    if not execution.runtime.get("job_runtimes"):
        return {}
    try:
        definition = json.loads(execution.definition)
    except json.JSONDecodeError:
        return {}
    return step_runtime_labels(definition, execution.runtime)


def _retry_policies(execution: Execution) -> list[tuple[str, str]]:
    try:
        graph = PipelineGraph.from_definition(json.loads(execution.definition))
    except (DefinitionError, json.JSONDecodeError):
        return []
    return [
        (name, policy.describe())
        for name, node in graph.steps.items()
        for policy in retries.policies(node.spec)
    ]


def watch(
    backend: Backend,
    execution: Execution,
    *,
    timeout: float | None = None,
) -> Execution:
    """Redraw the step table until the execution finishes (or ``timeout``), looking as
    often as the backend's poll schedule says; a step change resets the back-off."""
    with Live(steps_table(execution, []), refresh_per_second=4, transient=False) as live:

        def look() -> tuple[Execution, list[StepRun]]:
            current = backend.describe(execution.execution_id)
            steps = backend.steps(current.execution_id)
            live.update(steps_table(current, steps))
            return current, steps

        try:
            found, _ = polling.poll(
                look,
                lambda seen: seen[0].finished,
                backend.poll_schedule,
                timeout=timeout,
                progress=lambda seen: tuple((s.name, s.status) for s in seen[1]),
            )
        except polling.PollTimeout as late:
            found = late.last[0]
        return found


def report_metrics(document: Any) -> list[tuple[str, str]]:
    """A metrics report as (name, "value ± standard deviation") rows, SageMaker's
    model-quality layout (``<metric>.value`` and ``<metric>.standard_deviation``)."""
    leaves = dict(numeric_leaves(document))
    rows = []
    for path, value in leaves.items():
        if path.startswith("metadata") or path.endswith(".standard_deviation"):
            continue
        name = path.removesuffix(".value")
        spread = leaves.get(f"{name}.standard_deviation")
        rows.append((name, f"{value:.4f}" + (f" ± {spread:.4f}" if spread is not None else "")))
    return rows


def execution_summary(
    execution: Execution,
    steps: list[StepRun],
    links: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
) -> RenderableType:
    """Metrics, the condition outcome, the registered model, and where everything is."""
    parts: list[RenderableType] = [Text("")]
    headline = Text(f"Execution {execution.execution_id} ")
    headline.append(execution.status, style=_STATUS_STYLE.get(execution.status, ""))
    headline.append(f" in {_duration(execution.duration)}")
    parts.append(headline)

    metrics = Table(title="Metrics", title_justify="left", header_style="bold")
    metrics.add_column("step")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for step in steps:
        for name, value in sorted(step.metrics.items()):
            metrics.add_row(step.name, name, f"{value:.4f}")
        for document in step.property_files.values():
            for name, value in report_metrics(document):
                metrics.add_row(step.name, name, value)
    if metrics.row_count:
        parts.append(metrics)

    details = Table.grid(padding=(0, 2))
    details.add_column(style="bold")
    details.add_column(overflow="fold")

    def detail(label: str, value: str) -> None:
        # S3 keys, failure reasons, paths: job and user text, never read as markup.
        details.add_row(label, escape(value))

    for step in steps:
        if step.type == "Condition" and "Outcome" in step.properties:
            detail("condition", f"{step.name} → {step.properties['Outcome']}")
        if step.type == "RegisterModel" and step.properties.get("ModelPackageArn"):
            props = step.properties
            detail(
                "model package",
                f"{props['ModelPackageArn']} (version {props.get('ModelPackageVersion')}, "
                f"{props.get('ModelApprovalStatus')})",
            )
        if step.type == "Training" and step.properties.get("ModelArtifacts"):
            detail("model artifact", step.properties["ModelArtifacts"]["S3ModelArtifacts"])
        if step.type in CHECK_STEP_TYPES and step.status == "Succeeded":
            source = step.properties.get("BaselineSource")
            detail(
                "check", check_summary(step) + (f" (drift baseline: {source})" if source else "")
            )
        if step.cache_hit_of:
            detail("cache hit", f"{step.name} reused execution {step.cache_hit_of}")
    for name, policy in _retry_policies(execution):
        detail("retry policy", f"{name}: {policy}")
    logs = {Path(s.log_path).parent.parent.parent for s in steps if s.log_path}
    for folder in sorted(logs):
        detail("logs", f"{folder}/<step>/attempt-N/job.log")
    for label, location in links:
        detail(label, location)
    lineage = execution.lineage
    if lineage.get("git_commit"):
        dirty = " (uncommitted changes)" if lineage.get("git_dirty") else ""
        detail("code", f"git {lineage['git_commit'][:12]}{dirty}")
    if lineage.get("input_data"):
        data = lineage["input_data"]
        detail("data", f"{data.get('uri')} (version {data.get('version_id')})")
    if execution.definition_sha256:
        detail("definition", f"sha256 {execution.definition_sha256[:16]}")
    parts.append(details)

    if execution.status == "Failed":
        parts.append(Text(f"Failure: {execution.failure_reason}", style="bold red"))
        for step in steps:
            if step.status == "Failed" and step.log_path and Path(step.log_path).exists():
                tail = Path(step.log_path).read_text(errors="replace").splitlines()[-15:]
                if tail:
                    parts.append(Text(f"Last lines of {step.name}'s log ({step.log_path}):"))
                    parts.append(Text("\n".join(f"  {line}" for line in tail), style="dim"))
    elif execution.status == "Stopped":
        parts.append(Text("The execution was stopped; resume it with `invoke pipeline-retry`."))
    return Group(*parts)


def executions_table(executions: list[Execution]) -> Table:
    table = Table(header_style="bold")
    for column in ("execution", "status", "started", "duration", "display name", "failure"):
        table.add_column(column, overflow="fold")
    for execution in executions:
        started = datetime.fromtimestamp(execution.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            execution.execution_id,
            status_text(execution.status),
            started,
            _duration(execution.duration),
            escape(execution.display_name),
            escape((execution.failure_reason or "")[:120]),
        )
    return table
