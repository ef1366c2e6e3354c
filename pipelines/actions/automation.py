"""The automation tasks: the local agent, its log, the git hook, the test tiers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.automation.agent import AgentProcess, AgentStatus, automation_dir, connect
from pipelines.automation.git_hook import install
from pipelines.automation.log import ActionLog, ActionRecord
from pipelines.automation.rule_actions import pytest_arguments
from pipelines.config.settings import Settings


@dataclass(frozen=True)
class AgentStart:
    status: AgentStatus
    started: bool  # False: it was running already
    queued: int  # events that waited in its queue when it started
    replay: bool  # whether it acts on them


def agent_up(
    settings: Settings, replay: bool = False, confirm_replay: Callable[[int], bool] | None = None
) -> AgentStart:
    """Start the agent unless it runs. Events queued while no agent ran are acted on only
    with ``replay`` or a yes from ``confirm_replay`` (asked with their count); else the
    agent logs and skips them."""
    process = AgentProcess(settings)
    current = process.status()
    if current.running:
        return AgentStart(current, False, 0, replay)
    waiting = queued_events(settings)
    if waiting and not replay and confirm_replay is not None:
        replay = confirm_replay(waiting)
    status, started = process.start(replay=replay)
    return AgentStart(status, started, waiting, replay)


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
    """The newest ``limit`` actions, newest first (as every history lists)."""
    return ActionLog(automation_dir(settings)).read(limit)[::-1]


def install_hook(settings: Settings) -> tuple[Path, bool]:
    """(the hook's path, whether it changed)."""
    return install(settings.root)


def tier_arguments(tier: str) -> list[str]:
    """pytest's arguments for a test tier (the builds run the same)."""
    return pytest_arguments(tier)
