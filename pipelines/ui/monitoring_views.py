"""Terminal tables for monitoring results and their history."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipelines.executor.checks import describe_violation
from pipelines.monitoring.execution import MonitoringResult


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def result_table(result: MonitoringResult) -> Table:
    table = Table(
        title=f"Data quality of {result.endpoint} (version {result.version}): "
        f"{result.records:,} captured rows",
        header_style="bold",
    )
    for column in ("feature", "baseline mean", "current mean", "distance", "threshold", "verdict"):
        table.add_column(column, justify="left" if column in ("feature", "verdict") else "right")
    for item in result.drifts:
        verdict = item.verdict if item.violations else "ok"
        style = "red" if item.violations else ""
        table.add_row(
            escape(item.name),  # a column name from the data
            _number(item.baseline_mean),
            _number(item.current_mean),
            _number(item.distance),
            _number(item.threshold),
            f"[{style}]{verdict}[/]" if style else verdict,
        )
    return table


def quality_table(result: MonitoringResult) -> Table | None:
    if result.quality is None:
        return None
    table = Table(
        title=f"Model quality: {result.quality.matched} labelled predictions", header_style="bold"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("verdict")
    failed = {v["metric_name"]: v for v in result.quality.violations}
    for name, value in result.quality.metrics.items():
        verdict = failed[name]["constraint_check_type"] if name in failed else "ok"
        table.add_row(escape(name), f"{value:.4g}", escape(verdict))
    return table


def violation_lines(result: MonitoringResult) -> list[str]:
    return [describe_violation(v) for v in result.all_violations]


def history_table(records: list[dict[str, Any]]) -> Table:
    table = Table(title="Monitoring executions (newest first)", header_style="bold")
    for column in (
        "started",
        "version",
        "rows",
        "violations",
        "drifting features",
        "rmse",
        "output",
    ):
        table.add_column(column, overflow="fold")
    for record in reversed(records):
        drifting = [f["name"] for f in record.get("features", []) if f.get("violations")]
        quality = record.get("model_quality") or {}
        rmse = quality.get("metrics", {}).get("rmse")
        count = len(record.get("violations", [])) + len(quality.get("violations", []))
        table.add_row(
            record["started"],
            str(record["version"]),
            f"{record['records']:,}",
            str(count),
            escape(", ".join(drifting) or "-"),
            "-" if rmse is None else f"{rmse:.4g}",
            escape(record.get("output") or "-"),
        )
    return table


def result_lines(result: MonitoringResult, since: str, report: Any = None) -> list[Any]:
    """Everything `invoke monitor` prints about one run, in order; plain lines are
    Text, so feature names and messages are never read as markup."""
    if not result.records:
        return [
            Text(f"No captured data for {result.endpoint} in the last {since}: nothing to check.")
        ]
    shown: list[Any] = [result_table(result)]
    quality = quality_table(result)
    if quality is not None:
        shown.append(quality)
    shown += [Text(f"  - {line}") for line in violation_lines(result)]
    shown.append(
        Text(f"Results in {result.output_prefix}/" + (f"; report {report}" if report else ""))
    )
    shown += [
        Text(f"Alert hook {hook.target}: {'delivered' if hook.ok else 'FAILED'} ({hook.detail})")
        for hook in result.hooks
    ]
    return shown
