"""What the agent did: one JSON line per action and per change of it, with its event.

An action is written before it starts (``started``) and again as it changes (its child's
process group, then its outcome; a pipeline run it started is ``running`` until the run
ends). Each line is on disk (fsynced) before the agent goes on, so the log is also the
agent's memory across a kill: which deliveries it has acted on (their ``key``, rule and
event id: never acted on twice), which action a kill cut short, which runs it follows.
Reading keeps the latest line of each action, in the order the actions began.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pipelines.core.locks import exclusive

# Outcomes: started (acting now), running (a pipeline run it started, followed to its
# end), succeeded, failed, interrupted (the agent stopped mid-action), skipped (for this
# agent but not acted on: a duplicate, a stale or an outdated event), ignored (not this
# stack's, or not what its rule matches).
IN_PROGRESS = ("started", "running")


@dataclass(frozen=True)
class ActionRecord:
    at: float
    rule: str
    purpose: str
    why: str
    command: list[str]
    outcome: str
    exit_code: int | None
    seconds: float
    event: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    note: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    key: str = ""  # "<rule>/<event id>": one action per delivery
    pgid: int | None = None  # the child's process group while it runs
    receipt: str = ""  # the SQS receipt handle of the delivery being acted on
    execution_id: str | None = None  # the pipeline run it started
    run_status: str | None = None  # that run's status, as last seen

    def changed(self, **changes: Any) -> ActionRecord:
        return replace(self, **changes)


_FIELDS = {f.name for f in fields(ActionRecord)}


class ActionLog:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "actions.jsonl"
        self._lock = directory / "actions.lock"

    def append(self, record: ActionRecord) -> ActionRecord:
        line = json.dumps(asdict(record), sort_keys=True, default=str) + "\n"
        with exclusive(self._lock, what="the automation log"), self.path.open("a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def read(self, limit: int | None = None) -> list[ActionRecord]:
        """Newest last; the last ``limit`` actions, each as its latest line says."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        latest: dict[str, ActionRecord] = {}
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                values = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash mid-write
            values = {k: v for k, v in values.items() if k in _FIELDS}
            values.setdefault("id", f"line-{number}")  # lines written before ids
            latest[values["id"]] = ActionRecord(**values)
        records = list(latest.values())
        return records[-limit:] if limit else records
