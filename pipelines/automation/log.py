"""What the agent did: one JSON line per action, with the event that triggered it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
