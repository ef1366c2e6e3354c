"""``mlops.monitoring`` in invoke.yaml, checked once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError

DEFAULT_SCHEDULE_EXPRESSION = "cron(0 * ? * * *)"


@dataclass(frozen=True)
class MonitoringSettings:
    # How many local monitoring results monitor-history keeps.
    keep_results: int = 48
    # Called when an alarm goes into ALARM: a command (JSON on stdin) and/or a webhook URL.
    alert_command: Any = None
    alert_webhook: str | None = None
    # AWS: the monitoring schedule's cron and the job's instance.
    schedule_expression: str = DEFAULT_SCHEDULE_EXPRESSION
    instance_type: str = "ml.m5.large"
    max_runtime_seconds: int = 3600

    def __post_init__(self) -> None:
        if not isinstance(self.keep_results, int) or self.keep_results < 1:
            raise MlopsError(
                f"mlops.monitoring.keep_results must be a whole number of at least 1, got "
                f"{self.keep_results!r}."
            )
        if not 1 <= int(self.max_runtime_seconds) <= 3600:
            raise MlopsError(
                "mlops.monitoring.max_runtime_seconds must be 1-3600 (an hourly schedule's job "
                f"must end within the hour), got {self.max_runtime_seconds!r}."
            )

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> MonitoringSettings:
        """invoke.yaml's section; MLOPS_ALERT_COMMAND and MLOPS_ALERT_WEBHOOK override it."""
        environ = os.environ if environ is None else environ
        values = dict(settings.monitoring)
        for variable, key in (
            ("MLOPS_ALERT_COMMAND", "alert_command"),
            ("MLOPS_ALERT_WEBHOOK", "alert_webhook"),
        ):
            if environ.get(variable):
                values[key] = environ[variable]
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise MlopsError(
                f"Unknown monitoring setting(s) in invoke.yaml: {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})."
            )
        return cls(**values)
