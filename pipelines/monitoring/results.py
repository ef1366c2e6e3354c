"""The local record of monitoring executions: one JSON file per run, the newest N kept.

``<state_dir>/monitoring/<endpoint>/history/<UTC stamp>.json``; writes and pruning take the
folder's lock, so a scheduled run and a manual one never lose each other's record.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.core.locks import exclusive

Json = dict[str, Any]


def monitoring_dir(state_dir: Path, endpoint: str) -> Path:
    return state_dir / "monitoring" / endpoint


class History:
    def __init__(self, state_dir: Path, endpoint: str, keep: int = 48) -> None:
        self.dir = monitoring_dir(state_dir, endpoint) / "history"
        self.keep = keep

    def add(self, record: Json) -> Path:
        with exclusive(self.dir.parent / "history.lock", what="the monitoring history"):
            self.dir.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = self.dir / f"{stamp}.json"
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(record, sort_keys=True, allow_nan=False))
            tmp.replace(path)
            for old in self._files()[: -self.keep]:
                old.unlink(missing_ok=True)
        return path

    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []

    def records(self) -> list[Json]:
        """Oldest first."""
        found = []
        for path in self._files():
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                continue  # removed by a prune while listing
        return found

    def latest(self) -> Json | None:
        records = self.records()
        return records[-1] if records else None
