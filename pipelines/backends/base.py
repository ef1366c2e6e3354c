"""One runner interface, one backend per target, chosen from one map."""

from __future__ import annotations

from typing import Any, Protocol

from pipelines.backends.records import Execution, StepRun


class Backend(Protocol):
    """Runs pipeline definitions and reports on their executions."""

    name: str

    def upsert(self, pipeline_name: str, definition: str, role_arn: str) -> str:
        """Create or update the pipeline; returns its ARN."""

    def start(
        self,
        pipeline_name: str,
        definition: str,
        parameters: dict[str, Any],
        *,
        display_name: str = "",
        lineage: dict[str, Any] | None = None,
    ) -> Execution:
        """Start an execution of ``definition`` and return at once."""

    def describe(self, execution_id: str) -> Execution: ...

    def steps(self, execution_id: str) -> list[StepRun]: ...

    def list_executions(
        self, pipeline_name: str | None = None, limit: int = 20
    ) -> list[Execution]: ...

    def latest(self, pipeline_name: str | None = None) -> Execution: ...

    def stop(self, execution_id: str) -> Execution: ...

    def retry(self, execution_id: str) -> Execution: ...

    def wait(
        self, execution_id: str, poll: float = 0.2, timeout: float | None = None
    ) -> Execution: ...
