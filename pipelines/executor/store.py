"""The local executor's own state: executions and step runs in an embedded SQLite file.

The emulator marks pipeline executions "Succeeded" at once and can neither list
steps nor stop a run, so the executor keeps its own records. One worker process
writes an execution while the tasks read it (WAL mode lets both proceed).

A damaged file (cut short, emptied, overwritten) is found when it is opened
(``PRAGMA quick_check``: a few milliseconds for a hundred executions) and set aside
as ``executor.db.damaged-<time>``; a fresh store takes its place, and
:attr:`ExecutionStore.notice` says so in one sentence for the user. Nothing in the
emulator records the executions, so their history cannot be rebuilt; their logs
and outputs stay in the state folder, their model versions in the registry.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from pipelines.core.errors import MlopsError
from pipelines.core.locks import exclusive
from pipelines.core.records import Execution, StepRun

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    execution_id TEXT PRIMARY KEY,
    execution_arn TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    ended_at REAL,
    failure_reason TEXT,
    parameters TEXT NOT NULL DEFAULT '{}',
    definition TEXT NOT NULL DEFAULT '',
    definition_sha256 TEXT NOT NULL DEFAULT '',
    lineage TEXT NOT NULL DEFAULT '{}',
    runtime TEXT NOT NULL DEFAULT '{}',
    worker_pid INTEGER,
    retries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS executions_by_time ON executions (pipeline_name, created_at);
CREATE TABLE IF NOT EXISTS steps (
    execution_id TEXT NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL,
    ended_at REAL,
    failure_reason TEXT,
    properties TEXT NOT NULL DEFAULT '{}',
    property_files TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    cache_hit_of TEXT,
    cache_key TEXT,
    log_path TEXT,
    peak_memory_bytes INTEGER,
    attempt INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (execution_id, name)
);
CREATE INDEX IF NOT EXISTS steps_by_cache_key ON steps (cache_key, status);
"""
_JSON_FIELDS = {"parameters", "lineage", "runtime", "properties", "property_files", "metrics"}


# What SQLite says about a file that is not (or no longer) a sound database.
_DAMAGE = re.compile(r"malformed|not a database|corrupt|disk I/O error", re.IGNORECASE)


class ExecutionNotFound(MlopsError):
    """No execution with that id."""


class DamagedStore(MlopsError):
    """The database was damaged while this process had it open."""


class ExecutionStore:
    """Thread-safe access to the executor database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # One sentence for the user when the store was found damaged and replaced.
        self.notice: str | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Opening is serialised across processes: a store being created (0 bytes until
        # its first pragma) is never mistaken for an emptied one, and only one process
        # sets a damaged file aside.
        with exclusive(path.with_name(path.name + ".lock"), what=f"the lock of {path}"):
            problem = self._open()
            if problem is not None:
                self.notice = self._set_aside(problem)
                problem = self._open()
                if problem is not None:
                    raise MlopsError(f"Could not create a fresh record store {path}: {problem}.")

    def _open(self) -> str | None:
        """Connect and check; what is wrong with the file, or None."""
        if self.path.is_file() and self.path.stat().st_size == 0:
            return "empty"
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            verdict = [row[0] for row in self._db.execute("PRAGMA quick_check(1)")]
            if verdict != ["ok"]:
                raise sqlite3.DatabaseError(verdict[0] if verdict else "quick_check failed")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self._db.close()
            if isinstance(error, sqlite3.OperationalError) and not _DAMAGE.search(str(error)):
                raise
            return f"damaged ({error})"
        return None

    def _set_aside(self, problem: str) -> str:
        """Move the damaged file (and its WAL, which must not meet a fresh database)
        aside; the sentence that tells the user."""
        history = (
            "the history of past executions is gone"
            if problem == "empty"
            else "the executions it listed are no longer shown"
        )
        kept = ""
        if problem != "empty":
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
            kept = f"; it was kept as {aside.name}"
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{self.path}{suffix}")
                if source.exists():
                    os.replace(source, f"{aside}{suffix}")
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return (
            f"The executor's record store {self.path} was {problem}{kept}, and a fresh one "
            f"was started: {history} (their logs and outputs remain under "
            f"{self.path.parent / 'executions'}, their model versions in the registry)."
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._damage_named():
            yield self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._damage_named(), self._db:
            yield self._db

    @contextmanager
    def _damage_named(self) -> Iterator[None]:
        """A file damaged while open gives a sentence naming it, not a traceback."""
        try:
            yield
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and not _DAMAGE.search(str(error)):
                raise
            raise DamagedStore(
                f"The executor's record store {self.path} is damaged ({error}); run the "
                "command again: it sets the file aside and starts a fresh record store."
            ) from error

    # --- executions -------------------------------------------------------------------

    def insert_execution(self, execution: Execution) -> None:
        row = _to_row(asdict(execution))
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._transaction() as db:
            db.execute(f"INSERT INTO executions ({columns}) VALUES ({marks})", tuple(row.values()))  # noqa: S608

    def update_execution(self, execution_id: str, **changes: Any) -> None:
        row = _to_row(changes)
        assignments = ", ".join(f"{column} = ?" for column in row)
        with self._transaction() as db:
            db.execute(
                f"UPDATE executions SET {assignments} WHERE execution_id = ?",  # noqa: S608
                (*row.values(), execution_id),
            )

    def get_execution(self, execution_id: str) -> Execution:
        with self._reading():
            row = self._db.execute(
                "SELECT * FROM executions WHERE execution_id = ?", (execution_id,)
            ).fetchone()
        if row is None:
            raise ExecutionNotFound(f"No local execution {execution_id!r}.")
        return _from_row(Execution, row)

    def list_executions(self, pipeline_name: str | None = None, limit: int = 20) -> list[Execution]:
        query = "SELECT * FROM executions"
        args: tuple[Any, ...] = ()
        if pipeline_name:
            query += " WHERE pipeline_name = ?"
            args = (pipeline_name,)
        query += " ORDER BY created_at DESC LIMIT ?"
        with self._reading():
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [_from_row(Execution, row) for row in rows]

    def latest_execution(self, pipeline_name: str | None = None) -> Execution:
        executions = self.list_executions(pipeline_name, limit=1)
        if not executions:
            raise ExecutionNotFound("There is no local execution yet: run `invoke pipeline-run`.")
        return executions[0]

    # --- steps --------------------------------------------------------------------------

    def upsert_step(self, execution_id: str, step: StepRun) -> None:
        row = _to_row(asdict(step))
        row["execution_id"] = execution_id
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO steps ({columns}) VALUES ({marks})",  # noqa: S608
                tuple(row.values()),
            )

    def steps(self, execution_id: str) -> list[StepRun]:
        with self._reading():
            rows = self._db.execute(
                "SELECT * FROM steps WHERE execution_id = ? ORDER BY started_at, name",
                (execution_id,),
            ).fetchall()
        return [_from_row(StepRun, row) for row in rows]

    def delete_steps(self, execution_id: str, names: list[str]) -> None:
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM steps WHERE execution_id = ? AND name = ?",
                [(execution_id, name) for name in names],
            )

    def find_cached(self, cache_key: str, not_before: float) -> tuple[str, StepRun] | None:
        """The newest succeeded, non-cached run of a step with this key, if recent enough."""
        with self._reading():
            row = self._db.execute(
                "SELECT * FROM steps WHERE cache_key = ? AND status = 'Succeeded' "
                "AND cache_hit_of IS NULL AND ended_at >= ? ORDER BY ended_at DESC LIMIT 1",
                (cache_key, not_before),
            ).fetchone()
        if row is None:
            return None
        return row["execution_id"], _from_row(StepRun, row)


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    return {
        key: json.dumps(value, sort_keys=True) if key in _JSON_FIELDS else value
        for key, value in values.items()
    }


def _from_row(cls: type, row: sqlite3.Row) -> Any:
    names = {f.name for f in fields(cls)}
    values = {
        key: json.loads(row[key]) if key in _JSON_FIELDS else row[key]
        for key in row.keys()  # noqa: SIM118 - sqlite3.Row is not a mapping
        if key in names
    }
    return cls(**values)
