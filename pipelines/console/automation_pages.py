"""The automation page: whether the local agent runs, and its log newest first (as
`automation-status` and `automation-log` show them): what fired, the rule, why, the
command, how it ended, and the pipeline run it started with that run's status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.console.page import Page

if TYPE_CHECKING:
    from pipelines.console.source import Source

ACTIONS_SHOWN = 100


@dataclass
class ActionRow:
    at: float
    rule: str
    why: str
    event: str  # the event's detail-type and id
    command: str
    outcome: str
    detail: str  # the failure's last line, or why it was skipped
    execution: str
    run_status: str
    seconds: float


def action_row(record: Any) -> ActionRow:
    """One record as `automation-log` words it (``actions_table``), as plain text."""
    event = record.event or {}
    outcome = record.outcome + (
        f" (exit {record.exit_code})" if record.exit_code not in (None, 0) else ""
    )
    detail = ""
    if record.outcome == "failed" and record.output and not record.execution_id:
        detail = record.output.strip().splitlines()[-1][:200]
    elif record.outcome == "failed" and "run: " in record.note:
        detail = record.note.rpartition("run: ")[2][:200]
    elif record.outcome in ("skipped", "ignored", "interrupted"):
        detail = record.note
    return ActionRow(
        record.at,
        record.rule,
        record.why,
        f"{event.get('detail-type', '')} {event.get('id', '')}".strip(),
        " ".join(record.command),
        outcome,
        detail,
        record.execution_id or "",
        record.run_status or ("?" if record.execution_id else ""),
        record.seconds,
    )


OUTCOME_CLASS = {"succeeded": "ok", "failed": "bad", "interrupted": "bad", "running": "running"}


# On AWS the EventBridge rules act by themselves (Terraform's automation module): there is
# no agent, so no log of its own to show.
NOT_ON_AWS = (
    "On AWS the EventBridge rules act in the account without an agent (they start the "
    "pipeline and notify on failures): this page shows the local agent's log, on the local "
    "target only. The runs the rules start are on the Runs page, with their trigger."
)


def automation(source: Source, query: Mapping[str, str]) -> Page:
    from pipelines.targets import target_for

    if not target_for(source.deployment).automation_agent:
        return Page("Automation", "automation.html", {"not_here": NOT_ON_AWS}, section="automation")
    status, records = source.automation()
    rows = [action_row(r) for r in records]
    return Page(
        "Automation",
        "automation.html",
        {"agent": status, "actions": rows, "outcome_class": OUTCOME_CLASS, "not_here": None},
        section="automation",
        refresh_seconds=5 if any(r.outcome == "running" for r in records) else None,
    )


def exported(source: Source) -> Iterable[tuple[str, dict[str, str]]]:
    yield "automation", {}
