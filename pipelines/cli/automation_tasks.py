"""Tasks for automation: the local agent that acts on EventBridge rules, its log,
the git hook, and the test run the builds call."""

from __future__ import annotations

import shlex
import sys

from invoke.exceptions import Exit

from pipelines.cli.arguments import whole_number
from pipelines.cli.common import settings, task
from pipelines.ui.console import console, exit_on_error


@task(help={"replay": "act on the events queued while no agent ran (default: log and skip them)"})
def automation_up(c, replay=False):
    """Start the local automation agent: it acts on what the EventBridge rules deliver."""
    from rich.prompt import Confirm

    from pipelines.actions import automation
    from pipelines.ui.automation_views import start_summary

    def ask(waiting: int) -> bool:
        question = f"{waiting} event(s) were queued while no agent ran. Act on them now?"
        return Confirm.ask(question, default=False)

    with exit_on_error():
        start = automation.agent_up(settings(c), replay, ask if sys.stdin.isatty() else None)
        console.print(start_summary(start.status.detail, start.started, start.queued, start.replay))


@task
def automation_down(c):
    """Stop the local automation agent; undelivered events stay in its queue."""
    from pipelines.actions import automation

    with exit_on_error():
        stopped = automation.agent_down(settings(c))
        console.print("Agent stopped." if stopped else "The agent was not running.")


@task
def automation_status(c):
    """Show whether the local automation agent runs (exit code 3 when it does not)."""
    from pipelines.actions import automation

    with exit_on_error():
        status = automation.agent_status(settings(c))
        console.print(f"Automation agent: {status.detail}", markup=False)
    if not status.running:
        raise Exit(code=3)


@task(help={"limit": "how many actions to show, newest first (default 20)"})
def automation_log(c, limit=None):
    """What the automation agent did: when, which rule, why, the command and its outcome."""
    from pipelines.actions import automation
    from pipelines.ui.automation_views import actions_table

    with exit_on_error():
        count = whole_number(20 if limit is None else limit, "--limit")
        console.print(actions_table(automation.action_log(settings(c), count)))


@task
def hooks_install(c):
    """Install the git post-commit hook that sends a CodeCommit event to the emulator."""
    from pipelines.actions import automation

    with exit_on_error():
        hook, changed = automation.install_hook(settings(c))
        console.print(f"{'Installed' if changed else 'Already installed:'} {hook}", markup=False)


@task(name="test", help={"tier": "fast (no servers, under a minute) or all"})
def run_tests(c, tier="fast"):
    """Run the test suite (what CI and the CodeBuild build run)."""
    from pipelines.actions import automation

    with exit_on_error():
        arguments = automation.tier_arguments(tier)
        c.run(shlex.join([sys.executable, "-m", "pytest", *arguments]), pty=False)
