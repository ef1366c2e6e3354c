"""Tasks for the emulator and the Terraform stack."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from invoke.exceptions import Exit

from pipelines.cli.common import TARGET_HELP, confirm, deployment, megabytes, settings, task
from pipelines.ui.console import (
    console,
    exit_on_error,
    key_value_table,
    plain,
    terraform_progress,
)


@task
def emulator_up(c):
    """Start the local AWS emulator (moto, HTTPS on 127.0.0.1) unless it runs."""
    from pipelines.actions import infrastructure

    with exit_on_error():
        info, started = infrastructure.emulator_up(settings(c))
        verb = "Started" if started else "Already running:"
        restored = " (state restored)" if started and info.restored else ""
        console.print(f"{verb} emulator pid {info.pid} at {info.endpoint}{restored}")
        # A damaged snapshot was set aside at this start: say what was restored and lost.
        for note in info.recovered if started else ():
            console.print(note, style="yellow", markup=False)


@task
def emulator_down(c):
    """Stop the local AWS emulator; its state is kept for the next start."""
    from pipelines.actions import infrastructure

    with exit_on_error():
        stopped = infrastructure.emulator_down(settings(c))
        console.print("Emulator stopped." if stopped else "The emulator was not running.")


@task
def emulator_status(c):
    """Show whether the emulator runs, its pid and endpoint (exit code 3 when it does not)."""
    from pipelines.actions import infrastructure

    with exit_on_error():
        status = infrastructure.emulator_status(settings(c))
        console.print(f"Emulator: {status.detail}")
    if not status.running:
        raise Exit(code=3)


@task
def state_usage(c):
    """Show what the state folder (.mlops) uses, part by part."""
    from pipelines.actions import infrastructure

    with exit_on_error():
        usage = infrastructure.state_usage(settings(c))
        rows = {name: megabytes(size) for name, size in usage}
        rows["total"] = megabytes(sum(size for _, size in usage))
        console.print(key_value_table(f"State folder: {settings(c).state_dir}", rows))


@task(help=TARGET_HELP)
def infra_up(c, target="local", env=None):
    """Apply the Terraform stack (starting the emulator for local) and print outputs."""
    from pipelines.actions import infrastructure

    with exit_on_error():
        chosen = deployment(target, env)
        console.print(f"[bold]infra-up[/] {chosen}")
        result = infrastructure.bring_up(settings(c), chosen, terraform_progress)
        state = "Applied changes" if result.changed else "No changes"
        console.print(f"{state} ({result.timing()}).")
        console.print(key_value_table(f"Outputs: {chosen}", result.outputs))


@task(help={**TARGET_HELP, "json": "print the outputs as JSON (for scripts)"})
def infra_outputs(c, target="local", env=None, json_=False):
    """Print the Terraform outputs the pipeline tasks read."""
    from pipelines.actions import infrastructure

    with exit_on_error():
        chosen = deployment(target, env)
        values = infrastructure.outputs(settings(c), chosen).to_dict()
        if json_:
            sys.stdout.write(json.dumps(values, indent=2, sort_keys=True) + "\n")
        else:
            console.print(key_value_table(f"Outputs: {chosen}", values))


@task(help={**TARGET_HELP, "output_dir": "review folder (default .mlops/review/<target-env>)"})
def plan(c, target="local", env=None, output_dir=None):
    """Write a plan review (plan.md, plan.json, plan.txt, checkov); exit 2 on changes."""
    from pipelines.actions import infrastructure

    with exit_on_error():
        folder = Path(output_dir) if output_dir else None
        review = infrastructure.review(settings(c), deployment(target, env), folder)
        console.print((review.directory / "plan.md").read_text(), markup=False)
        console.print(f"Review written to {review.directory}")
    if review.has_changes:
        raise Exit(code=2)


@task(help={**TARGET_HELP, "yes": "do not ask for confirmation"})
def destroy(c, target="local", env=None, yes=False):
    """Delete everything the project created (objects, model versions, stack)."""
    from pipelines.actions import infrastructure

    with exit_on_error():
        chosen = deployment(target, env)
        result = infrastructure.destroy(
            settings(c), chosen, confirm=(lambda _: None) if yes else confirm,
            on_stop=plain, on_output=terraform_progress,
        )  # fmt: skip
        console.print(result.describe(chosen), markup=False)


@task
def validate(c):
    """terraform fmt -check and validate on infra/ (offline; a pre-commit hook)."""
    from pipelines.actions import infrastructure

    with exit_on_error():
        console.print(infrastructure.validate(settings(c)), markup=False)
