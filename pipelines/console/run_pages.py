"""The run pages: the list of runs (this module), one run with its graph, a step's log,
and runs compared (with the champion too)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.console.page import Page
from pipelines.core.records import FINISHED

if TYPE_CHECKING:
    from pipelines.console.source import Source
    from pipelines.core.records import Execution

RUNS_SHOWN = 50
EXPORTED_RUNS = 20
REFRESH_SECONDS = 2


@dataclass
class RunRow:
    id: str
    status: str
    started: float
    duration: float
    trigger: str
    data: str
    commit: str
    failure: str
    metrics: dict[str, float] = field(default_factory=dict)


def run_row(execution: Execution, metrics: dict[str, float]) -> RunRow:
    from pipelines.launch.lineage import trigger_of
    from pipelines.ui.run_views import data_version

    commit = execution.lineage.get("git_commit") or ""
    return RunRow(
        id=execution.execution_id,
        status=execution.status,
        started=execution.created_at,
        duration=execution.duration,
        trigger=trigger_of(execution.display_name, execution.lineage) or "",
        data=data_version(execution),
        commit=commit[:12] + (" (uncommitted changes)" if execution.lineage.get("git_dirty") else ""),
        failure=(execution.failure_reason or "").split("\n")[0],
        metrics=metrics,
    )


def key_metrics(source: Source, execution: Execution) -> dict[str, float]:
    from pipelines.actions import runs

    return runs.evaluation_metrics(runs.execution_details(source.backend(), execution))


def runs(source: Source, query: Mapping[str, str]) -> Page:
    executions = source.backend().list_executions(limit=RUNS_SHOWN)
    rows = [run_row(e, key_metrics(source, e)) for e in executions]
    status, trigger = query.get("status", ""), query.get("trigger", "")
    shown = [r for r in rows if (not status or r.status == status) and (not trigger or r.trigger == trigger)]
    return Page(
        "Runs",
        "runs.html",
        {
            "pipeline": executions[0].pipeline_name if executions else source.settings.name_prefix,
            "runs": shown,
            "statuses": sorted({r.status for r in rows}),
            "triggers": sorted({r.trigger for r in rows if r.trigger}),
            "status": status,
            "trigger": trigger,
        },
        section="runs",
        refresh_seconds=REFRESH_SECONDS if any(e.status not in FINISHED for e in executions) else None,
    )


def exported(source: Source) -> Iterable[tuple[str, dict[str, str]]]:
    yield "runs", {}
