"""The model registry in the terminal: versions with their metrics, baselines and checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipelines.core.records import StepRun

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
    """The check results of the execution behind a model version, for ``invoke models``."""
    return "\n".join(check_summary(s) for s in steps if s.type in CHECK_STEP_TYPES)


def versions_table(
    versions: list[Any],
    metrics: dict[int, dict[str, float]],
    steps: dict[int, list[StepRun] | None] | None = None,
) -> Table:
    """The model package group's versions, newest first, with their key metrics, which drift
    baselines each records, and the results of the checks that let it register (from the
    steps of the execution behind each)."""
    names = sorted({name for values in metrics.values() for name in values})
    # Failure reasons and approval descriptions are user and job text: escaped, never markup.
    checks = {
        number: escape(version_checks(found)) if found is not None else ""
        for number, found in (steps or {}).items()
    }
    table = Table(header_style="bold")
    for column in ("version", "status", "created", *names):
        table.add_column(column, overflow="fold", justify="right" if column in names else "left")
    for column in ("baselines", "checks", "execution", "commit", "note"):
        table.add_column(column, overflow="fold")
    styles = {"Approved": "green", "Rejected": "red", "PendingManualApproval": "yellow"}
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
            ", ".join(getattr(version, "drift_baselines", ())) or "none",
            checks.get(version.version, ""),
            escape(version.execution_id or ""),
            escape((version.commit or "")[:12]),
            escape(version.approval_description or ""),
        )
    return table


def approval_line(version: Any) -> Text:
    """What `model-approve` / `model-reject` changed (Text: the reason is never markup)."""
    return Text(f"Version {version.version}: {version.status} ({version.approval_description})")
