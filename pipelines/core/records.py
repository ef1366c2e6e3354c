"""What every backend reports about executions and their steps.

The field names and status values follow SageMaker's DescribePipelineExecution and
ListPipelineExecutionSteps, so the local and AWS backends render the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

EXECUTING = "Executing"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
STOPPING = "Stopping"
STOPPED = "Stopped"
STARTING = "Starting"
FINISHED = frozenset({SUCCEEDED, FAILED, STOPPED})


@dataclass
class StepRun:
    name: str
    type: str
    status: str
    started_at: float | None = None
    ended_at: float | None = None
    failure_reason: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    property_files: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    cache_hit_of: str | None = None  # execution id whose result was reused
    cache_key: str | None = None
    log_path: str | None = None
    peak_memory_bytes: int | None = None
    attempt: int = 1

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or self.started_at) - self.started_at

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass
class Execution:
    execution_id: str
    execution_arn: str
    pipeline_name: str
    status: str
    created_at: float
    display_name: str = ""
    ended_at: float | None = None
    failure_reason: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    definition: str = ""
    definition_sha256: str = ""
    lineage: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)
    worker_pid: int | None = None
    retries: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self) -> float:
        return (self.ended_at or time.time()) - self.created_at

    @property
    def account_id(self) -> str:
        """The account the execution runs in, recorded from the Terraform outputs."""
        return str(self.runtime.get("account_id") or self._arn_part(4))

    @property
    def region(self) -> str:
        return str(self.runtime.get("region") or self._arn_part(3))

    def _arn_part(self, index: int) -> str:
        # Records written before account and region were recorded: read them from
        # arn:aws:sagemaker:<region>:<account>:pipeline/<name>/execution/<id>.
        parts = self.execution_arn.split(":")
        return parts[index] if len(parts) > index else ""
