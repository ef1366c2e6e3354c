"""Terminal tables for monitoring results and their history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.text import Text

from pipelines.executor.checks import describe_violation
from pipelines.monitoring.execution import MonitoringResult
from pipelines.monitoring.results import EmptyWindows
from pipelines.ui.console import FittingTable

ROBUST_NOTE = (
    "distance: the robust L-infinity distance the check compares, the raw one less the "
    "sampling noise of the two sample sizes; clamped: that noise covers the whole raw distance."
)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _distance(item: Any) -> str:
    return "0 (clamped)" if item.clamped else _number(item.distance)


def result_table(result: MonitoringResult) -> FittingTable:
    ignored = (
        f"; {result.unparsable:,} captured request(s) ignored: not rows of the model's "
        "features (a header row, or another number of columns)"
        if result.unparsable
        else ""
    )
    table = FittingTable(
        title=f"Data quality of {result.endpoint} (version {result.version}): "
        f"{result.records:,} captured rows{ignored}",
    )
    columns = ("feature", "baseline mean", "current mean", "raw distance", "distance")
    for column in (*columns, "threshold", "verdict"):
        table.add_column(column, justify="left" if column in ("feature", "verdict") else "right")
    for item in result.drifts:
        verdict = Text(item.verdict, style="red") if item.violations else Text("ok")
        table.add_row(
            escape(item.name),  # a column name from the data
            _number(item.baseline_mean),
            _number(item.current_mean),
            _number(item.raw_distance),
            _distance(item),
            _number(item.threshold),
            verdict,
        )
    return table


def quality_table(result: MonitoringResult) -> FittingTable | None:
    if result.quality is None:
        return None
    table = FittingTable(title=f"Model quality: {result.quality.matched} labelled predictions")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("verdict")
    failed = {v["metric_name"]: v for v in result.quality.violations}
    for name, value in result.quality.metrics.items():
        verdict = failed[name]["constraint_check_type"] if name in failed else "ok"
        table.add_row(escape(name), f"{value:.4g}", escape(verdict))
    return table


def violation_lines(result: MonitoringResult) -> list[str]:
    """One line per violation (the tables say which features and metrics; this says why)."""
    return [describe_violation(v) for v in result.all_violations]


def alarm_line(message: dict[str, Any]) -> str:
    """One alarm's state change, as CloudWatch words it, on one line."""
    return (
        f'{message["NewStateValue"]}: "{message["AlarmName"]}" in {message["Region"]} '
        f"(was {message['OldStateValue']}): {message['NewStateReason']}"
    )


def _hour(stamp: str) -> str:
    return stamp[11:16] + "Z"


def history_table(
    records: list[dict[str, Any]], empty: Sequence[EmptyWindows] = ()
) -> FittingTable:
    """The runs that checked data and the windows without traffic (counted per hour),
    newest first."""
    table = FittingTable(title="Monitoring executions (newest first)")
    for column in ("started", "version", "rows", "violations", "drifting features", "rmse"):
        table.add_column(column, justify="right" if column in ("rows", "violations") else "left")
    rows: list[tuple[str, tuple[Any, ...]]] = []
    for record in records:
        drifting = [f["name"] for f in record.get("features", []) if f.get("violations")]
        quality = record.get("model_quality") or {}
        rmse = quality.get("metrics", {}).get("rmse")
        count = len(record.get("violations", [])) + len(quality.get("violations", []))
        cells = (
            record["started"].replace("T", " "),
            str(record["version"]),
            f"{record['records']:,}",
            str(count),
            escape(", ".join(drifting) or "-"),
            "-" if rmse is None else f"{rmse:.4g}",
        )
        rows.append((record["started"], cells))
    for windows in empty:
        plural = "window" if windows.count == 1 else "windows"
        cells = (
            windows.last.replace("T", " "),
            "-" if windows.version is None else str(windows.version),
            "0",
            "-",
            Text(
                f"{windows.count} empty {plural} from {_hour(windows.first)} to "
                f"{_hour(windows.last)}: no captured traffic",
                style="dim",
            ),
            "-",
        )
        rows.append((windows.last, cells))
    for _, cells in sorted(rows, key=lambda row: row[0], reverse=True):
        table.add_row(*cells)
    return table


def history_lines(history: Any) -> list[Any]:
    """`invoke monitor-history`: the table, then where the newest run's files are."""
    shown: list[Any] = [history_table(history.records, history.empty)]
    outputs = [r["output"] for r in history.records if r.get("output")]
    if outputs:
        shown.append(Text(f"Newest run's files: {outputs[-1]}/"))
    return shown


def result_lines(result: MonitoringResult, since: str, report: Any = None) -> list[Any]:
    """Everything `invoke monitor` prints about one run, in order: the tables, one line per
    violation, then the alarms that changed and the hooks they called. Plain lines are
    Text, so feature names and messages are never read as markup."""
    if not result.records:
        return [
            Text(
                f"No captured data for {result.endpoint} in the last {since}: nothing to check "
                "(counted as an empty window in monitor-history)."
            )
        ]
    shown: list[Any] = [result_table(result)]
    if result.drifts:
        shown.append(Text(ROBUST_NOTE, style="dim"))
    quality = quality_table(result)
    if quality is not None:
        shown.append(quality)
    shown += [Text(f"  - {line}") for line in violation_lines(result)]
    shown += [Text(alarm_line(message)) for message in result.notifications]
    shown += [
        Text(f"Alert hook {hook.target}: {'delivered' if hook.ok else 'FAILED'} ({hook.detail})")
        for hook in result.hooks
    ]
    shown.append(
        Text(f"Results in {result.output_prefix}/" + (f"; report {report}" if report else ""))
    )
    return shown
