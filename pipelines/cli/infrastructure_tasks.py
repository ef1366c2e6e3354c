"""Tasks for the emulator and the Terraform stack."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from pipelines import actions
from pipelines.cli.common import TARGET_HELP, confirm, deployment, megabytes, settings
from pipelines.executor.retention import state_usage as usage_of
from pipelines.stack.stacks import emulator_for
from pipelines.stack.terraform import validate_configuration
from pipelines.teardown import destroy_deployment
from pipelines.ui.console import console, exit_on_error, key_value_table, terraform_progress


@task
def emulator_up(c):
    """Start the local AWS emulator (moto, HTTPS on 127.0.0.1) unless it runs."""
    with exit_on_error():
        info, started = emulator_for(settings(c)).start()
        verb = "Started" if started else "Already running:"
        restored = " (state restored)" if started and info.restored else ""
        console.print(f"{verb} emulator pid {info.pid} at {info.endpoint}{restored}")


@task
def emulator_down(c):
    """Stop the local AWS emulator; its state is kept for the next start."""
    with exit_on_error():
        stopped = emulator_for(settings(c)).stop()
        console.print("Emulator stopped." if stopped else "The emulator was not running.")


@task
def emulator_status(c):
    """Show whether the emulator runs, its pid and endpoint."""
    with exit_on_error():
        status = emulator_for(settings(c)).status()
        console.print(f"Emulator: {status.detail}")
        if not status.running:
            raise Exit(code=3)


@task
def state_usage(c):
    """Show what the state folder (.mlops) uses, part by part."""
    with exit_on_error():
        state_dir = settings(c).state_dir
        usage = usage_of(state_dir)
        rows = {name: megabytes(size) for name, size in usage}
        rows["total"] = megabytes(sum(size for _, size in usage))
        console.print(key_value_table(f"State folder: {state_dir}", rows))


@task(help=TARGET_HELP)
def infra_up(c, target="local", env=None):
    """Apply the Terraform stack (starting the emulator for local) and print outputs."""
    with exit_on_error():
        chosen = deployment(target, env)
        console.print(f"[bold]infra-up[/] {chosen}")
        result = actions.bring_up(settings(c), chosen, terraform_progress)
        state = "Applied changes" if result.changed else "No changes"
        console.print(f"{state} ({result.timing()}).")
        console.print(key_value_table(f"Outputs: {chosen}", result.outputs))


@task(help={**TARGET_HELP, "json": "print the outputs as JSON (for scripts)"})
def infra_outputs(c, target="local", env=None, json_=False):
    """Print the Terraform outputs the pipeline tasks read."""
    with exit_on_error():
        chosen = deployment(target, env)
        values = actions.outputs(settings(c), chosen).to_dict()
        if json_:
            sys.stdout.write(json.dumps(values, indent=2, sort_keys=True) + "\n")
        else:
            console.print(key_value_table(f"Outputs: {chosen}", values))


@task(help={**TARGET_HELP, "output_dir": "review folder (default .mlops/review/<target-env>)"})
def plan(c, target="local", env=None, output_dir=None):
    """Write a plan review (plan.md, plan.json, plan.txt, checkov); exit 2 on changes."""
    with exit_on_error():
        folder = Path(output_dir) if output_dir else None
        review = actions.review(settings(c), deployment(target, env), folder)
        console.print((review.directory / "plan.md").read_text(), markup=False)
        console.print(f"Review written to {review.directory}")
    if review.has_changes:
        raise Exit(code=2)


@task(help={**TARGET_HELP, "yes": "do not ask for confirmation"})
def destroy(c, target="local", env=None, yes=False):
    """Delete everything the project created (objects, model versions, stack)."""
    with exit_on_error():
        chosen = deployment(target, env)
        result = destroy_deployment(
            settings(c),
            chosen,
            confirm=(lambda _: None) if yes else confirm,
            on_stop=console.print,
            on_output=terraform_progress,
        )
        console.print(result.describe(chosen))


@task
def validate(c):
    """terraform fmt -check and validate on infra/ (offline; a pre-commit hook)."""
    with exit_on_error():
        console.print(validate_configuration(settings(c), os.environ))
