"""Tasks for the model registry: list, approve, reject."""

from __future__ import annotations

from pipelines.cli.arguments import optional_whole_number
from pipelines.cli.common import PIPELINE_TARGET_HELP, deployment, settings, task
from pipelines.ui.console import console, exit_on_error

MODEL_HELP = {**PIPELINE_TARGET_HELP, "version": "model version number (default: the latest)"}


@task(help={**PIPELINE_TARGET_HELP, "status": "only versions with this approval status"})
def models(c, status=None, target="local", env=None, pipeline=None):
    """List the model versions: approval, metrics against the Approved one, checks, execution."""
    from pipelines.actions import models as registry
    from pipelines.ui.registry_views import versions_table

    with exit_on_error():
        found = registry.list_versions(settings(c, pipeline), deployment(target, env), status)
        console.print(versions_table(found.versions, found.metrics, found.steps, found.champion))


@task(help={**MODEL_HELP, "reason": "why (recorded in the approval description)"})
def model_approve(c, version=None, reason="", target="local", env=None, pipeline=None):
    """Approve a model version (default: the latest), recording who and why."""
    _set_approval(c, version, True, reason, target, env, pipeline)


@task(help={**MODEL_HELP, "reason": "why it is rejected (required)"})
def model_reject(c, version=None, reason=None, target="local", env=None, pipeline=None):
    """Reject a model version (default: the latest); --reason is required."""
    _set_approval(c, version, False, reason, target, env, pipeline)


def _set_approval(c, version, approved, reason, target, env, pipeline) -> None:
    from pipelines.actions import models
    from pipelines.ui.registry_views import approval_line

    with exit_on_error():
        number = optional_whole_number(version, "--version")
        chosen = deployment(target, env)
        console.print(
            approval_line(
                models.set_approval(settings(c, pipeline), chosen, number, approved, reason)
            )
        )
