"""One runner interface, one backend per target, chosen from the target map (pipelines.targets)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.core.polling import PollSchedule
from pipelines.core.records import Execution, StepRun

if TYPE_CHECKING:
    from pipelines.launch.prepare import PreparedRun


class Backend(Protocol):
    """Runs pipeline definitions and reports on their executions."""

    name: str
    poll_schedule: PollSchedule

    def launching(self) -> AbstractContextManager[Callable[[PreparedRun], Execution]]:
        """What starting a run needs, begun now, while the caller prepares the run; the
        yielded function starts it. Leaving without starting leaves nothing behind."""

    def start(self, run: PreparedRun) -> Execution:
        """Upsert the pipeline and start an execution of its definition; return at once."""

    def describe(self, execution_id: str) -> Execution: ...

    def steps(self, execution_id: str) -> list[StepRun]: ...

    def details(self, execution: Execution, steps: list[StepRun]) -> list[StepRun]:
        """The steps with what a summary shows (metrics, reports, model package)."""

    def links(self, execution: Execution, steps: list[StepRun]) -> list[tuple[str, str]]:
        """(label, location) pairs where the user can look further."""

    def list_executions(
        self, pipeline_name: str | None = None, limit: int = 20
    ) -> list[Execution]: ...

    def latest(self, pipeline_name: str | None = None) -> Execution: ...

    def read_log(self, step: StepRun, cursor: Any = None) -> tuple[str, Any]:
        """The step's job log from ``cursor`` on (None: the start), and the cursor to read
        on from; empty text while the job has written nothing new."""

    def log_location(self, step: StepRun) -> str:
        """Where the step's log is kept, for the user."""

    def stop(self, execution_id: str) -> Execution: ...

    def retry(self, execution_id: str) -> Execution: ...

    def wait(
        self, execution_id: str, poll: float = 0.2, timeout: float | None = None
    ) -> Execution: ...
