"""The deployments page: what each stage's endpoint serves and since when (the
`deployments` overview), then each stage's history newest first (`deployments --stage`):
deploys, promotions with their gates' figures and approvals, rollbacks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.console.page import Page

if TYPE_CHECKING:
    from pipelines.console.source import Source


SHIFT_REFRESH_SECONDS = 2


@dataclass
class StageHistory:
    stage: str
    endpoint: str
    records: list[Any]  # DeploymentRecord, newest first


def deployments(source: Source, query: Mapping[str, str]) -> Page:
    # The overview reads each stage's records once (a stage's deployer opens the stack's
    # outputs, about a second each): the histories come with it.
    stages = source.stage_overview()
    histories = [
        StageHistory(s.stage, s.endpoint or "", list(s.history)) for s in stages if not s.problem
    ]
    return Page(
        "Deployments",
        "deployments.html",
        {"stages": stages, "histories": histories},
        section="deployments",
        # A canary or linear shift moves on every bake step: follow it while it lasts.
        refresh_seconds=SHIFT_REFRESH_SECONDS
        if any(s.status and s.status.traffic for s in stages)
        else None,
    )


def exported(source: Source) -> Iterable[tuple[str, dict[str, str]]]:
    yield "deployments", {}
