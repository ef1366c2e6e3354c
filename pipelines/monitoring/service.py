"""What the monitoring tasks do, as plain functions (tasks.py only parses and prints).

The local/AWS difference for schedules is one map, ``SCHEDULERS``: the local target runs a
background process (``schedule.LocalSchedule``), AWS a SageMaker monitoring schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipelines import deploy
from pipelines.errors import MlopsError
from pipelines.infra_config import InfraConfig
from pipelines.monitoring import aws, report
from pipelines.monitoring.capture import parse_duration
from pipelines.monitoring.execution import MonitoringResult, deployed_model, run_monitoring
from pipelines.monitoring.history import History
from pipelines.monitoring.schedule import LocalSchedule, stop_schedules
from pipelines.monitoring.settings import MonitoringSettings
from pipelines.settings import Settings
from pipelines.targets import Deployment


def _open(settings: Settings, deployment: Deployment) -> tuple[Any, InfraConfig]:
    from pipelines.run import open_target

    stack, config, _ = open_target(settings, deployment)
    return stack, config


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
    stack, config = _open(settings, deployment)
    result = run_monitoring(
        settings, stack.connection, config, since=window, ground_truth=truth, on_alert=on_alert
    )
    written = None
    if report_file:
        keep = MonitoringSettings.from_settings(settings).keep_results
        records = History(settings.state_dir, result.endpoint, keep).records()
        if records:
            written = report.write_report(records, Path(report_file))
    return result, written


def history(settings: Settings, deployment: Deployment) -> list[dict[str, Any]]:
    _stack, config = _open(settings, deployment)
    keep = MonitoringSettings.from_settings(settings).keep_results
    return History(settings.state_dir, deploy.endpoint_name(config), keep).records()


# --- schedules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleOutcome:
    enabled: bool
    detail: str


def _local_on(settings: Settings, stack: Any, config: InfraConfig, every: timedelta) -> str:
    endpoint = deploy.local_endpoint(settings, stack.connection, config)
    if not endpoint.status().running:
        raise MlopsError("The local endpoint is not running: `invoke deploy` first.")
    running = LocalSchedule(settings.state_dir, endpoint.name).start(settings, every)
    return f"monitoring {endpoint.name} every {every} (pid {running['pid']})"


def _local_off(settings: Settings, stack: Any, config: InfraConfig) -> str:
    stopped = LocalSchedule(settings.state_dir, deploy.endpoint_name(config)).stop()
    return "schedule stopped" if stopped else "no schedule was running"


def _aws_on(settings: Settings, stack: Any, config: InfraConfig, every: timedelta) -> str:
    state = aws.ensure_schedule(
        stack.connection.client("sagemaker"),
        config,
        deployed_model(stack.connection, config),
        MonitoringSettings.from_settings(settings),
        every=every,
    )
    verb = "created" if state.created else "updated"
    return f"{verb} {state.schedule} ({state.expression}, job definition {state.job_definition})"


def _aws_off(settings: Settings, stack: Any, config: InfraConfig) -> str:
    removed = aws.remove_schedules(stack.connection.client("sagemaker"), config)
    return f"deleted {removed} monitoring schedule(s)"


SCHEDULERS: dict[str, tuple[Callable[..., str], Callable[..., str]]] = {
    "local": (_local_on, _local_off),
    "aws": (_aws_on, _aws_off),
}


def set_schedule(
    settings: Settings, deployment: Deployment, every: str | None, off: bool
) -> ScheduleOutcome:
    if off == bool(every):
        raise MlopsError("Give either --every DURATION (e.g. 1h) or --off.")
    stack, config = _open(settings, deployment)
    turn_on, turn_off = SCHEDULERS[deployment.target]
    if off:
        return ScheduleOutcome(False, turn_off(settings, stack, config))
    return ScheduleOutcome(True, turn_on(settings, stack, config, parse_duration(str(every))))


def stop_local_schedules(settings: Settings) -> int:
    """For endpoint-down and destroy: no local schedule outlives its endpoint."""
    return stop_schedules(settings.state_dir)
