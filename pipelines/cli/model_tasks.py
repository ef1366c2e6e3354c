"""Tasks for the model registry: list, approve, reject."""

from __future__ import annotations

from invoke import task

from pipelines import actions
from pipelines.cli.arguments import optional_whole_number
from pipelines.cli.common import TARGET_HELP, deployment, settings
from pipelines.ui.console import console, exit_on_error
from pipelines.ui.views import versions_table

MODEL_HELP = {**TARGET_HELP, "version": "model version number (default: the latest)"}


@task(help={**TARGET_HELP, "status": "only versions with this approval status"})
def models(c, status=None, target="local", env=None):
    """List the model versions: approval status, metrics, the execution behind each."""
    with exit_on_error():
        found = actions.list_versions(settings(c), deployment(target, env), status)
        console.print(versions_table(found.versions, found.metrics, found.checks))


@task(help={**MODEL_HELP, "reason": "why (recorded in the approval description)"})
def model_approve(c, version=None, reason="", target="local", env=None):
    """Approve a model version (default: the latest), recording who and why."""
    with exit_on_error():
        number = optional_whole_number(version, "--version")
        updated = actions.set_approval(settings(c), deployment(target, env), number, True, reason)
        console.print(
            f"Version {updated.version}: {updated.status} ({updated.approval_description})"
        )


@task(help={**MODEL_HELP, "reason": "why it is rejected (required)"})
def model_reject(c, version=None, reason=None, target="local", env=None):
    """Reject a model version (default: the latest); --reason is required."""
    with exit_on_error():
        number = optional_whole_number(version, "--version")
        updated = actions.set_approval(settings(c), deployment(target, env), number, False, reason)
        console.print(
            f"Version {updated.version}: {updated.status} ({updated.approval_description})"
        )
