"""The live progress view and the summaries of executions; the same for every backend."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.live import Live
from rich.text import Text

from pipelines.backends.base import Backend
from pipelines.containers.selection import step_runtime_labels
from pipelines.core import polling
from pipelines.core.documents import numeric_leaves
from pipelines.core.records import Execution, StepRun
from pipelines.definition.parameters import BY_NAME, Param, ParameterError
from pipelines.executor import retries
from pipelines.executor.graph import DefinitionError, PipelineGraph
from pipelines.launch.lineage import trigger_of
from pipelines.ui.console import FittingTable, LongLine
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


# Parameters every run sets itself (its input, its commit): not "changed" from a default.
RUN_SET = frozenset({Param.INPUT_DATA, Param.GIT_COMMIT})
# A longer token (a path, an ARN) would make its column too wide to wrap: cells leave it out.
MAX_CELL_WORD = 30


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


def steps_table(execution: Execution, steps: list[StepRun]) -> FittingTable:
    table = FittingTable(
        title=f"{execution.pipeline_name} · {execution.execution_id} · "
        f"{execution.status} · {_duration(execution.duration)}",
        title_justify="left",
    )
    runtimes = _runtime_labels(execution)
    table.add_column("step")
    table.add_column("type", drop=3)
    table.add_column("status")
    table.add_column("duration")
    table.add_column("cache", drop=1)
    table.add_column("memory", drop=2)
    if runtimes:
        table.add_column("runtime", drop=4)
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


def brief(text: str | None, words: int = 14) -> str:
    """A long message as a table cell: its first line, without tokens too long to wrap
    (paths, ARNs: `execution-show` has them), at most ``words`` words."""
    kept = [w for w in (text or "").strip().split("\n")[0].split() if len(w) <= MAX_CELL_WORD]
    return " ".join(kept[:words]) + (" …" if len(kept) > words else "")


def parameter_lines(execution: Execution) -> list[RenderableType]:
    """Every parameter the execution ran with; a value other than the definition's default
    names that default (the input and the commit are the run's own: not counted)."""
    if not execution.parameters:
        return []
    defaults = definition_defaults(execution)
    changed = 0
    lines: list[RenderableType] = []
    width = max(len(name) for name in execution.parameters)
    for name, value in execution.parameters.items():
        line = LongLine(f"  {name:<{width}}  {value}")
        if name not in RUN_SET and name in defaults and not same_value(name, value, defaults[name]):
            changed += 1
            line.stylize("bold", 2, 2 + width)
            line.append(f"  (default {defaults[name]})", style="yellow")
        lines.append(line)
    heading = f"Parameters ({changed} of {len(execution.parameters)} not the default):"
    return [Text(heading), *lines]


def definition_defaults(execution: Execution) -> dict[str, Any]:
    """Each parameter's default, as the execution's own definition declares it."""
    try:
        definition = json.loads(execution.definition or "{}")
    except json.JSONDecodeError:
        return {}
    return {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}


def same_value(name: str, value: Any, default: Any) -> bool:
    """Compare as the parameter's type: SageMaker reports every value as a string."""
    spec = BY_NAME.get(name)
    if spec is not None and default is not None:
        try:
            return bool(spec.convert(value) == spec.convert(default))
        except ParameterError:
            pass
    return str(value) == str(default)


def champion_table(comparison: Any, label: str = "this run") -> FittingTable:
    """A run's (or version's) metrics against the newest Approved version's."""
    champion = comparison.champion
    table = FittingTable(
        title=f"Compared with version {champion.version} (Approved)", title_justify="left"
    )
    for column in ("metric", label, f"v{champion.version}", "change", "verdict"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    styles = {"better": "green", "worse": "red"}
    for delta in comparison.deltas:
        table.add_row(
            delta.name,
            f"{delta.value:.4f}",
            f"{delta.champion:.4f}",
            f"{delta.delta:+.4f}",
            Text(delta.verdict, style=styles.get(delta.verdict, "")),
        )
    return table


def execution_summary(
    execution: Execution,
    steps: list[StepRun],
    links: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    *,
    champion: Any = None,
    full: bool = False,
) -> list[RenderableType]:
    """Metrics (and how they compare with the Approved version), parameters, the
    condition outcome, the registered model, where everything is; print it with
    ``console.print_all`` (values that must stay whole are ``LongLine``s)."""
    parts: list[RenderableType] = [Text("")]
    headline = Text(f"Execution {execution.execution_id} ")
    headline.append(execution.status, style=_STATUS_STYLE.get(execution.status, ""))
    headline.append(f" in {_duration(execution.duration)}")
    if execution.display_name:
        headline.append(f" ({execution.display_name})")
    parts.append(headline)

    metrics = FittingTable(title="Metrics", title_justify="left")
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
    if champion is not None and champion.deltas:
        parts.append(champion_table(champion))
    parts += parameter_lines(execution)
    parts += [detail(label, value) for label, value in details(execution, steps, links, full)]

    if execution.status == "Failed":
        parts.append(LongLine(f"Failure: {execution.failure_reason}", style="bold red"))
        for step in steps:
            if step.status == "Failed" and step.log_path and Path(step.log_path).exists():
                tail = Path(step.log_path).read_text(errors="replace").splitlines()[-15:]
                if tail:
                    parts.append(LongLine(f"Last lines of {step.name}'s log ({step.log_path}):"))
                    parts.append(LongLine("\n".join(f"  {line}" for line in tail), style="dim"))
    elif execution.status == "Stopped":
        parts.append(Text("The execution was stopped; resume it with `invoke pipeline-retry`."))
    return parts


def detail(label: str, value: str) -> LongLine:
    line = LongLine()
    line.append(f"{label:<15}", style="bold")
    line.append(f" {value}")
    return line


def details(
    execution: Execution,
    steps: list[StepRun],
    links: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    full: bool,
) -> list[tuple[str, str]]:
    """(label, value) lines: outcomes, artifacts, checks, logs, links and lineage."""
    found: list[tuple[str, str]] = []
    for step in steps:
        props = step.properties
        if step.type == "Condition" and "Outcome" in props:
            found.append(("condition", f"{step.name} → {props['Outcome']}"))
        if step.type == "RegisterModel" and props.get("ModelPackageArn"):
            version = (
                f"version {props.get('ModelPackageVersion')}, {props.get('ModelApprovalStatus')}"
            )
            arn = props["ModelPackageArn"] if full else "--full shows its ARN"
            found.append(("model package", f"{version} ({arn})"))
        if step.type == "Training" and props.get("ModelArtifacts"):
            found.append(("model artifact", props["ModelArtifacts"]["S3ModelArtifacts"]))
        if step.type in CHECK_STEP_TYPES and step.status == "Succeeded":
            source = props.get("BaselineSource")
            found.append(
                ("check", check_summary(step) + (f" (drift baseline: {source})" if source else ""))
            )
        if step.cache_hit_of:
            found.append(("cache hit", f"{step.name} reused execution {step.cache_hit_of}"))
    for name, policy in _retry_policies(execution):
        found.append(("retry policy", f"{name}: {policy}"))
    logged = [
        s.name
        for s in steps
        if s.log_path or s.properties.get("TrainingJobArn") or s.properties.get("ProcessingJobArn")
    ]
    if logged:
        failed = [s.name for s in steps if s.status == "Failed" and s.name in logged]
        command = f"invoke logs --execution {execution.execution_id} --step {(failed or logged)[0]}"
        others = f" (steps with logs: {', '.join(logged)})" if len(logged) > 1 else ""
        found.append(("logs", command + others))
    found += list(links)
    lineage = execution.lineage
    trigger = trigger_of(execution.display_name, lineage)
    if trigger:
        found.append(("trigger", trigger))
    if lineage.get("git_commit"):
        dirty = " (uncommitted changes)" if lineage.get("git_dirty") else ""
        found.append(("code", f"git {lineage['git_commit'][:12]}{dirty}"))
    if lineage.get("input_data"):
        data = lineage["input_data"]
        found.append(("data", f"{data.get('uri')} (version {data.get('version_id')})"))
    if execution.definition_sha256:
        found.append(("definition", f"sha256 {execution.definition_sha256[:16]}"))
    return found


def data_version(execution: Execution) -> str:
    """The input's name and S3 version, short: which data a run read, at a glance."""
    data = execution.lineage.get("input_data") or {}
    uri = data.get("uri") or str(execution.parameters.get("InputDataUrl") or "")
    if not uri:
        return "-"
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    version = data.get("version_id")
    return f"{name} version {version[:8]}" if version and version != "null" else name


def executions_table(executions: list[Execution]) -> FittingTable:
    """Recent executions: what started each, on which data, and why one failed (in brief;
    `execution-show` has the whole reason)."""
    table = FittingTable()
    table.add_column("execution")
    table.add_column("status")
    table.add_column("started", drop=3)
    table.add_column("duration", drop=4)
    table.add_column("trigger", drop=2)
    table.add_column("data", drop=1)
    table.add_column("failure")
    for execution in executions:
        started = datetime.fromtimestamp(execution.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            execution.execution_id,
            status_text(execution.status),
            started,
            _duration(execution.duration),
            trigger_of(execution.display_name, execution.lineage) or "-",
            data_version(execution),
            Text(brief(execution.failure_reason)),
        )
    return table


def execution_view(shown: Any, *, full: bool = False) -> list[RenderableType]:
    """`invoke execution-show`: the steps, then the summary (for ``console.print_all``)."""
    parts: list[RenderableType] = [steps_table(shown.execution, shown.steps)]
    parts += execution_summary(
        shown.execution, shown.steps, shown.links, champion=shown.champion, full=full
    )
    if shown.note:
        parts.append(Text(shown.note, style="dim"))
    return parts


def upload_lines(uploaded: Any) -> list[RenderableType]:
    """`invoke data-upload`: where the file went, and what that starts (or why nothing)."""
    version = f" (version {uploaded.version_id})" if uploaded.version_id else ""
    lines: list[RenderableType] = [LongLine(f"Uploaded to {uploaded.uri}{version}.")]
    rule = uploaded.rule
    run = f"`invoke pipeline-run --data {uploaded.uri}`"
    if rule.name is None:
        lines.append(LongLine(f"Automation is off here: nothing starts a run; {run} does."))
    elif not rule.enabled:
        lines.append(LongLine(f"The rule {rule.name} is disabled: nothing starts a run; {run}."))
    elif uploaded.agent_running is None:
        targets = ", ".join(rule.targets) or "no target"
        lines.append(
            LongLine(f"The rule {rule.name} starts a retraining run: it delivers to {targets}.")
        )
    elif uploaded.agent_running:
        lines.append(
            LongLine(
                f"The rule {rule.name} fires: the automation agent runs {run}; "
                "`invoke automation-log` and `invoke executions` show it."
            )
        )
    else:
        lines.append(
            LongLine(
                f"The rule {rule.name} fires, but the automation agent is not running: the "
                "event waits in its queue until `invoke automation-up`."
            )
        )
    return lines
