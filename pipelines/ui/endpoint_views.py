"""Endpoints in the terminal: predictions, a promotion's gate report, a stage's deployment
history."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.text import Text

from pipelines.promotion.gates import GateResult
from pipelines.serving.deployment_records import DeploymentRecord
from pipelines.ui.console import FittingTable


def _verdict(passed: bool, skipped: bool = False) -> str:
    if skipped:
        return "[yellow]skipped[/]"
    return "[green]passed[/]" if passed else "[red]FAILED[/]"


def gate_table(results: list[GateResult], title: str) -> FittingTable:
    table = FittingTable(title=title, title_justify="left")
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


def decided_cell(record: DeploymentRecord) -> str:
    """Who decided a deployment and why: a promotion's approval, a rollback's reason."""
    decision = record.approval or {}
    if not decision.get("approved_by"):
        return "-"
    return f"{decision['approved_by']}: {decision.get('reason') or '-'}"


def history_table(records: list[DeploymentRecord], title: str) -> FittingTable:
    """A stage's deployments, in the order given (the action gives newest first)."""
    table = FittingTable(title=title, title_justify="left")
    drops = {"strategy": 2, "gates": 1}  # the least needed, left out first on a narrow screen
    for column in ("when", "version", "kind", "strategy", "who and why", "gates", "outcome"):
        table.add_column(column, drop=drops.get(column, 0))
    for record in records:
        table.add_row(
            escape(record.when),
            str(record.version),
            escape(record.kind)
            + (f" (from v{record.previous_version})" if record.previous_version else ""),
            escape(record.strategy),
            escape(decided_cell(record)),
            escape(gates_cell(record.gates)),
            escape(record.outcome),
        )
    return table


def _change(record: DeploymentRecord | None) -> str:
    if record is None:
        return "none recorded"
    return f"{record.when}: {record.kind} of v{record.version}, {record.outcome}"


def overview_table(stages: list[Any]) -> FittingTable:
    """`deployments` without --stage: what each stage serves, since when, its last change."""
    table = FittingTable(title="Deployments by stage", title_justify="left")
    for column in ("stage", "serves", "since", "last change", "endpoint"):
        table.add_column(column, drop=1 if column == "endpoint" else 0)
    for stage in stages:
        if stage.problem:
            table.add_row(stage.stage, "-", "-", Text(stage.problem, style="yellow"), "-")
            continue
        status = stage.status
        serves = f"version {status.version}" if status.running else f"nothing ({status.detail})"
        since = stage.since.when if stage.since else "-"
        table.add_row(stage.stage, serves, since, _change(stage.last), stage.endpoint)
    return table


def predictions_table(result: Any, limit: int, version: int) -> RenderableType:
    """The first ``limit`` predictions, then how many there are and what the metrics
    cover: every row of the file, whatever was shown."""
    table = FittingTable(title=f"Predictions of model version {version}")
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
    total = len(result.values)
    shown = min(limit, total)
    lines = [
        f"Showed {shown} of {total} predictions"
        + ("." if shown == total else " (--limit N shows more, --output FILE writes them all).")
    ]
    if result.rmse is not None:
        metrics = f"RMSE {result.rmse:.4f}" + (
            f", R² {result.r2:.4f}" if result.r2 is not None else ""
        )
        lines.append(
            f"{metrics}: over all {total} rows of the file, against its {result.target} column "
            "(rows the model was trained on score better than unseen data would)."
        )
    return Group(table, *(Text(line) for line in lines))


def promotion_lines(done: Any, to_stage: str) -> Text:
    """Who approved a promotion and what it rolled out (Text: the reason is never markup)."""
    approval = done.approval
    return Text(
        f"Approved by {approval.approved_by} ({approval.how}): {approval.reason}\n"
        f"Promoted version {done.version.version} to {to_stage} "
        f"({done.rollout.record.strategy}). {done.rollout.message}"
    )
