"""The automation tasks: the local agent, its log, the git hook, the test tiers."""

from __future__ import annotations

from pathlib import Path

from pipelines.automation.agent import AgentProcess, AgentStatus, automation_dir
from pipelines.automation.git_hook import install
from pipelines.automation.log import ActionLog, ActionRecord
from pipelines.automation.rule_actions import pytest_arguments
from pipelines.config.settings import Settings


def agent_up(settings: Settings) -> tuple[AgentStatus, bool]:
    """(its status, whether it was started now)."""
    return AgentProcess(settings).start()


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
