"""Tasks for the pipeline: its definition, runs and executions."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit
from rich.prompt import Confirm

from pipelines import actions
from pipelines.backends.base import Backend
from pipelines.cli.arguments import whole_number
from pipelines.cli.common import TARGET_HELP, deployment, settings
from pipelines.core.records import Execution
from pipelines.ui.console import console, exit_on_error, terraform_progress
from pipelines.ui.views import execution_summary, executions_table, steps_table

RUN_HELP = {
    **TARGET_HELP,
    "param": "override a pipeline parameter, NAME=VALUE (repeatable)",
    "data": "input CSV: a local file (uploaded, versioned) or an s3:// URI; default: sample_data/",
    "wait": "follow the execution to the end (default); --no-wait prints its ARN and returns",
    "timeout": "stop following after this many seconds (the execution keeps running)",
    "host_runtime": "local: run jobs on the host interpreter instead of the SageMaker "
    "container's runtime profile (results may not hold on SageMaker; mlops.runtime.host)",
}
EXECUTION_HELP = {**TARGET_HELP, "execution": "execution id or ARN (default: the latest)"}


@task(help={**TARGET_HELP, "output": "write the definition to this file instead of printing it"})
def pipeline_definition(c, target="local", env=None, output=None):
    """Build the pipeline definition JSON from the Terraform outputs, for review."""
    with exit_on_error():
        config, text = actions.definition(settings(c), deployment(target, env))
        if output:
            Path(output).write_text(text)
            console.print(f"Wrote the definition of {config.pipeline_name} to {output}")
        else:
            sys.stdout.write(text)


# No automatic short flags: --host-runtime would take -h, which users type for help.
@task(iterable=["param"], help=RUN_HELP, auto_shortflags=False)
def pipeline_run(
    c, target="local", env=None, param=None, data=None, wait=True, timeout=7200, host_runtime=False
):
    """Run the pipeline end to end: infra, data, definition, execution, summary."""
    with exit_on_error():
        chosen = deployment(target, env)
        config = settings(c).with_overrides(runtime_host=True) if host_runtime else settings(c)
        started = actions.start_run(
            config, chosen, param or [], data, notify=console.print, on_output=terraform_progress
        )
        if not wait:
            sys.stdout.write(started.execution.execution_arn + "\n")
            return
        _follow(started.backend, started.execution, float(timeout))


def _follow(backend: Backend, execution: Execution, timeout: float) -> None:
    """Follow to the end, print the summary; exit 1 unless it succeeded."""
    found = actions.follow(
        backend,
        execution,
        timeout,
        confirm_stop=lambda e: sys.stdin.isatty() and Confirm.ask(f"Stop {e.execution_arn}?"),
        notify=lambda note: console.print(f"[yellow]{note}[/]"),
    )
    if found is None:
        console.print(f"Left running: {execution.execution_arn}")
        raise Exit(code=130)
    if not found.finished:
        console.print(
            f"[yellow]Still {found.status} after {timeout:.0f} s; it keeps running.[/] "
            f"Follow it with `invoke execution-show --target {backend.name}`."
        )
        raise Exit(code=1)
    steps = actions.execution_details(backend, found)
    console.print(execution_summary(found, steps, backend.links(found, steps)))
    if found.status != "Succeeded":
        raise Exit(code=1)


@task(help={**TARGET_HELP, "limit": "how many executions to show, newest first (default 10)"})
def executions(c, target="local", env=None, limit=None):
    """List recent executions of the pipeline with their status."""
    with exit_on_error():
        # Typed here, not by invoke (an int default makes invoke parse it: a traceback).
        count = whole_number(10 if limit is None else limit, "--limit")
        backend = actions.records(settings(c), deployment(target, env))
        console.print(executions_table(backend.list_executions(limit=count)))


@task(help=EXECUTION_HELP)
def execution_show(c, execution=None, target="local", env=None):
    """Steps, statuses, durations, failure reasons, metrics and lineage of an execution."""
    with exit_on_error():
        backend = actions.records(settings(c), deployment(target, env))
        found = actions.find_execution(backend, execution)
        steps = actions.execution_details(backend, found)
        console.print(steps_table(found, steps))
        console.print(execution_summary(found, steps, backend.links(found, steps)))


@task(help={**EXECUTION_HELP, "wait": "follow it to the end", "timeout": RUN_HELP["timeout"]})
def pipeline_retry(c, execution=None, target="local", env=None, wait=True, timeout=7200):
    """Resume a failed or stopped execution from the failed step, reusing what succeeded."""
    with exit_on_error():
        backend, resumed = actions.retry(settings(c), deployment(target, env), execution)
        console.print(f"Retrying {resumed.execution_arn}")
        if wait:
            _follow(backend, resumed, float(timeout))


@task(help=EXECUTION_HELP)
def pipeline_stop(c, execution=None, target="local", env=None):
    """Stop a running execution: its running job is terminated, nothing new starts."""
    with exit_on_error():
        stopped = actions.stop(settings(c), deployment(target, env), execution)
        console.print(f"Execution {stopped.execution_id}: {stopped.status}")
