"""The infrastructure tasks: the emulator, the Terraform stack and its review, destroy."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.emulator import EmulatorInfo
from pipelines.emulator.process import EmulatorStatus
from pipelines.executor.retention import state_usage as usage_of
from pipelines.stack.review import PlanReview, review_plan
from pipelines.stack.stacks import UpResult, emulator_for, infra_lock, infra_up, read_infra_config
from pipelines.stack.terraform import validate_configuration
from pipelines.targets import target_for
from pipelines.teardown import DestroyResult

Notify = Callable[[str], None]


def emulator_up(settings: Settings) -> tuple[EmulatorInfo, bool]:
    """(its info, whether it was started now)."""
    return emulator_for(settings).start()


def emulator_down(settings: Settings) -> bool:
    return emulator_for(settings).stop()


def emulator_status(settings: Settings) -> EmulatorStatus:
    return emulator_for(settings).status()


def state_usage(settings: Settings) -> list[tuple[str, int]]:
    """Bytes per part of the state folder."""
    return usage_of(settings.state_dir)


def bring_up(settings: Settings, deployment: Deployment, on_output: Notify) -> UpResult:
    """`infra-up`: apply the stack (starting what it runs on), serialised per deployment."""
    with infra_lock(settings, deployment):
        stack = target_for(deployment).open_stack(
            settings, deployment, start=True, on_output=on_output
        )
        return infra_up(stack)


def outputs(settings: Settings, deployment: Deployment) -> InfraConfig:
    return read_infra_config(target_for(deployment).open_stack(settings, deployment))


def review(settings: Settings, deployment: Deployment, directory: Path | None) -> PlanReview:
    """`plan`: the review folder (plan.md, plan.json, plan.txt, checkov.json)."""
    stack = target_for(deployment).open_stack(settings, deployment, start=True)
    return review_plan(stack, directory)


def validate(settings: Settings) -> str:
    """terraform fmt -check and validate, offline."""
    return validate_configuration(settings, os.environ)


def destroy(
    settings: Settings,
    deployment: Deployment,
    *,
    confirm: Callable[[str], None],
    on_stop: Notify | None = None,
    on_output: Notify | None = None,
) -> DestroyResult:
    """`invoke destroy`: serialised with infra-up on the infrastructure lock; ``confirm``
    raises to cancel before anything is touched."""
    target = target_for(deployment)
    teardown = target.teardown()
    with infra_lock(settings, deployment):
        gone = teardown.already_gone(settings, deployment)
        if gone is not None:
            return DestroyResult(0, 0, False, already_gone=True, state_cleared=gone)
        confirm(f"Destroy every resource of {deployment}, including all artifacts?")
        # The emulator's state is durable: a stopped emulator is started to destroy it.
        stack = target.open_stack(settings, deployment, start=True, on_output=on_output)
        return teardown.destroy(stack, target.backend, on_stop)
