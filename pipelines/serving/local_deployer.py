"""The local target's deployer: each stage is a local endpoint (front + model servers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.errors import MlopsError
from pipelines.executor import retention
from pipelines.registry import ModelVersion
from pipelines.serving import predict as predicting
from pipelines.serving.deploy import (
    DeploySettings,
    endpoint_name,
    local_endpoint,
    traffic_steps,
)
from pipelines.serving.deployer import StageDeployer, StageStatus
from pipelines.serving.local_endpoint import LocalEndpoint


def rollback_alarm_watch(connection: Any, alarms: tuple[str, ...]) -> Callable[[], str | None]:
    """What a blue/green update with AutoRollbackConfiguration watches: any of its alarms
    in ALARM rolls the update back (the emulator's CloudWatch holds them locally). A
    named alarm that does not exist is refused before anything changes."""
    if not alarms:
        return lambda: None
    cloudwatch = connection.client("cloudwatch")

    def states() -> dict[str, str]:
        try:
            found = cloudwatch.describe_alarms(AlarmNames=list(alarms))["MetricAlarms"]
        except (ClientError, BotoCoreError) as error:
            names = ", ".join(alarms)
            raise MlopsError(f"Could not read the rollback alarms {names}: {error}") from error
        return {alarm["AlarmName"]: alarm["StateValue"] for alarm in found}

    missing = sorted(set(alarms) - set(states()))
    if missing:
        raise MlopsError(
            f"Rollback alarm(s) {', '.join(missing)} (deploy.rollback_alarms) do not exist; "
            "nothing was deployed."
        )

    def in_alarm() -> str | None:
        firing = sorted(name for name, state in states().items() if state == "ALARM")
        return f"Rollback alarm {firing[0]} went into ALARM" if firing else None

    return in_alarm


class LocalDeployer(StageDeployer):
    def _endpoint_name(self) -> str:
        return endpoint_name(self.config, self.stage)

    def local(self, settings: DeploySettings | None = None) -> LocalEndpoint:
        return local_endpoint(self.settings, self.connection, self.config, settings, self.stage)

    def _rollout(self, version: ModelVersion, settings: DeploySettings) -> str:
        endpoint = self.local(settings)
        status = endpoint.deploy(
            version,
            shift=traffic_steps(settings),
            guard=self.still_approved(version),
            watch=rollback_alarm_watch(self.connection, settings.rollback_alarms),
        )
        lines = [f"Version {version.version} serving at {status.url}/invocations"]
        pruned = retention.prune_releases(endpoint.dir, self.settings.keep_releases)
        if pruned.removed:
            lines.append(
                f"Removed {len(pruned.removed)} old release(s) "
                f"({pruned.freed_bytes / 1e6:,.1f} MB; keeping {self.settings.keep_releases})."
            )
        return "\n".join(lines)

    def status(self) -> StageStatus:
        found = self.local().status()
        return StageStatus(
            found.running, found.name, found.detail, found.url, found.version, found.package_arn,
            found.traffic,
        )  # fmt: skip

    def down(self) -> str:
        return "Endpoint stopped." if self.local().down() else "The endpoint was not running."

    def invoker(self) -> predicting.Invoke:
        status = self.local().status()
        if not status.running or not status.package_arn:
            raise self.not_serving(status.detail)
        log = Path(status.release) / "model_server.log" if status.release else None
        return predicting.local_invoker(status.url, log)
