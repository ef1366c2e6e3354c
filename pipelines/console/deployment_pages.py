"""The deployments page: what each stage's endpoint serves and since when (the
`deployments` overview), then each stage's history newest first (`deployments --stage`):
deploys, promotions with their gates' figures and approvals, rollbacks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.console.page import Page
from pipelines.core.errors import MlopsError

if TYPE_CHECKING:
    from pipelines.console.source import Source


@dataclass
class StageHistory:
    stage: str
    endpoint: str
    records: list[Any]  # DeploymentRecord, newest first
    problem: str | None = None


def deployments(source: Source, query: Mapping[str, str]) -> Page:
    stages = source.stage_overview()
    histories = []
    for stage in stages:
        if stage.problem:
            continue  # the overview says why the stage could not be read
        try:
            endpoint, records = source.stage_history(stage.stage)
        except MlopsError as error:
            histories.append(StageHistory(stage.stage, stage.endpoint or "", [], str(error)))
            continue
        histories.append(StageHistory(stage.stage, endpoint, records))
    return Page(
        "Deployments",
        "deployments.html",
        {"stages": stages, "histories": histories},
        section="deployments",
    )


def exported(source: Source) -> Iterable[tuple[str, dict[str, str]]]:
    yield "deployments", {}
