"""Tasks for endpoints: deploy, status, take down, predict, promote, history, rollback."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke.exceptions import Exit

from pipelines.cli.arguments import optional_whole_number, whole_number
from pipelines.cli.common import PIPELINE_TARGET_HELP, STAGE_HELP, confirm, settings, task
from pipelines.core.errors import MlopsError
from pipelines.ui.console import console, exit_on_error


@task(
    help={
        **STAGE_HELP,
        "version": "model version to deploy (default: the latest Approved one)",
        "strategy": "all-at-once, canary or linear (default from invoke.yaml)",
        "wait": "aws: wait until the endpoint is InService (default)",
    }
)
def deploy(
    c, version=None, target="local", env=None, pipeline=None, stage=None, strategy=None, wait=True
):
    """Deploy an Approved model version to a stage's endpoint, blue/green."""
    from pipelines.actions import endpoints

    with exit_on_error():
        number = optional_whole_number(version, "--version")
        _, lines = endpoints.deploy(
            settings(c, pipeline), target, env, stage, number, strategy, wait
        )
        for line in lines:
            console.print(line, markup=False)


@task(help=STAGE_HELP)
def endpoint_status(c, target="local", env=None, pipeline=None, stage=None):
    """Show what a stage's endpoint serves and whether it answers (exit code 3 when not)."""
    from pipelines.actions import endpoints

    with exit_on_error():
        status = endpoints.status(settings(c, pipeline), target, env, stage)
        console.print(status.line, markup=False)
    if not status.running:
        raise Exit(code=3)


@task(help={**STAGE_HELP, "yes": "aws: do not ask for confirmation"})
def endpoint_down(c, target="local", env=None, pipeline=None, stage=None, yes=False):
    """Stop the local endpoint, or delete the SageMaker endpoint and its configs."""
    from pipelines.actions import endpoints

    with exit_on_error():
        ask = (lambda _: None) if yes else confirm
        console.print(
            endpoints.take_down(settings(c, pipeline), target, env, stage, ask), markup=False
        )


@task(
    help={
        **STAGE_HELP,
        "data": "CSV file with a header: the model's feature columns (extra columns are "
        "ignored); required",
        "output": "also write every prediction to this CSV file (its folder must exist)",
        "limit": "how many rows to show (default 20); metrics always cover every row",
        "inference_id_column": "send each row alone with this column's value as its "
        "InferenceId (recorded in the data capture, for monitor --ground-truth)",
    }
)
def predict(
    c, data=None, target="local", env=None, pipeline=None, stage=None, output=None, limit=None,
    inference_id_column=None,
):  # fmt: skip
    """Send rows of a CSV file to a stage's endpoint and print the predictions."""
    from pipelines.actions import endpoints
    from pipelines.ui.endpoint_views import predictions_table

    with exit_on_error():
        shown = whole_number(20 if limit is None else limit, "--limit")
        written = Path(output) if output else None
        where = (settings(c, pipeline), target, env, stage)
        result, version = endpoints.predict(*where, _data_file(data), inference_id_column, written)
        console.print(predictions_table(result, shown, version))
        if written:
            console.print(f"Wrote {len(result.values)} predictions to {written}", markup=False)


def _data_file(data: str | None) -> Path:
    if not data:
        raise MlopsError("Name the rows to send: --data FILE.csv.")
    return Path(data)


@task(
    help={
        **PIPELINE_TARGET_HELP,
        "from": "the stage whose version is promoted, after its gates (staging)",
        "to": "the stage it is deployed to, blue/green (prod)",
        "strategy": "all-at-once, canary or linear (default from invoke.yaml)",
        "approved_by": "for automation: who approves (with --reason); else a terminal asks",
        "reason": "why it is approved (recorded); with --approved-by, for automation",
        "allow_downgrade": "promote even when the target stage serves a newer version "
        "(needed without a person at a terminal)",
        "allow_backward": "promote against the stage order (prod to staging); needs --reason",
    }
)
def promote(
    c, from_="staging", to="prod", target="local", env=None, pipeline=None, strategy=None,
    approved_by=None, reason=None, allow_downgrade=False, allow_backward=False,
):  # fmt: skip
    """Promote a stage's version: gates, explicit approval, then a blue/green rollout."""
    from pipelines.actions.promotion import PromotionRequest, promote_stage
    from pipelines.ui.endpoint_views import gate_table, promotion_lines

    with exit_on_error():
        request = PromotionRequest(
            from_, to, target, env, strategy, approved_by, reason, allow_backward, allow_downgrade
        )
        done = promote_stage(
            settings(c, pipeline), request, interactive=sys.stdin.isatty(), warn=_warn,
            show_gates=lambda results, title: console.print(gate_table(results, title)),
        )  # fmt: skip
        console.print(promotion_lines(done, to))


def _warn(note: str) -> None:
    console.print(f"Warning: {note}", style="yellow", markup=False)


@task(
    help={
        **STAGE_HELP,
        "stage": "staging, prod or default (the environment's endpoint): that stage's "
        "history; without it, every stage: what it serves, since when, its last change",
    }
)
def deployments(c, target="local", env=None, pipeline=None, stage=None):
    """What every stage serves, or one stage's deployment history, newest first."""
    from pipelines.actions import endpoints
    from pipelines.ui.endpoint_views import history_table, overview_table

    with exit_on_error():
        if stage is None:
            console.print(overview_table(endpoints.overview(settings(c, pipeline), target, env)))
            return
        chosen = None if stage == "default" else stage
        endpoint, records = endpoints.history(settings(c, pipeline), target, env, chosen)
        console.print(history_table(records, f"Deployments of {endpoint} (newest first)"))


@task(help={**STAGE_HELP, "reason": "why (recorded in the stage's deployment history)"})
def rollback(c, target="local", env=None, pipeline=None, stage=None, reason=None):
    """Return a stage to the version it served before, blue/green; --reason is recorded."""
    from pipelines.actions import endpoints

    with exit_on_error():
        rollout = endpoints.rollback(settings(c, pipeline), target, env, stage, reason)
        console.print(
            f"Rolled back to version {rollout.record.version}. {rollout.message}", markup=False
        )
