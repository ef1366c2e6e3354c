"""What the agent did: one JSON line per action, with the event that triggered it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from pipelines.core.locks import exclusive


@dataclass(frozen=True)
class ActionRecord:
    at: float
    rule: str
    purpose: str
    why: str
    command: list[str]
    outcome: str  # succeeded, failed, skipped
    exit_code: int | None
    seconds: float
    event: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    note: str = ""


class ActionLog:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "actions.jsonl"
        self._lock = directory / "actions.lock"

    def append(self, record: ActionRecord) -> None:
        with exclusive(self._lock, what="the automation log"), self.path.open("a") as handle:
            handle.write(json.dumps(asdict(record), sort_keys=True, default=str) + "\n")

    def read(self, limit: int | None = None) -> list[ActionRecord]:
        """Newest last; the last ``limit`` records."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        records = [ActionRecord(**json.loads(line)) for line in lines if line.strip()]
        return records[-limit:] if limit else records


def actions_table(records: list[ActionRecord]) -> Table:
    """`invoke automation-log`: what fired, when, why, what ran and how it ended."""
    table = Table(title=f"Automation actions ({len(records)}, newest last)")
    for column in ("when (UTC)", "rule", "why", "command", "outcome", "seconds"):
        table.add_column(column, overflow="fold")
    for record in records:
        when = datetime.fromtimestamp(record.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        event = record.event or {}
        trigger = f"{record.why}\n[dim]{event.get('detail-type', '')} {event.get('id', '')}[/]"
        colour = {"succeeded": "green", "failed": "red"}.get(record.outcome, "yellow")
        outcome = f"[{colour}]{record.outcome}[/]" + (
            f" (exit {record.exit_code})" if record.exit_code not in (None, 0) else ""
        )
        if record.outcome == "failed" and record.output:
            outcome += "\n" + record.output.strip().splitlines()[-1][:200]
        table.add_row(
            when,
            record.rule,
            trigger,
            " ".join(record.command) or record.note,
            outcome,
            f"{record.seconds:.1f}",
        )
    return table
