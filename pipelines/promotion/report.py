"""Terminal tables: a promotion's gate report and a stage's deployment history."""

from __future__ import annotations

from rich.table import Table

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
        table.add_row(result.name, _verdict(result.passed, result.skipped), result.summary)
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
        table.add_row(
            record.when,
            str(record.version),
            record.kind
            + (f" (from v{record.previous_version})" if record.previous_version else ""),
            record.strategy,
            approved,
            gates_cell(record.gates),
            record.outcome,
        )
    return table
