"""The automation agent's action log in the terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.markup import escape
from rich.table import Table

from pipelines.automation.log import ActionRecord


def actions_table(records: list[ActionRecord]) -> Table:
    """`invoke automation-log`: what fired, when, why, what ran and how it ended."""
    table = Table(title=f"Automation actions ({len(records)}, newest last)")
    for column in ("when (UTC)", "rule", "why", "command", "outcome", "seconds"):
        table.add_column(column, overflow="fold")
    for record in records:
        when = datetime.fromtimestamp(record.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        event = record.event or {}
        # Everything but the colours comes from events and commands: escaped, never markup.
        detail = escape(f"{event.get('detail-type', '')} {event.get('id', '')}")
        trigger = f"{escape(record.why)}\n[dim]{detail}[/]"
        colour = {"succeeded": "green", "failed": "red"}.get(record.outcome, "yellow")
        outcome = f"[{colour}]{record.outcome}[/]" + (
            f" (exit {record.exit_code})" if record.exit_code not in (None, 0) else ""
        )
        if record.outcome == "failed" and record.output:
            outcome += "\n" + escape(record.output.strip().splitlines()[-1][:200])
        table.add_row(
            when,
            escape(record.rule),
            trigger,
            escape(" ".join(record.command) or record.note),
            outcome,
            f"{record.seconds:.1f}",
        )
    return table
