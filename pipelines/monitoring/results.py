"""The local record of monitoring executions: one JSON file per run that checked data, the
newest N kept; a window without captured traffic is only counted, per UTC hour.

``<state_dir>/monitoring/<endpoint>/history/<UTC stamp>.json`` and
``<state_dir>/monitoring/<endpoint>/empty_windows.json``; writes and pruning take the folder's
lock, so a scheduled run and a manual one never lose each other's record. A schedule every
minute over a quiet night then leaves a dozen counts, not hundreds of records pushing the one
run that found drift out of the kept history.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.core.files import write_json_atomically
from pipelines.core.locks import exclusive

Json = dict[str, Any]


def monitoring_dir(state_dir: Path, endpoint: str) -> Path:
    return state_dir / "monitoring" / endpoint


@dataclass(frozen=True)
class EmptyWindows:
    """The windows of one UTC hour that held no captured traffic."""

    hour: str  # 2026-03-04T05
    count: int
    first: str  # when the first and the last of them ran (UTC, ISO)
    last: str
    version: int | None = None


class History:
    def __init__(self, state_dir: Path, endpoint: str, keep: int = 48) -> None:
        self.dir = monitoring_dir(state_dir, endpoint) / "history"
        self.empty_file = self.dir.parent / "empty_windows.json"
        self.keep = keep

    def _lock(self) -> Any:
        return exclusive(self.dir.parent / "history.lock", what="the monitoring history")

    def add(self, record: Json) -> Path:
        """Keep a run's record; a run that found no captured rows is counted instead."""
        if not record.get("records"):
            return self._count_empty(record)
        with self._lock():
            self.dir.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = self.dir / f"{stamp}.json"
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(record, sort_keys=True, allow_nan=False))
            tmp.replace(path)
            for old in self._files()[: -self.keep]:
                old.unlink(missing_ok=True)
        return path

    def _count_empty(self, record: Json) -> Path:
        started = str(record["started"])
        with self._lock():
            counts = self._read_empty()
            hour = started[:13]
            seen = counts.get(hour, {"count": 0, "first": started})
            counts[hour] = {**seen, "count": seen["count"] + 1, "last": started}
            counts[hour]["version"] = record.get("version")
            kept = dict(sorted(counts.items())[-self.keep :])
            self.empty_file.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomically(self.empty_file, kept)
        return self.empty_file

    def _read_empty(self) -> dict[str, Json]:
        try:
            found = json.loads(self.empty_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return found if isinstance(found, dict) else {}

    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []

    def records(self) -> list[Json]:
        """The runs that checked data, oldest first."""
        found = []
        for path in self._files():
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                continue  # removed by a prune while listing
        return found

    def empty_windows(self) -> list[EmptyWindows]:
        """The counted empty windows, oldest hour first."""
        return [
            EmptyWindows(hour, int(v["count"]), v["first"], v["last"], v.get("version"))
            for hour, v in sorted(self._read_empty().items())
        ]

    def latest(self) -> Json | None:
        """The newest run that checked data."""
        records = self.records()
        return records[-1] if records else None

    def quiet_since_latest(self) -> bool:
        """An empty window ran after the newest run that checked data: as with CloudWatch's
        ``treat_missing_data = notBreaching``, its alarms are back to OK."""
        latest, windows = self.latest(), self.empty_windows()
        return bool(windows) and (latest is None or windows[-1].last > latest["started"])
