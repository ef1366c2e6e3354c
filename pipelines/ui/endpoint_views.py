"""Endpoints in the terminal: predictions, a promotion's gate report, a stage's deployment
history."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipelines.promotion.gates import GateResult
from pipelines.serving.deployment_records import DeploymentRecord


def _verdict(passed: bool, skipped: bool = False) -> str:
    if skipped:
        return "[yellow]skipped[/]"
    return "[green]passed[/]" if passed else "[red]FAILED[/]"


def gate_table(results: list[GateResult], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("gate")
    table.add_column("result")
    table.add_column("figures")
    for result in results:
        table.add_row(
            escape(result.name), _verdict(result.passed, result.skipped), escape(result.summary)
        )
    return table


def gates_cell(gates: list[dict]) -> str:
    if not gates:
        return "-"
    return ", ".join(
        f"{g['name']} {'skipped' if g.get('skipped') else 'ok' if g['passed'] else 'FAILED'}"
        for g in gates
    )


def history_table(records: list[DeploymentRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("when", "version", "kind", "strategy", "approved by", "gates", "outcome"):
        table.add_column(column)
    for record in records:
        approval = record.approval or {}
        approved = (
            f"{approval['approved_by']}: {approval['reason']}"
            if approval.get("approved_by")
            else "-"
        )
        # Approval reasons and outcomes are user and error text: escaped, never markup.
        table.add_row(
            escape(record.when),
            str(record.version),
            escape(record.kind)
            + (f" (from v{record.previous_version})" if record.previous_version else ""),
            escape(record.strategy),
            escape(approved),
            escape(gates_cell(record.gates)),
            escape(record.outcome),
        )
    return table


def predictions_table(result: Any, limit: int, version: int) -> RenderableType:
    table = Table(title=f"Predictions of model version {version}", header_style="bold")
    table.add_column("row", justify="right")
    target = escape(result.target)  # a column name from the user's CSV
    table.add_column(f"predicted {target}", justify="right")
    if result.actual is not None:
        table.add_column(f"actual {target}", justify="right")
        table.add_column("error", justify="right")
    for index, value in enumerate(result.values[:limit]):
        cells = [str(index + 1), f"{value:.4f}"]
        if result.actual is not None:
            cells += [f"{result.actual[index]:.4f}", f"{value - result.actual[index]:+.4f}"]
        table.add_row(*cells)
    parts: list[RenderableType] = [table]
    summary = f"{len(result.values)} predictions"
    if result.rmse is not None:
        summary += f"; against the file's {result.target}: RMSE {result.rmse:.4f}"
        if result.r2 is not None:
            summary += f", R² {result.r2:.4f}"
    parts.append(Text(summary))
    return Group(*parts)


def promotion_lines(done: Any, to_stage: str) -> Text:
    """Who approved a promotion and what it rolled out (Text: the reason is never markup)."""
    approval = done.approval
    return Text(
        f"Approved by {approval.approved_by} ({approval.how}): {approval.reason}\n"
        f"Promoted version {done.version.version} to {to_stage} "
        f"({done.rollout.record.strategy}). {done.rollout.message}"
    )
