"""The monitoring tasks: check captured traffic, schedule it, list the kept results.

Where a schedule runs is the target's business (``Target.schedule_monitoring``): the
local target runs a background process, AWS a SageMaker monitoring schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config.deployment import Deployment
from pipelines.config.monitoring_settings import MonitoringSettings
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.monitoring.capture_reader import parse_duration
from pipelines.monitoring.execution import MonitoringResult, run_monitoring
from pipelines.monitoring.results import History
from pipelines.serving import deploy
from pipelines.targets import open_target, target_for


def monitor(
    settings: Settings,
    deployment: Deployment,
    *,
    since: str = "1h",
    report_file: str | None = None,
    ground_truth: str | None = None,
    on_alert: Callable[[str], None] | None = None,
) -> tuple[MonitoringResult, Path | None]:
    window = parse_duration(since)
    truth = Path(ground_truth) if ground_truth else None
    if truth is not None and not truth.is_file():
        raise MlopsError(f"Ground-truth file {truth} does not exist.")
    stack, config, _ = open_target(settings, deployment)
    result = run_monitoring(
        settings, stack.connection, config, since=window, ground_truth=truth, on_alert=on_alert
    )
    written = None
    if report_file:
        from pipelines.monitoring import drift_report  # plotly, only when a report is asked for

        keep = MonitoringSettings.from_settings(settings).keep_results
        records = History(settings.state_dir, result.endpoint, keep).records()
        if records:
            written = drift_report.write_report(records, Path(report_file))
    return result, written


def history(settings: Settings, deployment: Deployment) -> list[dict[str, Any]]:
    _, config, _ = open_target(settings, deployment)
    keep = MonitoringSettings.from_settings(settings).keep_results
    return History(settings.state_dir, deploy.endpoint_name(config), keep).records()


@dataclass(frozen=True)
class ScheduleOutcome:
    enabled: bool
    detail: str


def set_schedule(
    settings: Settings, deployment: Deployment, every: str | None, off: bool
) -> ScheduleOutcome:
    if off == bool(every):
        raise MlopsError("Give either --every DURATION (e.g. 1h) or --off.")
    every_delta = None if off else parse_duration(str(every))
    stack, config, _ = open_target(settings, deployment)
    detail = target_for(deployment).schedule_monitoring(settings, stack, config, every_delta)
    return ScheduleOutcome(not off, detail)
