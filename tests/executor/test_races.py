"""Races between a starting run and concurrent readers (issue 12, item 3).

A reader (``executions``, ``execution-show``, ``pipeline-stop``) runs describe()
in its own process; here it runs in the middle of the start itself, at the moment
the worker process is being spawned, which is where the old code had a window in
which a live run had no recorded owner and was marked Failed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from typing import Any

import psutil
import pytest

import pipelines.backends.local as local_module
from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.core.records import EXECUTING, FAILED, Execution
from pipelines.executor.store import ExecutionNotFound, ExecutionStore
from pipelines.executor.worker import wait_until_owner
from tests.executor.test_local_backend import BUCKET, definition, processing

UNEXPECTED = "exited unexpectedly"


class ConcurrentReader:
    """Calls describe() on every known execution, from a second backend object, each
    time the backend under test spawns a worker."""

    def __init__(self, backend: LocalBackend) -> None:
        self.reader = LocalBackend(backend.settings, backend.connection)
        self.seen: list[tuple[str, str | None]] = []
        self._popen = subprocess.Popen

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        for execution in self.reader.store.list_executions(limit=100):
            described = self.reader.describe(execution.execution_id)
            self.seen.append((described.status, described.failure_reason))
        process = self._popen(*args, **kwargs)
        # Give a reader a second look right after the spawn, before anything is recorded.
        for execution in self.reader.store.list_executions(limit=100):
            described = self.reader.describe(execution.execution_id)
            self.seen.append((described.status, described.failure_reason))
        return process


@pytest.fixture
def backend(tmp_path, emulator_connection) -> LocalBackend:
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    settings = Settings(root=tmp_path, state_dir=tmp_path / ".mlops")
    return LocalBackend(settings, emulator_connection)


def test_a_starting_run_is_never_reported_failed_by_a_concurrent_reader(
    backend, monkeypatch: pytest.MonkeyPatch
):
    reader = ConcurrentReader(backend)
    monkeypatch.setattr(local_module.subprocess, "Popen", reader.popen)
    execution = backend.start_definition(
        "executor-tests", definition(processing("Quick", "print('ran')")), {}
    )
    finished = backend.wait(execution.execution_id, timeout=120)
    assert finished.status == "Succeeded", finished.failure_reason
    assert not any(reason and UNEXPECTED in reason for _, reason in reader.seen), reader.seen


def test_a_retried_run_is_never_reported_failed_by_a_concurrent_reader(
    backend, emulator_connection, monkeypatch: pytest.MonkeyPatch
):
    s3 = emulator_connection.client("s3")
    s3.delete_object(Bucket=BUCKET, Key="races/flag.txt")
    text = definition(
        processing(
            "NeedsFlag",
            "import pathlib; print(list(pathlib.Path('/opt/ml/processing/input/data').iterdir()))",
            inputs={"data": f"s3://{BUCKET}/races/flag.txt"},
        )
    )
    failed = backend.wait(
        backend.start_definition("executor-tests", text, {}).execution_id, timeout=120
    )
    assert failed.status == FAILED
    # The first worker has exited (its record still names it) before the retry starts.
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(failed.worker_pid).wait(timeout=30)
    s3.put_object(Bucket=BUCKET, Key="races/flag.txt", Body=b"go")

    reader = ConcurrentReader(backend)
    monkeypatch.setattr(local_module.subprocess, "Popen", reader.popen)
    backend.retry(failed.execution_id)
    resumed = backend.wait(failed.execution_id, timeout=120)
    assert resumed.status == "Succeeded", resumed.failure_reason
    assert not any(reason and UNEXPECTED in reason for _, reason in reader.seen), reader.seen


def test_a_worker_that_no_record_names_never_runs(tmp_path):
    store = ExecutionStore(tmp_path / "executor.db")
    try:
        started = time.monotonic()
        assert wait_until_owner(store, "nosuchexecution", timeout=0.3) is None
        assert time.monotonic() - started >= 0.3
        store.insert_execution(
            Execution(
                execution_id="owned1",
                execution_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/owned1",
                pipeline_name="p",
                status=EXECUTING,
                created_at=time.time(),
                worker_pid=1,  # someone else
            )
        )
        assert wait_until_owner(store, "owned1", timeout=0.3) is None
        with pytest.raises(ExecutionNotFound):
            store.get_execution("nosuchexecution")
    finally:
        store.close()


def test_leaving_launching_without_starting_leaves_no_worker(backend, monkeypatch):
    spawned: list[subprocess.Popen[bytes]] = []
    spawn = backend._spawn

    def recording(execution_id: str) -> subprocess.Popen[bytes]:
        spawned.append(spawn(execution_id))
        return spawned[-1]

    monkeypatch.setattr(backend, "_spawn", recording)
    with pytest.raises(RuntimeError, match="preparation failed"), backend.launching():
        raise RuntimeError("preparation failed")
    assert len(spawned) == 1
    assert spawned[0].poll() is not None  # stopped and reaped, not left waiting
    assert backend.store.list_executions(limit=10) == []


def test_a_worker_whose_starter_died_stops_waiting(tmp_path):
    starter = subprocess.Popen([sys.executable, "-c", "pass"])
    starter.wait()
    store = ExecutionStore(tmp_path / "executor.db")
    try:
        started = time.monotonic()
        assert wait_until_owner(store, "never-recorded", timeout=60, starter=starter.pid) is None
        # It stopped because the starter is gone, long before its own deadline.
        assert time.monotonic() - started < 30
    finally:
        store.close()


def _wait_for_step(backend: LocalBackend, execution_id: str, name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        steps = {s.name: s for s in backend.steps(execution_id)}
        if name in steps and steps[name].status == EXECUTING:
            return
        time.sleep(0.1)
    raise AssertionError(f"step {name} never started")


def _job_pids(marker: str) -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if marker in " ".join(p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE
    ]


def _wait_for_job(marker: str) -> list[int]:
    """The job's processes, once started: a step is Executing from before its inputs are
    downloaded and its job is spawned (in its own namespaces where the kernel allows)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = _job_pids(marker)
        if found:
            return found
        time.sleep(0.1)
    return []


def test_a_killed_worker_leaves_no_job_running_and_its_step_failed_with_a_reason(backend):
    """Issue 12, item 6: train.py ran on under PID 1 and the step stayed Executing."""
    marker = "time.sleep(61.25)"
    execution = backend.start_definition(
        "executor-tests",
        definition(processing("Orphan", f"import time; print('up', flush=True); {marker}")),
        {},
    )
    _wait_for_step(backend, execution.execution_id, "Orphan")
    jobs = _wait_for_job(marker)
    assert jobs, "the job is running"
    worker = psutil.Process(backend.store.get_execution(execution.execution_id).worker_pid)
    worker.kill()
    worker.wait(timeout=10)

    described = backend.describe(execution.execution_id)
    assert described.status == FAILED
    assert "exited unexpectedly" in described.failure_reason
    assert "job(s) were stopped" in described.failure_reason
    step = {s.name: s for s in backend.steps(execution.execution_id)}["Orphan"]
    assert step.status == FAILED
    assert "its job was stopped" in step.failure_reason
    assert _job_pids(marker) == []


def test_stopping_a_run_whose_worker_died_stops_its_job(backend):
    marker = "time.sleep(62.5)"
    execution = backend.start_definition(
        "executor-tests", definition(processing("Orphan", f"import time; {marker}")), {}
    )
    _wait_for_step(backend, execution.execution_id, "Orphan")
    assert _wait_for_job(marker), "the job is running"
    worker = psutil.Process(backend.store.get_execution(execution.execution_id).worker_pid)
    worker.kill()
    worker.wait(timeout=10)
    stopped = backend.stop(execution.execution_id)
    assert stopped.finished
    assert _job_pids(marker) == []


def test_destroy_stops_running_executions_first(backend):
    """Issue 12, item 5: a run kept uploading into the bucket destroy was emptying."""
    import dataclasses

    from pipelines.teardown import stop_running_executions
    from tests.definition.conftest import CONFIG

    marker = "time.sleep(63.75)"
    execution = backend.start_definition(
        "executor-tests", definition(processing("Uploading", f"import time; {marker}")), {}
    )
    _wait_for_step(backend, execution.execution_id, "Uploading")
    assert _wait_for_job(marker), "the job is running"
    config = dataclasses.replace(CONFIG, pipeline_name="executor-tests")
    stopped = stop_running_executions(backend, config)
    assert stopped == [execution.execution_id]
    assert backend.describe(execution.execution_id).status == "Stopped"
    assert _job_pids(marker) == []
