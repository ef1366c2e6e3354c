"""The automation tasks: the local agent, its log, the git hook, the test tiers."""

from __future__ import annotations

from pathlib import Path

from pipelines.automation.agent import AgentProcess, AgentStatus, automation_dir, connect
from pipelines.automation.git_hook import install
from pipelines.automation.log import ActionLog, ActionRecord
from pipelines.automation.rule_actions import pytest_arguments
from pipelines.config.settings import Settings


def agent_up(settings: Settings, replay: bool = False) -> tuple[AgentStatus, bool]:
    """(its status, whether it was started now); ``replay``: it acts on the events queued
    before it started (else it logs and skips them)."""
    return AgentProcess(settings).start(replay=replay)


def queued_events(settings: Settings) -> int:
    """How many events wait in the agent's queue (delivered while no agent ran)."""
    connection, config = connect(settings)
    attributes = connection.client("sqs").get_queue_attributes(
        QueueUrl=config.automation_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def agent_down(settings: Settings) -> bool:
    return AgentProcess(settings).stop()


def agent_status(settings: Settings) -> AgentStatus:
    return AgentProcess(settings).status()


def action_log(settings: Settings, limit: int) -> list[ActionRecord]:
    return ActionLog(automation_dir(settings)).read(limit)


def install_hook(settings: Settings) -> tuple[Path, bool]:
    """(the hook's path, whether it changed)."""
    return install(settings.root)


def tier_arguments(tier: str) -> list[str]:
    """pytest's arguments for a test tier (the builds run the same)."""
    return pytest_arguments(tier)
