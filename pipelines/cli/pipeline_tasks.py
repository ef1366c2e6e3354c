"""Tasks for the pipeline: its definition, runs and executions."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke.exceptions import Exit

from pipelines.cli.arguments import positive_seconds, whole_number
from pipelines.cli.common import PIPELINE_TARGET_HELP, TARGET_HELP, deployment, settings, task
from pipelines.ui.console import console, err_console, exit_on_error, plain, terraform_progress

RUN_HELP = {
    **PIPELINE_TARGET_HELP,
    "param": "override a pipeline parameter, NAME=VALUE (repeatable)",
    "data": "input CSV: a local file (uploaded, versioned) or an s3:// URI; default: sample_data/",
    "wait": "follow the execution to the end (default); --no-wait prints its ARN and returns",
    "timeout": "stop following after this many seconds (default 7200; the execution keeps running)",
    "host_runtime": "local: run jobs on the host interpreter instead of the SageMaker "
    "container's runtime profile (results may not hold on SageMaker; mlops.runtime.host)",
    "trigger": "for automation: what started the run, in its display name and lineage: "
    "manual (default), schedule, new-data, commit or drift",
    "kwargs": "a pipeline module's get_pipeline keyword arguments, as JSON (over the ones "
    "the project derives from the Terraform outputs and invoke.yaml's kwargs)",
}
DEFAULT_TIMEOUT = 7200  # seconds; None as the flag's default keeps invoke from typing it
EXECUTION_HELP = {**PIPELINE_TARGET_HELP, "execution": "execution id or ARN (default: the latest)"}


@task(
    help={
        **PIPELINE_TARGET_HELP,
        "output": "write the definition to this file instead of printing it",
        "kwargs": RUN_HELP["kwargs"],
    }
)
def pipeline_definition(c, target="local", env=None, pipeline=None, output=None, kwargs=None):
    """Build the pipeline definition JSON from the Terraform outputs, for review."""
    from pipelines.actions import runs

    with exit_on_error():
        config, text = runs.definition(settings(c, pipeline), deployment(target, env), kwargs)
        if output:
            Path(output).write_text(text)
            console.print(
                f"Wrote the definition of {config.pipeline_name} to {output}", markup=False
            )
        else:
            sys.stdout.write(text)


@task(iterable=["param"], help=RUN_HELP)
def pipeline_run(
    c, target="local", env=None, pipeline=None, param=None, data=None, wait=True, timeout=None,
    host_runtime=False, trigger="manual", kwargs=None,
):  # fmt: skip
    """Run the pipeline end to end: infra, data, definition, execution, summary."""
    from pipelines.actions import runs

    with exit_on_error():
        seconds = positive_seconds(timeout or DEFAULT_TIMEOUT, "--timeout")
        config = settings(c, pipeline).with_overrides(runtime_host=True) if host_runtime else None
        started = runs.start_run(
            config or settings(c, pipeline), deployment(target, env), param or [], data,
            notify=plain, on_output=terraform_progress, trigger=trigger, kwargs=kwargs,
        )  # fmt: skip
        if not wait:
            return _not_following(started.execution)
        _follow(started.backend, started.execution, seconds, started)


def log_heading(log) -> str:
    reused = f" (a cache hit in {log.reused_by} reused this run)" if log.reused_by else ""
    return f"Log of {log.step.name} in {log.execution.execution_id}{reused}: {log.where}"


def _not_following(execution) -> None:
    found = execution.execution_id
    console.print(
        f"Not following it: `invoke execution-show --execution {found} --follow` follows it, "
        f"`invoke logs --execution {found} --follow` a step's log."
    )


def _follow(backend, execution, timeout: float, started=None) -> None:
    """Follow to the end, print the summary; exit 1 unless it succeeded. ``started``: the
    run's stack, to compare its metrics with the Approved version's."""
    from rich.prompt import Confirm
    from rich.text import Text

    from pipelines.actions import runs
    from pipelines.ui.console import print_all
    from pipelines.ui.run_views import execution_summary, watch

    try:
        found = watch(backend, execution, timeout=timeout)
    except KeyboardInterrupt:
        found = runs.stop_after_interrupt(
            backend, execution,
            confirm_stop=lambda e: sys.stdin.isatty() and Confirm.ask(f"Stop {e.execution_arn}?"),
            notify=lambda note: console.print(Text(note, style="yellow")),
        )  # fmt: skip
    if found is None:
        console.print(f"Left running: {execution.execution_arn}")
        raise Exit(code=130)
    if not found.finished:
        console.print(
            f"[yellow]Still {found.status} after {timeout:.0f} s; it keeps running.[/] "
            f"Follow it with `invoke execution-show --target {backend.name}`."
        )
        raise Exit(code=1)
    steps = runs.execution_details(backend, found)
    champion = (
        runs.compare_with_champion(started.connection, started.config, steps) if started else None
    )
    print_all(execution_summary(found, steps, backend.links(found, steps), champion=champion))
    if found.status != "Succeeded":
        raise Exit(code=1)


# --file, not a positional FILE: invoke would read `data-upload --help` as the file.
@task(help={**TARGET_HELP, "file": "the CSV to upload, named with letters, digits, . _ -"})
def data_upload(c, file=None, target="local", env=None):
    """Put a CSV under the bucket's new-data prefix, where it starts a retraining run."""
    from pipelines.actions import runs
    from pipelines.ui.console import print_all
    from pipelines.ui.run_views import upload_lines

    with exit_on_error():
        print_all(upload_lines(runs.upload_data(settings(c), deployment(target, env), file)))


@task(
    help={**PIPELINE_TARGET_HELP, "limit": "how many executions to show, newest first (default 10)"}
)
def executions(c, target="local", env=None, pipeline=None, limit=None):
    """List recent executions: status, what started each, on which data, why one failed."""
    from pipelines.actions import runs
    from pipelines.ui.run_views import executions_table

    with exit_on_error():
        # Typed here, not by invoke (an int default makes invoke parse it: a traceback).
        count = whole_number(10 if limit is None else limit, "--limit")
        found = runs.list_executions(settings(c, pipeline), deployment(target, env), count)
        console.print(executions_table(found))


@task(
    help={
        **EXECUTION_HELP,
        "full": "also show full ARNs",
        "follow": "re-attach the live view of a running execution, then show it",
    }
)
def execution_show(
    c, execution=None, target="local", env=None, pipeline=None, full=False, follow=False
):
    """Steps, parameters, metrics against the Approved version, lineage of an execution."""
    from pipelines.actions import runs
    from pipelines.ui.console import print_all
    from pipelines.ui.run_views import execution_view, watch

    with exit_on_error():
        chosen = deployment(target, env)
        config = settings(c, pipeline)
        backend, found = runs.find_for(config, chosen, execution)
        if follow and not found.finished:
            watch(backend, found)  # the live view, until it ends
        print_all(execution_view(runs.show(config, chosen, backend, found), full=full))


@task(
    help={
        **EXECUTION_HELP,
        "step": "the step (default: the failed step, else the last that ran a job)",
        "follow": "keep printing what the job writes until the step ends",
    }
)
def logs(c, execution=None, step=None, follow=False, target="local", env=None, pipeline=None):
    """Print a step's job log (local: its job.log; aws: its CloudWatch Logs)."""
    from pipelines.actions import runs

    with exit_on_error():
        log = runs.open_step_log(settings(c, pipeline), deployment(target, env), execution, step)
        err_console.print(log_heading(log), markup=False)
        for text in runs.log_text(log, follow=follow):
            sys.stdout.write(text)
            sys.stdout.flush()


@task(help={**EXECUTION_HELP, "wait": "follow it to the end", "timeout": RUN_HELP["timeout"]})
def pipeline_retry(
    c, execution=None, target="local", env=None, pipeline=None, wait=True, timeout=None
):
    """Resume a failed or stopped execution from the failed step, reusing what succeeded."""
    from pipelines.actions import runs

    with exit_on_error():
        seconds = positive_seconds(timeout or DEFAULT_TIMEOUT, "--timeout")
        backend, resumed = runs.retry(settings(c, pipeline), deployment(target, env), execution)
        console.print(f"Retrying {resumed.execution_arn}")
        if wait:
            _follow(backend, resumed, seconds)


@task(help=EXECUTION_HELP)
def pipeline_stop(c, execution=None, target="local", env=None, pipeline=None):
    """Stop a running execution: its running job is terminated, nothing new starts."""
    from pipelines.actions import runs

    with exit_on_error():
        stopped = runs.stop(settings(c, pipeline), deployment(target, env), execution)
        console.print(f"Execution {stopped.execution_id}: {stopped.status}")
