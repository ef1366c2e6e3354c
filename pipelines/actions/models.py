"""The model registry tasks: list the versions, approve or reject one."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.core.records import StepRun
from pipelines.registry import APPROVED, REJECTED, ModelVersion, Registry, champion_of
from pipelines.targets import open_target, target_for


@dataclass(frozen=True)
class VersionListing:
    versions: list[ModelVersion]
    metrics: dict[int, dict[str, float]]
    # The steps of the execution behind each version (its check results); None when
    # that execution's records are gone.
    steps: dict[int, list[StepRun] | None]
    # The newest Approved version, which the others are compared with.
    champion: ModelVersion | None = None
    # Each metric's standard deviation (the ± of the evaluation report), by version.
    spreads: dict[int, dict[str, float]] = field(default_factory=dict)


def list_versions(settings: Settings, deployment: Deployment, status: str | None) -> VersionListing:
    stack, config, backend = open_target(settings, deployment)
    registry = Registry(stack.connection, config.model_package_group_name)
    versions = registry.versions(status)
    metrics = {v.version: registry.metrics(v) for v in versions}
    champion = champion_of(registry)
    if champion is not None and champion.version not in metrics:
        metrics[champion.version] = registry.metrics(champion)  # listed with --status
    steps: dict[int, list[StepRun] | None] = {}
    for version in versions:
        if version.execution_id:
            try:
                steps[version.version] = backend.steps(version.execution_id)
            except MlopsError:
                steps[version.version] = None  # the execution's records are gone
    spreads = {v.version: registry.metrics(v, "standard_deviation") for v in versions}
    return VersionListing(versions, metrics, steps, champion, spreads)


def set_approval(
    settings: Settings,
    deployment: Deployment,
    version: int | None,
    approved: bool,
    reason: str | None,
) -> ModelVersion:
    """Approve or reject a version (default: the latest), recording who and why; a
    rejection must say why."""
    if not approved and not reason:
        raise MlopsError("Say why with --reason: it is recorded with the rejection.")
    stack, config, _ = open_target(settings, deployment)
    # The registry's lock: a deploy re-checks approval under it as it switches traffic.
    registry = Registry(stack.connection, config.model_package_group_name, settings.state_dir)
    status = APPROVED if approved else REJECTED
    who = target_for(deployment).actor(stack)
    return registry.set_status(version, status, reason or "", who)
