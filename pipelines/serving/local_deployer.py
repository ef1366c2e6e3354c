"""The local target's deployer: each stage is a local endpoint (front + model servers)."""

from __future__ import annotations

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


class LocalDeployer(StageDeployer):
    def _endpoint_name(self) -> str:
        return endpoint_name(self.config, self.stage)

    def local(self, settings: DeploySettings | None = None) -> LocalEndpoint:
        return local_endpoint(self.settings, self.connection, self.config, settings, self.stage)

    def _rollout(self, version: ModelVersion, settings: DeploySettings) -> str:
        endpoint = self.local(settings)
        status = endpoint.deploy(version, shift=traffic_steps(settings))
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
            found.running, found.name, found.detail, found.url, found.version, found.package_arn
        )

    def down(self) -> str:
        return "Endpoint stopped." if self.local().down() else "The endpoint was not running."

    def invoker(self) -> predicting.Invoke:
        status = self.local().status()
        if not status.running or not status.package_arn:
            raise self.not_serving(status.detail)
        return predicting.local_invoker(status.url)
