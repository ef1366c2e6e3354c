"""Tasks for automation: the local agent that acts on EventBridge rules, its log,
the git hook, and the test run the builds call."""

from __future__ import annotations

import sys

from invoke import task
from invoke.exceptions import Exit

from pipelines.automation.agent import AgentProcess, automation_dir
from pipelines.automation.git_hook import install
from pipelines.automation.log import ActionLog, actions_table
from pipelines.automation.rule_actions import pytest_arguments
from pipelines.cli.arguments import whole_number
from pipelines.cli.common import settings
from pipelines.ui.console import console, exit_on_error


@task
def automation_up(c):
    """Start the local automation agent: it acts on what the EventBridge rules deliver."""
    with exit_on_error():
        status, started = AgentProcess(settings(c)).start()
        console.print(f"{'Started' if started else 'Already running:'} agent: {status.detail}")


@task
def automation_down(c):
    """Stop the local automation agent; undelivered events stay in its queue."""
    with exit_on_error():
        stopped = AgentProcess(settings(c)).stop()
        console.print("Agent stopped." if stopped else "The agent was not running.")


@task
def automation_status(c):
    """Show whether the local automation agent runs (exit code 3 when it does not)."""
    with exit_on_error():
        status = AgentProcess(settings(c)).status()
        console.print(f"Automation agent: {status.detail}")
    if not status.running:
        raise Exit(code=3)


@task(help={"limit": "how many actions to show, newest last (default 20)"})
def automation_log(c, limit=None):
    """What the automation agent did: when, which rule, why, the command and its outcome."""
    with exit_on_error():
        count = whole_number(20 if limit is None else limit, "--limit")
        console.print(actions_table(ActionLog(automation_dir(settings(c))).read(count)))


@task
def hooks_install(c):
    """Install the git post-commit hook that sends a CodeCommit event to the emulator."""
    with exit_on_error():
        hook, changed = install(settings(c).root)
        console.print(f"{'Installed' if changed else 'Already installed:'} {hook}")


@task(name="test", help={"tier": "fast (no servers, under a minute) or all"})
def run_tests(c, tier="fast"):
    """Run the test suite (what CI and the CodeBuild build run)."""
    with exit_on_error():
        c.run(" ".join([sys.executable, "-m", "pytest", *pytest_arguments(tier)]), pty=False)
