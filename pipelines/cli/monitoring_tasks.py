"""Tasks for model monitoring: check captured traffic, schedule it, list the results."""

from __future__ import annotations

from invoke.exceptions import Exit

from pipelines.cli.common import STAGE_HELP, settings, task
from pipelines.ui.console import console, exit_on_error

MONITOR_HELP = {
    **STAGE_HELP,
    "since": "window of captured traffic to check, e.g. 30m, 1h, 2d (default 1h)",
    "report": "also write the HTML drift report (all kept runs) to this file",
    "ground_truth": "labels (SageMaker ground-truth JSON lines, or CSV with inferenceId and "
    "the target) to join by inference id: model quality",
}


@task(help=MONITOR_HELP)
def monitor(
    c,
    since="1h",
    report=None,
    ground_truth=None,
    target="local",
    env=None,
    pipeline=None,
    stage=None,
):
    """Check captured traffic against the deployed version's baselines; exit 3 on violations."""
    from pipelines.actions import monitoring
    from pipelines.ui.monitoring_views import result_lines

    with exit_on_error():
        result, written = monitoring.monitor(
            settings(c, pipeline), target, env, stage,
            since=since, report_file=report, ground_truth=ground_truth,
        )  # fmt: skip
        for renderable in result_lines(result, since, written):
            console.print(renderable)
    if result.exit_code:
        raise Exit(code=result.exit_code)


@task(
    help={
        **STAGE_HELP,
        "every": "interval: local any (e.g. 1h, 10m); aws 1h or 1d",
        "off": "stop it",
    }
)
def monitor_schedule(c, every=None, off=False, target="local", env=None, pipeline=None, stage=None):
    """Run monitoring on a schedule while the endpoint runs (--every 1h), or stop it (--off)."""
    from pipelines.actions import monitoring

    with exit_on_error():
        outcome = monitoring.set_schedule(settings(c, pipeline), target, env, stage, every, off)
        console.print(f"Monitoring schedule: {outcome.detail}", markup=False)


@task(help=STAGE_HELP)
def monitor_history(c, target="local", env=None, pipeline=None, stage=None):
    """List the kept monitoring results, newest first (empty windows counted per hour)."""
    from pipelines.actions import monitoring
    from pipelines.ui.monitoring_views import history_lines

    with exit_on_error():
        found = monitoring.history(settings(c, pipeline), target, env, stage)
        for renderable in history_lines(found):
            console.print(renderable)
