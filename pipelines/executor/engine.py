"""Run one execution of a pipeline definition, step by step, as SageMaker would.

The engine walks the step graph: a step starts when everything it refers to has
succeeded (and, inside a condition branch, when that branch was taken); steps
that are ready at the same time run in parallel. Every step's arguments are
resolved from the definition at that moment, cached per its CacheConfig, run by
the runner of its type, and recorded in the store. A failure or a stop request
lets running steps finish but starts no new one.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.containers.environments import JobRuntime
from pipelines.core.aws import AwsConnection
from pipelines.core.records import (
    EXECUTING,
    FAILED,
    STARTING,
    STOPPED,
    SUCCEEDED,
    Execution,
    StepRun,
)
from pipelines.events.publish import execution_status_changed
from pipelines.executor import cache, retries
from pipelines.executor.checks import CHECK_RUNNERS, baseline_identity, step_request
from pipelines.executor.conditions import evaluate_conditions
from pipelines.executor.expressions import (
    EvaluationContext,
    ExpressionError,
    referenced_steps,
    resolve,
)
from pipelines.executor.graph import DefinitionError, PipelineGraph, StepNode
from pipelines.executor.preflight import (
    request_problems,
    supported_step_types,
    validation_message,
)
from pipelines.executor.runners import (
    RUNNERS,
    JobContext,
    Runner,
    StepFailed,
    StepOutcome,
    StepStopped,
)
from pipelines.executor.store import ExecutionStore
from pipelines.executor.transform import TRANSFORM_RUNNERS
from pipelines.executor.validation import preload_service_model

NOT_EXECUTED = "NotExecuted"  # never stored: the step's branch or inputs never came


def _refers_to_steps(node: StepNode) -> bool:
    """Whether the step's request holds values that only earlier steps provide."""
    text = json.dumps(node.arguments)
    return bool(referenced_steps(node.arguments)) or "Std:JsonGet" in text


class Engine:
    def __init__(
        self,
        store: ExecutionStore,
        execution: Execution,
        connection: AwsConnection,
        work_dir: Path,
        job_env: Mapping[str, str],
        stop: threading.Event | None = None,
        max_workers: int | None = None,
    ) -> None:
        self.store = store
        self.execution = execution
        self.connection = connection
        self.work_dir = work_dir
        self.job_env = dict(job_env)
        self.stop = stop or threading.Event()
        self.max_workers = max_workers or max(2, os.cpu_count() or 2)
        self._lock = threading.Lock()
        self._properties: dict[str, dict[str, Any]] = {}
        self._property_files: dict[str, dict[str, Any]] = {}
        self._outcomes: dict[str, bool] = {}
        cache_dir = execution.runtime.get("runtime_cache")
        self._runtime_cache = Path(cache_dir) if cache_dir else None
        self._runtimes = {
            image: JobRuntime.from_record(record)
            for image, record in (execution.runtime.get("job_runtimes") or {}).items()
        }

    # --- the execution ------------------------------------------------------------------

    def run(self) -> Execution:
        # The API model the later steps' requests are checked against loads while the
        # first jobs run, not on their critical path.
        threading.Thread(target=preload_service_model, daemon=True).start()
        try:
            graph = PipelineGraph.from_definition(json.loads(self.execution.definition))
        except (DefinitionError, json.JSONDecodeError) as error:
            return self._finish(FAILED, f"Invalid pipeline definition: {error}")

        statuses = self._restore_succeeded_steps()
        order = graph.topological_order()
        running: dict[Future[str], str] = {}
        failure: tuple[str, str] | None = None
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="step") as pool:
            while True:
                self._mark_not_executed(graph, order, statuses, set(running.values()))
                if failure is None and not self.stop.is_set():
                    for name in self._ready(graph, order, statuses, set(running.values())):
                        running[pool.submit(self._run_step, graph.steps[name])] = name
                if not running:
                    break
                done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    statuses[name] = future.result()
                    if statuses[name] == FAILED and failure is None:
                        failure = (name, self._failure_reason(name))

        if failure is not None:
            name, reason = failure
            node = graph.steps[name]
            prefix = "" if node.type == "Fail" else f"Step {name} failed: "
            return self._finish(FAILED, prefix + reason)
        interrupted = STOPPED in statuses.values() or len(statuses) < len(order)
        if self.stop.is_set() and interrupted:
            return self._finish(STOPPED, "Stopped on request.")
        return self._finish(SUCCEEDED, None)

    def _restore_succeeded_steps(self) -> dict[str, str]:
        """On a retry, keep what succeeded and forget the rest."""
        statuses: dict[str, str] = {}
        previous = self.store.steps(self.execution.execution_id)
        self.store.delete_steps(
            self.execution.execution_id, [s.name for s in previous if s.status != SUCCEEDED]
        )
        for step in previous:
            if step.status == SUCCEEDED:
                statuses[step.name] = SUCCEEDED
                self._properties[step.name] = step.properties
                self._property_files[step.name] = step.property_files
                if step.type == "Condition":
                    self._outcomes[step.name] = step.properties.get("Outcome") == "True"
        return statuses

    def _branch_taken(self, node: StepNode) -> bool | None:
        if node.condition is None:
            return True
        if node.condition not in self._outcomes:
            return None
        return self._outcomes[node.condition] == node.branch

    def _ready(
        self, graph: PipelineGraph, order: list[str], statuses: dict[str, str], running: set[str]
    ) -> list[str]:
        return [
            name
            for name in order
            if name not in statuses
            and name not in running
            and all(statuses.get(dep) == SUCCEEDED for dep in graph.dependencies[name])
            and self._branch_taken(graph.steps[name]) is True
        ]

    def _mark_not_executed(
        self, graph: PipelineGraph, order: list[str], statuses: dict[str, str], running: set[str]
    ) -> None:
        changed = True
        while changed:
            changed = False
            for name in order:
                if name in statuses or name in running:
                    continue
                blocked = any(
                    statuses.get(dep) in (FAILED, STOPPED, NOT_EXECUTED)
                    for dep in graph.dependencies[name]
                )
                if blocked or self._branch_taken(graph.steps[name]) is False:
                    statuses[name] = NOT_EXECUTED
                    changed = True

    def _finish(self, status: str, reason: str | None) -> Execution:
        ended = time.time()
        # Executing, or Stopping when a stop was asked for meanwhile: the event says which.
        previous = self.store.get_execution(self.execution.execution_id).status
        self.store.update_execution(
            self.execution.execution_id, status=status, failure_reason=reason, ended_at=ended
        )
        finished = self.store.get_execution(self.execution.execution_id)
        execution_status_changed(self.connection, finished, previous)  # as SageMaker emits it
        return finished

    def _failure_reason(self, name: str) -> str:
        for step in self.store.steps(self.execution.execution_id):
            if step.name == name:
                return step.failure_reason or "unknown reason"
        return "unknown reason"

    # --- one step -----------------------------------------------------------------------

    def _context(self) -> EvaluationContext:
        now = datetime.now(UTC).isoformat()
        pipeline_arn = self.execution.execution_arn.rsplit("/execution/", 1)[0]
        with self._lock:
            return EvaluationContext(
                parameters=dict(self.execution.parameters),
                execution={
                    "PipelineExecutionId": self.execution.execution_id,
                    "PipelineExecutionArn": self.execution.execution_arn,
                    "PipelineName": self.execution.pipeline_name,
                    "PipelineArn": pipeline_arn,
                    "StartDateTime": datetime.fromtimestamp(
                        self.execution.created_at, UTC
                    ).isoformat(),
                    "CurrentDateTime": now,
                    "Region": self.execution.region,
                },
                step_properties=dict(self._properties),
                property_files=dict(self._property_files),
            )

    def _step_dir(self, name: str, attempt: int) -> Path:
        return self.work_dir / "steps" / name / f"attempt-{attempt}"

    def _run_step(self, node: StepNode) -> str:
        attempt = self.execution.retries + 1
        step_dir = self._step_dir(node.name, attempt)
        step_dir.mkdir(parents=True, exist_ok=True)
        record = StepRun(
            name=node.name,
            type=node.type,
            status=STARTING,
            started_at=time.time(),
            log_path=str(step_dir / "job.log"),
            attempt=attempt,
        )
        self.store.upsert_step(self.execution.execution_id, record)
        try:
            status = self._execute(node, record, step_dir)
        except Exception as error:  # a defect in the executor, not in the job
            (step_dir / "executor-error.log").write_text(traceback.format_exc())
            record.failure_reason = f"InternalError: {type(error).__name__}: {error}"
            status = FAILED
        record.status = status
        record.ended_at = time.time()
        self.store.upsert_step(self.execution.execution_id, record)
        if status == SUCCEEDED and (step_dir / "sandbox").exists():
            # The outputs are in S3; the local copies of inputs and outputs are not needed.
            shutil.rmtree(step_dir / "sandbox", ignore_errors=True)
        return status

    def _execute(self, node: StepNode, record: StepRun, step_dir: Path) -> str:
        ctx = self._context()
        try:
            if node.type == "Condition":
                outcome = evaluate_conditions(list(node.arguments.get("Conditions", [])), ctx)
                with self._lock:
                    self._outcomes[node.name] = outcome
                record.properties = {"Outcome": str(outcome)}
                self._publish(node.name, record.properties, {})
                return SUCCEEDED
            runner = (
                RUNNERS.get(node.type)
                or CHECK_RUNNERS.get(node.type)
                or TRANSFORM_RUNNERS.get(node.type)
            )
            if runner is None:
                record.failure_reason = (
                    f"Unsupported step type {node.type!r}: the local executor runs "
                    + ", ".join(supported_step_types())
                    + " steps."
                )
                return FAILED
            arguments = resolve(step_request(node), ctx)
        except ExpressionError as error:
            record.failure_reason = f"Cannot resolve the step's arguments: {error}"
            return FAILED
        # Values from earlier steps are known now: the whole request is checked before
        # anything is sent or started, as SageMaker validates it on submission. A request
        # that refers to no step was checked whole by the preflight already.
        invalid = request_problems(node.type, arguments) if _refers_to_steps(node) else []
        if invalid:
            record.failure_reason = validation_message(node.type, invalid)
            return FAILED

        job = JobContext(
            execution=self.execution,
            connection=self.connection,
            step_dir=step_dir,
            stop=self.stop,
            job_env=self.job_env,
            runtimes=self._runtimes,
            runtime_cache=self._runtime_cache,
        )
        s3 = self.connection.client("s3")
        use_cache = cache.cache_enabled(node.spec)
        if use_cache:
            try:
                context = baseline_identity(arguments, job) if node.type in CHECK_RUNNERS else {}
                record.cache_key = cache.cache_key(
                    self.execution.pipeline_name, node.type, arguments, s3, context
                )
                hit = self._cache_hit(node, record.cache_key, s3)
            except (ClientError, BotoCoreError, ValueError) as error:
                record.failure_reason = f"ClientError: cannot compute the cache key: {error}"
                return FAILED
            except StepFailed as failure:
                record.failure_reason = failure.reason
                return FAILED
            if hit is not None:
                source_execution, cached = hit
                record.cache_hit_of = source_execution
                record.properties = cached.properties
                record.property_files = cached.property_files
                record.metrics = cached.metrics
                self._publish(node.name, cached.properties, cached.property_files)
                return SUCCEEDED

        record.status = EXECUTING
        self.store.upsert_step(self.execution.execution_id, record)
        try:
            outcome: StepOutcome = self._run_with_retries(node, runner, arguments, job)
        except StepStopped:
            record.failure_reason = "Stopped on request."
            return STOPPED
        except StepFailed as failure:
            record.failure_reason = failure.reason
            return FAILED
        record.properties = outcome.properties
        record.property_files = outcome.property_files
        record.metrics = outcome.metrics
        record.peak_memory_bytes = outcome.peak_memory_bytes
        self._publish(node.name, outcome.properties, outcome.property_files)
        return SUCCEEDED

    def _run_with_retries(
        self, node: StepNode, runner: Runner, arguments: dict[str, Any], job: JobContext
    ) -> StepOutcome:
        """Run the step; retry a failure its RetryPolicies match, after their backoff."""
        policies = retries.policies(node.spec)
        first = time.monotonic()
        attempts = 1
        while True:
            try:
                return runner(node, arguments, job)
            except StepFailed as failure:
                delay = retries.next_delay(
                    policies, failure.reason, attempts, time.monotonic() - first
                )
                if delay is None:
                    if attempts > 1:
                        failure.reason += f" (after {attempts} attempts)"
                    raise
                with job.log_path.open("a") as log:
                    log.write(
                        f"[local executor] attempt {attempts} failed ({failure.reason}); "
                        f"retrying in {delay:g} s per the step's RetryPolicies\n"
                    )
                if self.stop.wait(delay):
                    raise StepStopped() from failure
                shutil.rmtree(job.step_dir / "sandbox", ignore_errors=True)
                attempts += 1

    def _cache_hit(self, node: StepNode, key: str, s3: Any) -> tuple[str, StepRun] | None:
        expiry = cache.expire_after_seconds(node.spec.get("CacheConfig", {}).get("ExpireAfter"))
        not_before = time.time() - expiry if expiry is not None else 0.0
        found = self.store.find_cached(key, not_before)
        if found is None or found[0] == self.execution.execution_id:
            return None
        if not cache.outputs_still_exist(node.type, found[1].properties, s3):
            return None
        return found

    def _publish(self, name: str, properties: dict[str, Any], files: dict[str, Any]) -> None:
        with self._lock:
            self._properties[name] = properties
            self._property_files[name] = files
