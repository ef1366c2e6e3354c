"""The endpoint tasks: deploy a stage, its status, take it down, predict, history, rollback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipelines.config.settings import Settings
from pipelines.serving.deployer import Rollout, StageStatus
from pipelines.serving.deployment_records import DeploymentRecord
from pipelines.serving.predict import Predictions
from pipelines.targets import open_deployer, target_for


def deploy(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None,
    version: int | None,
    strategy: str | None,
    wait: bool,
) -> tuple[Rollout, list[str]]:
    """Roll an Approved version out blue/green; where the target monitors what it deploys
    (AWS: an hourly schedule), set that up once the endpoint serves. Returns the lines
    to show."""
    deployer = open_deployer(settings, target, env, stage, wait=wait)
    rollout = deployer.deploy(version, strategy)
    lines = [rollout.message]
    chosen = target_for(deployer.stack.deployment)
    if chosen.monitoring_on_deploy is not None and wait:
        detail = chosen.schedule_monitoring(
            settings, deployer.stack, deployer.config, chosen.monitoring_on_deploy, stage
        )
        lines.append(f"Monitoring schedule: {detail}")
    return rollout, lines


def status(
    settings: Settings, target: str | None, env: str | None, stage: str | None
) -> StageStatus:
    return open_deployer(settings, target, env, stage).status()


def take_down(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None,
    confirm: Callable[[str], None],
) -> str:
    """Remove a stage's endpoint and what monitors it (SageMaker refuses to delete an
    endpoint with schedules); ``confirm`` raises to cancel where cloud resources go."""
    deployer = open_deployer(settings, target, env, stage)
    if deployer.needs_confirmation:
        confirm(f"Delete the endpoint {deployer.endpoint}?")
    chosen = target_for(deployer.stack.deployment)
    chosen.schedule_monitoring(settings, deployer.stack, deployer.config, None, stage)
    return deployer.down()


def predict(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None,
    data: Path,
    inference_id_column: str | None,
) -> tuple[Predictions, int]:
    return open_deployer(settings, target, env, stage).predict(data, inference_id_column)


def history(
    settings: Settings, target: str | None, env: str | None, stage: str | None
) -> tuple[str, list[DeploymentRecord]]:
    """(the endpoint, its deployment records)."""
    deployer = open_deployer(settings, target, env, stage)
    return deployer.endpoint, deployer.history()


def rollback(settings: Settings, target: str | None, env: str | None, stage: str | None) -> Rollout:
    return open_deployer(settings, target, env, stage).rollback()
