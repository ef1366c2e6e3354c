"""The monitoring tasks: check captured traffic, schedule it, list the kept results.

Where a schedule runs is the target's business (``Target.schedule_monitoring``): the
local target runs a background process, AWS a SageMaker monitoring schedule. A stage
(``--stage staging``) is monitored where it is served: locally its own endpoint, on AWS
its own environment's; its results are kept per endpoint, where the promotion gate reads
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config.infra_config import InfraConfig
from pipelines.config.monitoring_settings import MonitoringSettings
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.monitoring.capture_reader import parse_duration
from pipelines.monitoring.execution import MonitoringResult, run_monitoring
from pipelines.monitoring.quality import check_ground_truth_file
from pipelines.monitoring.results import EmptyWindows, History
from pipelines.serving.deploy import check_stage
from pipelines.stack.stacks import Stack
from pipelines.targets import open_target, resolve_deployment, target_for


@dataclass(frozen=True)
class Monitored:
    """A stage's stack, outputs and the key of its names in them."""

    stack: Stack
    config: InfraConfig
    key: str | None

    @property
    def endpoint(self) -> str:
        return self.config.endpoint_name(self.key)


def open_monitored(
    settings: Settings, target: str | None, env: str | None, stage: str | None
) -> Monitored:
    stage = check_stage(stage)
    where = resolve_deployment(target, env, stage)
    stack, config, _ = open_target(settings, where)
    return Monitored(stack, config, target_for(where).stage_key(stage))


def monitor(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None = None,
    *,
    since: str = "1h",
    report_file: str | None = None,
    ground_truth: str | None = None,
) -> tuple[MonitoringResult, Path | None]:
    window = parse_duration(since)
    truth = check_ground_truth_file(Path(ground_truth)) if ground_truth else None
    monitored = open_monitored(settings, target, env, stage)
    result = run_monitoring(
        settings, monitored.stack.connection, monitored.config,
        since=window, ground_truth=truth, stage=monitored.key,
    )  # fmt: skip
    written = None
    if report_file:
        from pipelines.monitoring import drift_report  # plotly, only when a report is asked for

        keep = MonitoringSettings.from_settings(settings).keep_results
        records = History(settings.state_dir, result.endpoint, keep).records()
        if records:
            written = drift_report.write_report(records, Path(report_file))
    return result, written


@dataclass(frozen=True)
class MonitoringHistory:
    endpoint: str
    records: list[dict[str, Any]]  # the runs that checked data, oldest first
    empty: list[EmptyWindows]  # the windows without traffic, counted per hour


def history(
    settings: Settings, target: str | None, env: str | None, stage: str | None = None
) -> MonitoringHistory:
    endpoint = open_monitored(settings, target, env, stage).endpoint
    keep = MonitoringSettings.from_settings(settings).keep_results
    kept = History(settings.state_dir, endpoint, keep)
    return MonitoringHistory(endpoint, kept.records(), kept.empty_windows())


@dataclass(frozen=True)
class ScheduleOutcome:
    enabled: bool
    detail: str


def set_schedule(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None,
    every: str | None,
    off: bool,
) -> ScheduleOutcome:
    if off == bool(every):
        raise MlopsError("Give either --every DURATION (e.g. 1h) or --off.")
    every_delta = None if off else parse_duration(str(every))
    monitored = open_monitored(settings, target, env, stage)
    chosen = target_for(monitored.stack.deployment)
    detail = chosen.schedule_monitoring(
        settings, monitored.stack, monitored.config, every_delta, check_stage(stage)
    )
    return ScheduleOutcome(not off, detail)
