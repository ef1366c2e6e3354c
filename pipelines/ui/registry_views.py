"""The model registry in the terminal: versions with their metrics, baselines and checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from rich.text import Text

from pipelines.core.records import StepRun
from pipelines.registry import compare_metrics
from pipelines.ui.console import FittingTable

CHECK_STEP_TYPES = ("QualityCheck", "ClarifyCheck")


def check_summary(step: StepRun) -> str:
    """One check step's result: skipped, or how many violations against which baseline, and
    which baseline the version records for the next run."""
    props = step.properties
    if step.status == "Failed":
        return f"{step.name}: failed ({(step.failure_reason or '').splitlines()[0]})"
    if "CheckType" not in props:
        return f"{step.name}: {step.status}"
    if props.get("SkipCheck"):
        result = "skipped"
    elif "no baseline" in str(props.get("BaselineSource")) or props.get("ViolationCount") is None:
        result = "passed"
    else:
        result = f"passed, {props['ViolationCount']} violation(s)"
    new = props.get("BaselineUsedForDriftCheckConstraints") == props.get(
        "CalculatedBaselineConstraints"
    )
    return f"{step.name}: {result}; baseline {'new' if new else 'kept'}"


def version_checks(steps: list[StepRun]) -> str:
    """Each check of the execution behind a model version, one line each (execution-show)."""
    return "\n".join(check_summary(s) for s in steps if s.type in CHECK_STEP_TYPES)


def checks_count(steps: list[StepRun]) -> str:
    """The checks behind a version, counted: ``3 passed, 1 skipped`` (execution-show has
    each one)."""
    counts: dict[str, int] = {}
    for step in steps:
        if step.type not in CHECK_STEP_TYPES:
            continue
        if step.status == "Failed":
            outcome = "failed"
        elif step.properties.get("SkipCheck"):
            outcome = "skipped"
        else:
            outcome = "passed" if step.status == "Succeeded" else step.status.lower()
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in counts.items()) or "none"


# The metrics `models` always shows; the others when the width allows.
MAIN_METRICS = ("r2", "rmse")


def champion_cell(
    version: Any, metrics: dict[str, float], champion: Any, champion_metrics: dict[str, float]
) -> Text:
    """How a version's main metrics compare with the champion's: one line per metric."""
    if champion is None:
        return Text("-")
    if version.version == champion.version:
        return Text("champion", style="green")
    lines = Text()
    shown = {name: metrics[name] for name in MAIN_METRICS if name in metrics}
    for delta in compare_metrics(shown, champion_metrics):
        if lines:
            lines.append("\n")
        style = {"better": "green", "worse": "red"}.get(delta.verdict, "")
        lines.append(f"{delta.name} {delta.delta:+.4f} ")
        lines.append(delta.verdict, style=style)
    return lines or Text("-")


def versions_table(
    versions: list[Any],
    metrics: dict[int, dict[str, float]],
    steps: dict[int, list[StepRun] | None] | None = None,
    champion: Any = None,
) -> FittingTable:
    """The model package group's versions, newest first: key metrics, how they compare with
    the champion (the newest Approved version), the checks that let each register
    (counted), the drift baselines each records. Columns the width cannot hold are left out,
    least needed first."""
    names = sorted({name for values in metrics.values() for name in values})
    # Failure reasons and approval descriptions are user and job text: escaped, never markup.
    checks = {
        number: checks_count(found) if found is not None else "records gone"
        for number, found in (steps or {}).items()
    }
    table = FittingTable(title="Model versions (newest first)", title_justify="left")
    table.add_column("version", justify="right")
    table.add_column("status")
    table.add_column("created", drop=5)
    for name in names:
        table.add_column(name, justify="right", drop=0 if name in MAIN_METRICS else 6)
    table.add_column(f"vs Approved v{champion.version}" if champion else "vs Approved", drop=1)
    table.add_column("checks", drop=3)
    table.add_column("execution", drop=2)
    table.add_column("baselines", drop=7)
    table.add_column("commit", drop=8)
    table.add_column("note", drop=9)
    styles = {"Approved": "green", "Rejected": "red", "PendingManualApproval": "yellow"}
    best = metrics.get(champion.version, {}) if champion else {}
    for version in versions:
        created = datetime.fromtimestamp(version.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        values = metrics.get(version.version, {})
        table.add_row(
            str(version.version),
            Text(
                "Pending" if version.status == "PendingManualApproval" else version.status,
                style=styles.get(version.status, ""),
            ),
            created,
            *(f"{values[name]:.4f}" if name in values else "" for name in names),
            champion_cell(version, values, champion, best),
            checks.get(version.version, "-"),
            escape(version.execution_id or ""),
            ", ".join(getattr(version, "drift_baselines", ())) or "none",
            escape((version.commit or "")[:12]),
            Text(version.approval_description or ""),
        )
    return table


def approval_line(version: Any) -> Text:
    """What `model-approve` / `model-reject` changed (Text: the reason is never markup)."""
    return Text(f"Version {version.version}: {version.status} ({version.approval_description})")
