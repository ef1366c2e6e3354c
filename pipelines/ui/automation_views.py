"""The automation agent's action log in the terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipelines.automation.log import ActionRecord

_COLOURS = {"succeeded": "green", "failed": "red", "interrupted": "red", "running": "cyan"}
_RUN_COLOURS = {"Succeeded": "green", "Failed": "red", "Stopped": "yellow"}


def actions_table(records: list[ActionRecord]) -> Table:
    """`invoke automation-log`: what fired, when, why, what ran, how it ended, and the
    pipeline run it started (execution id and final status)."""
    table = Table(title=f"Automation actions ({len(records)}, newest first)")
    for column in ("when (UTC)", "rule", "why", "command", "outcome", "run", "seconds"):
        table.add_column(column, overflow="fold")
    for record in records:
        when = datetime.fromtimestamp(record.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        event = record.event or {}
        # Everything but the colours comes from events and commands: escaped, never markup.
        detail = escape(f"{event.get('detail-type', '')} {event.get('id', '')}")
        trigger = f"{escape(record.why)}\n[dim]{detail}[/]"
        colour = _COLOURS.get(record.outcome, "yellow")
        outcome = f"[{colour}]{record.outcome}[/]" + (
            f" (exit {record.exit_code})" if record.exit_code not in (None, 0) else ""
        )
        if record.outcome == "failed" and record.output and not record.execution_id:
            outcome += "\n" + escape(record.output.strip().splitlines()[-1][:200])
        elif record.outcome == "failed" and "run: " in record.note:
            outcome += "\n" + escape(record.note.rpartition("run: ")[2][:200])
        elif record.outcome in ("skipped", "ignored", "interrupted") and record.note:
            outcome += "\n" + escape(record.note)
        run = ""
        if record.execution_id:
            status = record.run_status or "?"
            run = f"{escape(record.execution_id)}\n[{_RUN_COLOURS.get(status, 'cyan')}]"
            run += f"{escape(status)}[/]"
        table.add_row(
            when,
            escape(record.rule),
            trigger,
            escape(" ".join(record.command)),
            outcome,
            run,
            f"{record.seconds:.1f}",
        )
    return table


def start_summary(detail: str, started: bool, queued: int, replay: bool) -> Text:
    """What `automation-up` did, and what becomes of the events that waited for it."""
    lines = [f"{'Started' if started else 'Already running:'} agent: {detail}"]
    if queued:
        lines.append(
            f"{queued} queued event(s): "
            + (
                "acting on them."
                if replay
                else "the agent logs and skips them, acting on none (`invoke automation-log` "
                "lists them; an agent started with --replay acts on queued events)."
            )
        )
    return Text("\n".join(lines))
