"""What the endpoint tasks do: deploy a stage, take it down, through its target."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.config.settings import Settings
from pipelines.serving.deployer import Rollout
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
    """Roll an Approved version out blue/green; then what the target does after a
    rollout (on AWS, the hourly monitoring schedule). Returns the lines to show."""
    deployer = open_deployer(settings, target, env, stage, wait=wait)
    rollout = deployer.deploy(version, strategy)
    after = target_for(deployer.stack.deployment).after_deploy(settings, deployer, wait)
    return rollout, [rollout.message, *([after] if after else [])]


def take_down(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None,
    confirm: Callable[[str], None],
) -> str:
    """Remove a stage's endpoint (and what watches it); ``confirm`` raises to cancel
    where the target deletes cloud resources."""
    deployer = open_deployer(settings, target, env, stage)
    if deployer.needs_confirmation:
        confirm(f"Delete the endpoint {deployer.endpoint}?")
    return target_for(deployer.stack.deployment).take_down(settings, deployer)
