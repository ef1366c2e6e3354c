"""What the state folder keeps: old endpoint releases and execution sandboxes are
pruned to the newest N (``mlops.retention`` in invoke.yaml), and a report of what
each part of the folder uses."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipelines.executor.store import ExecutionStore

DEFAULT_KEEP_RELEASES = 3
DEFAULT_KEEP_SANDBOXES = 20


@dataclass(frozen=True)
class Pruned:
    removed: tuple[Path, ...]
    freed_bytes: int


def folder_bytes(path: Path) -> int:
    """Bytes used by the files under ``path`` (symlinks not followed)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue  # removed while we walked
    return total


def _remove(paths: list[Path]) -> Pruned:
    freed = 0
    for path in paths:
        freed += folder_bytes(path)
        shutil.rmtree(path, ignore_errors=True)
    return Pruned(tuple(paths), freed)


def prune_releases(endpoint_dir: Path, keep: int) -> Pruned:
    """Remove all but the newest ``keep`` releases of a local endpoint; the release
    being served is always kept, even when it is older (a rollback)."""
    releases = endpoint_dir / "releases"
    if not releases.is_dir():
        return Pruned((), 0)
    try:
        serving = json.loads((endpoint_dir / "endpoint.json").read_text()).get("release")
    except (FileNotFoundError, json.JSONDecodeError):
        serving = None
    # Release folders are named v<version>-<milliseconds>: the suffix orders them.
    ordered = sorted(
        (p for p in releases.iterdir() if p.is_dir()),
        key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else 0,
        reverse=True,
    )
    old = [p for p in ordered[max(keep, 0) :] if str(p) != serving]
    return _remove(old)


def prune_sandboxes(state_dir: Path, keep: int) -> Pruned:
    """Remove the job sandboxes (downloaded inputs, outputs, models) of finished
    executions older than the newest ``keep``; records and logs stay."""
    database = state_dir / "executor.db"
    if not database.exists():
        return Pruned((), 0)
    store = ExecutionStore(database)
    try:
        executions = store.list_executions(limit=1_000_000)
    finally:
        store.close()
    old = [e for e in executions[max(keep, 0) :] if e.finished]
    sandboxes: list[Path] = []
    for execution in old:
        steps = state_dir / "executions" / execution.execution_id / "steps"
        if steps.is_dir():
            sandboxes += sorted(steps.glob("*/attempt-*/sandbox"))
    return _remove(sandboxes)


def state_usage(state_dir: Path) -> list[tuple[str, int]]:
    """Bytes per top-level entry of the state folder, largest first."""
    if not state_dir.is_dir():
        return []
    usage = [(entry.name, folder_bytes(entry)) for entry in state_dir.iterdir()]
    return sorted(usage, key=lambda item: item[1], reverse=True)
