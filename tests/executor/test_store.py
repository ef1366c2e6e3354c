"""A damaged executor.db (issue 28, item 3): found on open, set aside, replaced, and
said in one sentence; never a traceback, never an empty table without a word."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.core.records import Execution
from pipelines.executor.store import DamagedStore, ExecutionStore
from tests.support import free_port, invoke_task


def _execution(number: int) -> Execution:
    execution_id = f"kept{number:08d}"
    return Execution(
        execution_id=execution_id,
        execution_arn=f"arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/{execution_id}",
        pipeline_name="p",
        status="Succeeded",
        created_at=time.time() - 100 + number,
        ended_at=time.time(),
        definition="x" * 20_000,  # about the size of a real definition
    )


def _store_with_history(path: Path, count: int = 100) -> None:
    store = ExecutionStore(path)
    for number in range(count):
        store.insert_execution(_execution(number))
    store.close()  # checkpoints the WAL: everything is in the main file


def _cut_in_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def test_a_store_cut_in_half_is_set_aside_and_replaced(tmp_path):
    path = tmp_path / "executor.db"
    _store_with_history(path)
    _cut_in_half(path)
    damaged = path.read_bytes()

    store = ExecutionStore(path)
    (aside,) = tmp_path.glob("executor.db.damaged-*")
    assert store.notice is not None
    assert str(path) in store.notice
    assert "database disk image is malformed" in store.notice
    assert f"kept as {aside.name}" in store.notice
    assert aside.read_bytes() == damaged  # kept as it was, for whoever wants to dig
    # The fresh store works, and the next open has nothing to say.
    store.insert_execution(_execution(1))
    assert [e.execution_id for e in store.list_executions()] == ["kept00000001"]
    store.close()
    assert ExecutionStore(path).notice is None


def test_a_page_overwritten_in_the_middle_is_found_on_open(tmp_path):
    """Same size, sound header: only a check of the file's pages finds this."""
    path = tmp_path / "executor.db"
    _store_with_history(path)
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2 // 4096 * 4096)
        handle.write(b"\xff" * 4096)

    store = ExecutionStore(path)
    assert store.notice is not None
    assert "was damaged" in store.notice
    assert store.list_executions() == []


def test_an_emptied_store_says_the_history_is_gone(tmp_path):
    path = tmp_path / "executor.db"
    _store_with_history(path, count=3)
    path.write_bytes(b"")

    store = ExecutionStore(path)
    assert store.notice is not None
    assert "was empty" in store.notice
    assert "history of past executions is gone" in store.notice
    assert store.list_executions() == []


def test_a_new_store_is_not_mistaken_for_an_emptied_one(tmp_path):
    assert ExecutionStore(tmp_path / "executor.db").notice is None


def test_damage_while_open_is_named_not_a_traceback(tmp_path):
    path = tmp_path / "executor.db"
    _store_with_history(path)
    store = ExecutionStore(path)
    store._db.execute("PRAGMA cache_size=1")  # read from the file, not this process's cache
    _cut_in_half(path)
    with pytest.raises(
        DamagedStore, match=f"record store {path} is damaged.*run the command again"
    ):
        store.list_executions(limit=1000)


def test_the_backend_every_run_task_opens_tells_the_user(tmp_path):
    settings = Settings(root=tmp_path, state_dir=tmp_path / ".mlops")
    _store_with_history(settings.state_dir / "executor.db")
    _cut_in_half(settings.state_dir / "executor.db")
    notes: list[str] = []
    LocalBackend(settings, None, notify=notes.append)
    (note,) = notes
    assert "was damaged" in note
    assert "a fresh one was started" in note


@pytest.mark.server
def test_executions_on_a_damaged_store_gives_one_sentence(tmp_path):
    state_dir = tmp_path / "state"
    _store_with_history(state_dir / "executor.db")
    _cut_in_half(state_dir / "executor.db")
    listed = invoke_task("executions", state_dir=state_dir, port=free_port())
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    assert f"record store {state_dir / 'executor.db'} was damaged" in listed.stderr
    assert "executor.db.damaged-" in listed.stderr
