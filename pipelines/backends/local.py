"""The local backend: the definition runs on this machine against the emulator.

Each execution runs in a background worker process (pipelines.executor.worker)
that records its progress in the executor's SQLite database; this class starts,
watches, stops and retries those workers.

An execution is never visible without an owner that can be checked: the worker
is spawned first and its pid goes into the same INSERT (or, for a retry, the same
UPDATE) that makes the run Executing. The worker waits until the record names it
before it does anything, so a reader can always tell a live run from a dead one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
import signal
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.settings import Settings
from pipelines.core import polling, processes
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.core.records import (
    EXECUTING,
    FAILED,
    STOPPED,
    STOPPING,
    Execution,
    StepRun,
)
from pipelines.events.publish import execution_status_changed
from pipelines.executor import startup as startup_checks
from pipelines.executor.lifecycle import stop_jobs
from pipelines.executor.preflight import PreflightError
from pipelines.executor.retention import prune_sandboxes
from pipelines.executor.store import ExecutionStore

if TYPE_CHECKING:
    from pipelines.launch.prepare import PreparedRun

_WORKER_MODULE = "pipelines.executor.worker"
_ID_ALPHABET = string.ascii_lowercase + string.digits


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def new_execution_id() -> str:
    """12 lower-case letters and digits, like SageMaker's execution ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


class LocalBackend:
    name = "local"
    # The records are a local SQLite file: looking is cheap, so look four times a second.
    poll_schedule = polling.PollSchedule(0.25, 0.25)

    def __init__(
        self,
        settings: Settings,
        connection: AwsConnection | None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        """``connection`` None: the records only, readable while the emulator is down
        (listing, describing and showing executions never needs it)."""
        if connection is not None and (
            connection.endpoint_url is None or connection.ca_bundle is None
        ):
            raise MlopsError("The local backend needs the emulator connection.")
        self.settings = settings
        # Progress of a runtime build and the host-runtime warning, for the user.
        self.notify = notify or _to_stderr
        self._connection = connection
        self.store = ExecutionStore(settings.state_dir / "executor.db")
        if self.store.notice is not None:  # a damaged record store was replaced
            self.notify(self.store.notice)

    @property
    def connection(self) -> AwsConnection:
        if self._connection is None:
            raise MlopsError(
                "This needs the local AWS emulator, which is not running: start it with "
                "`invoke emulator-up`."
            )
        return self._connection

    def work_dir(self, execution_id: str) -> Path:
        return self.settings.state_dir / "executions" / execution_id

    # --- pipeline -------------------------------------------------------------------------

    def upsert(self, pipeline_name: str, definition: str, role_arn: str) -> str:
        """Create or update the pipeline in the emulator, so describe_pipeline shows it."""
        sagemaker = self.connection.client("sagemaker")
        try:
            try:
                return sagemaker.create_pipeline(
                    PipelineName=pipeline_name, PipelineDefinition=definition, RoleArn=role_arn
                )["PipelineArn"]
            except ClientError as error:
                if "already exists" not in error.response.get("Error", {}).get("Message", ""):
                    raise
            return sagemaker.update_pipeline(
                PipelineName=pipeline_name, PipelineDefinition=definition, RoleArn=role_arn
            )["PipelineArn"]
        except (ClientError, BotoCoreError) as error:
            raise MlopsError(f"Could not upsert pipeline {pipeline_name}: {error}") from error

    # --- executions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def launching(self) -> Iterator[Callable[[PreparedRun], Execution]]:
        """A worker starts at once and imports what it needs while the caller prepares the
        run (builds the definition, uploads code and data); the yielded function starts the
        run on it. Leaving without starting stops the worker: nothing runs."""
        execution_id = new_execution_id()
        process = self._spawn(execution_id)
        started: list[Execution] = []

        def start(run: PreparedRun) -> Execution:
            started.append(self.start(run, worker=(execution_id, process)))
            return started[-1]

        try:
            yield start
        finally:
            if not started:
                process.kill()
                process.wait(timeout=10)

    def start(
        self, run: PreparedRun, worker: tuple[str, subprocess.Popen[bytes]] | None = None
    ) -> Execution:
        """Upsert the pipeline in the emulator, then run its exact definition here."""
        self.upsert(run.config.pipeline_name, run.definition, run.config.execution_role_arn)
        started = self.start_definition(
            run.config.pipeline_name,
            run.definition,
            run.parameters,
            display_name=run.display_name,
            lineage=run.lineage,
            account_id=run.config.account_id,
            worker=worker,
        )
        # Each run leaves a sandbox of downloads and outputs: keep the newest N.
        prune_sandboxes(self.settings.state_dir, self.settings.keep_execution_sandboxes)
        return started

    def links(self, execution: Execution, steps: list[StepRun]) -> list[tuple[str, str]]:
        return [("work folder", str(self.work_dir(execution.execution_id)))]

    def details(self, execution: Execution, steps: list[StepRun]) -> list[StepRun]:
        return steps  # local step records already hold properties, metrics and reports

    def start_definition(
        self,
        pipeline_name: str,
        definition: str,
        parameters: dict[str, Any],
        *,
        display_name: str = "",
        lineage: dict[str, Any] | None = None,
        account_id: str | None = None,
        worker: tuple[str, subprocess.Popen[bytes]] | None = None,
    ) -> Execution:
        """Run a definition JSON as it is (tests and tools use this directly).

        ``account_id`` comes from the Terraform outputs; without it, the emulator is asked.
        ``worker``: an execution id and the worker already started for it (``launching``)."""
        execution_id = worker[0] if worker else new_execution_id()
        account_id = account_id or self._account_id()
        arn = (
            f"arn:aws:sagemaker:{self.connection.region}:{account_id}:pipeline/"
            f"{pipeline_name}/execution/{execution_id}"
        )
        work_dir = self.work_dir(execution_id)
        work_dir.mkdir(parents=True, exist_ok=True)
        execution = Execution(
            execution_id=execution_id,
            execution_arn=arn,
            pipeline_name=pipeline_name,
            status=EXECUTING,
            created_at=time.time(),
            display_name=display_name,
            parameters=startup_checks.with_defaults(definition, parameters),
            definition=definition,
            definition_sha256=hashlib.sha256(definition.encode()).hexdigest(),
            lineage=lineage or {},
            runtime={
                **self.connection.emulator_record(),
                "account_id": account_id,
                "work_dir": str(work_dir),
                "runtime_cache": str(self.settings.runtime_cache),
            },
        )
        # The worker starts first (if ``launching`` did not start it earlier): its
        # interpreter and imports (most of a fully cached run's time) overlap the preflight.
        # It waits until a record names it, so if the preflight refuses the definition it
        # is stopped and nothing runs.
        process = worker[1] if worker else self._spawn(execution_id)
        try:
            # Preflight and runtimes before the execution is recorded: a missing Python
            # raises here, and nothing runs.
            startup = startup_checks.prepare(execution, self.settings, self.notify)
            execution.runtime["job_runtimes"] = {
                image: runtime.as_record() for image, runtime in startup.runtimes.items()
            }
            if startup.problems:
                # Recorded as a failed execution that ran no step, as SageMaker reports a
                # definition it rejects at start.
                process.kill()
                execution.status = FAILED
                execution.ended_at = time.time()
                execution.failure_reason = str(PreflightError(startup.problems))
                self.store.insert_execution(execution)
                self._announce(execution, None)
                return self.store.get_execution(execution_id)
            execution.worker_pid = process.pid
            # Before the record the worker waits for: its own events always come after.
            self._announce(execution, None)
            self.store.insert_execution(execution)
        except BaseException:
            # No record names it, so nobody else could ever stop it.
            process.kill()
            raise
        finally:
            if process.poll() is None and execution.worker_pid != process.pid:
                process.wait(timeout=10)  # reap the one stopped above
        return self.store.get_execution(execution_id)

    def _announce(self, execution: Execution, previous: str | None) -> None:
        """Send the EventBridge event SageMaker emits when an execution's status changes
        from ``previous`` to ``execution.status`` (the executor sends the one at the end).
        A records-only backend (no emulator) can send nothing."""
        if self._connection is not None:
            execution_status_changed(self._connection, execution, previous)

    def _account_id(self) -> str:
        try:
            return self.connection.client("sts").get_caller_identity()["Account"]
        except (ClientError, BotoCoreError) as error:
            raise MlopsError(f"The emulator did not answer: {error}") from error

    def _spawn(self, execution_id: str) -> subprocess.Popen[bytes]:
        """Start a worker; it waits until the execution's record names it as owner."""
        return processes.spawn(
            [
                sys.executable,
                "-m",
                _WORKER_MODULE,
                "--db",
                str(self.store.path),
                "--execution-id",
                execution_id,
                # It waits for its record only while this process lives.
                "--starter-pid",
                str(os.getpid()),
            ],
            self.work_dir(execution_id) / "worker.log",
        )

    def describe(self, execution_id: str) -> Execution:
        execution = self.store.get_execution(execution_id)
        if not execution.finished and not self._worker_alive(execution):
            # Re-read: the worker may have finished between the two reads.
            execution = self.store.get_execution(execution_id)
            if not execution.finished:
                self._settle_dead_worker(execution)
                execution = self.store.get_execution(execution_id)
        return execution

    def _settle_dead_worker(self, execution: Execution) -> None:
        """The worker is gone: stop the jobs it left running and record why each
        unfinished step and the execution ended."""
        stopped = stop_jobs(self.work_dir(execution.execution_id))
        requested = execution.status == STOPPING
        status = STOPPED if requested else FAILED
        log = self.work_dir(execution.execution_id) / "worker.log"
        if requested:
            reason = "Stopped on request."
        else:
            reason = (
                f"The local executor process (pid {execution.worker_pid}) exited unexpectedly; "
                f"see {log}."
            )
        if stopped.pids:
            reason += f" Its running job(s) were stopped (process group {stopped.groups})."
        now = time.time()
        for step in self.store.steps(execution.execution_id):
            if not step.finished:
                step.status = status
                step.ended_at = now
                step.failure_reason = (
                    "Stopped on request."
                    if requested
                    else "The local executor exited while this step ran; its job was stopped."
                )
                self.store.upsert_step(execution.execution_id, step)
        self.store.update_execution(
            execution.execution_id, status=status, failure_reason=reason, ended_at=now
        )
        self._announce(self.store.get_execution(execution.execution_id), execution.status)

    def _worker_alive(self, execution: Execution) -> bool:
        return processes.is_ours(execution.worker_pid, _WORKER_MODULE, execution.execution_id)

    def steps(self, execution_id: str) -> list[StepRun]:
        return self.store.steps(execution_id)

    def read_log(self, step: StepRun, cursor: Any = None) -> tuple[str, Any]:
        """From the job.log of the step's latest attempt, by byte offset."""
        offset = int(cursor or 0)
        try:
            with Path(self.log_location(step)).open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return "", offset  # the job has not written it yet
        return data.decode(errors="replace"), offset + len(data)

    def log_location(self, step: StepRun) -> str:
        if not step.log_path:
            raise MlopsError(f"Step {step.name} ({step.type}) runs no job: it has no log.")
        return step.log_path

    def list_executions(self, pipeline_name: str | None = None, limit: int = 20) -> list[Execution]:
        found = self.store.list_executions(pipeline_name, limit)
        return [self.describe(e.execution_id) for e in found]

    def latest(self, pipeline_name: str | None = None) -> Execution:
        return self.describe(self.store.latest_execution(pipeline_name).execution_id)

    def stop(self, execution_id: str) -> Execution:
        """Ask the worker to stop: the running job is terminated, nothing new starts."""
        execution = self.describe(execution_id)
        if execution.finished:
            return execution
        # Announced before the worker hears of it: its Stopped event comes after.
        self._announce(dataclasses.replace(execution, status=STOPPING), execution.status)
        self.store.update_execution(execution_id, status=STOPPING)
        if execution.worker_pid is not None and self._worker_alive(execution):
            os.kill(execution.worker_pid, signal.SIGTERM)
        return self.store.get_execution(execution_id)

    def retry(self, execution_id: str) -> Execution:
        """Resume a failed or stopped execution: what succeeded is kept, the rest runs."""
        execution = self.describe(execution_id)
        if execution.status not in (FAILED, STOPPED):
            raise MlopsError(
                f"Execution {execution_id} is {execution.status}; only Failed or Stopped "
                "executions can be retried."
            )
        process = self._spawn(execution_id)
        resumed = {
            "status": EXECUTING,
            "failure_reason": None,
            "ended_at": None,
            "retries": execution.retries + 1,
            "worker_pid": process.pid,
        }
        # Before the update the worker waits for: its own events always come after.
        self._announce(dataclasses.replace(execution, **resumed), execution.status)
        self.store.update_execution(execution_id, **resumed)
        return self.store.get_execution(execution_id)

    def wait(self, execution_id: str, poll: float = 0.2, timeout: float | None = None) -> Execution:
        try:
            return polling.poll(
                lambda: self.describe(execution_id),
                lambda execution: execution.finished,
                polling.PollSchedule(poll, poll),
                timeout=timeout,
            )
        except polling.PollTimeout:
            raise MlopsError(
                f"Execution {execution_id} did not finish within {timeout:.0f} s."
            ) from None
