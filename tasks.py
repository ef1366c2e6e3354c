"""Tasks: `invoke --list`. Thin on purpose: parse arguments, call pipelines/, print."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from pipelines import infra, retention
from pipelines.arguments import optional_whole_number, whole_number
from pipelines.console import console, exit_on_error, key_value_table, terraform_progress
from pipelines.errors import MlopsError
from pipelines.settings import Settings
from pipelines.targets import Deployment
from pipelines.terraform import validate_configuration

TARGET_HELP = {
    "target": "local (the emulator, default) or aws",
    "env": "environment: local for the local target; dev, prod, ... for aws (default dev)",
}


def _settings(c) -> Settings:
    return Settings.load(c.config.get("mlops"))


# --- emulator -------------------------------------------------------------------------


@task
def emulator_up(c):
    """Start the local AWS emulator (moto, HTTPS on 127.0.0.1) unless it runs."""
    with exit_on_error():
        emulator = infra.emulator_for(_settings(c))
        info, started = emulator.start()
        verb = "Started" if started else "Already running:"
        restored = " (state restored)" if started and info.restored else ""
        console.print(f"{verb} emulator pid {info.pid} at {info.endpoint}{restored}")


@task
def emulator_down(c):
    """Stop the local AWS emulator; its state is kept for the next start."""
    with exit_on_error():
        stopped = infra.emulator_for(_settings(c)).stop()
        console.print("Emulator stopped." if stopped else "The emulator was not running.")


@task
def state_usage(c):
    """Show what the state folder (.mlops) uses, part by part."""
    with exit_on_error():
        settings = _settings(c)
        usage = retention.state_usage(settings.state_dir)
        total = sum(size for _, size in usage)
        rows = {name: _megabytes(size) for name, size in usage}
        rows["total"] = _megabytes(total)
        console.print(key_value_table(f"State folder: {settings.state_dir}", rows))


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


@task
def emulator_status(c):
    """Show whether the emulator runs, its pid and endpoint."""
    with exit_on_error():
        status = infra.emulator_for(_settings(c)).status()
        console.print(f"Emulator: {status.detail}")
        if not status.running:
            raise Exit(code=3)


# --- infrastructure -------------------------------------------------------------------


@task(help=TARGET_HELP)
def infra_up(c, target="local", env=None):
    """Apply the Terraform stack (starting the emulator for local) and print outputs."""
    with exit_on_error():
        deployment = Deployment.parse(target, env)
        console.print(f"[bold]infra-up[/] {deployment}")
        settings = _settings(c)
        with infra.infra_lock(settings, deployment):
            stack = infra.open_stack(
                settings, deployment, start_emulator=True, on_output=terraform_progress
            )
            result = infra.infra_up(stack)
        timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
        state = "Applied changes" if result.changed else "No changes"
        console.print(f"{state} ({timing}).")
        console.print(key_value_table(f"Outputs: {deployment}", result.outputs))


@task(help={**TARGET_HELP, "json": "print the outputs as JSON (for scripts)"})
def infra_outputs(c, target="local", env=None, json_=False):
    """Print the Terraform outputs the pipeline tasks read."""
    with exit_on_error():
        stack = infra.open_stack(_settings(c), Deployment.parse(target, env))
        config = infra.read_infra_config(stack)
        if json_:
            sys.stdout.write(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
        else:
            console.print(key_value_table(f"Outputs: {stack.deployment}", config.to_dict()))


@task(
    help={
        **TARGET_HELP,
        "output_dir": "review folder (default .mlops/review/<target-env>)",
    }
)
def plan(c, target="local", env=None, output_dir=None):
    """Write a plan review (plan.md, plan.json, plan.txt, checkov); exit 2 on changes."""
    with exit_on_error():
        deployment = Deployment.parse(target, env)
        stack = infra.open_stack(_settings(c), deployment, start_emulator=deployment.is_local)
        review = infra.review_plan(stack, Path(output_dir) if output_dir else None)
        console.print((review.directory / "plan.md").read_text(), markup=False)
        console.print(f"Review written to {review.directory}")
    if review.has_changes:
        raise Exit(code=2)


@task(help={**TARGET_HELP, "yes": "do not ask for confirmation"})
def destroy(c, target="local", env=None, yes=False):
    """Delete everything the project created (objects, model versions, stack)."""
    with exit_on_error():
        settings = _settings(c)
        deployment = Deployment.parse(target, env)
        with infra.infra_lock(settings, deployment):
            _destroy(settings, deployment, yes)


def _destroy(settings: Settings, deployment: Deployment, yes: bool) -> None:
    emulator = infra.emulator_for(settings) if deployment.is_local else None
    if emulator is not None and not emulator.status().running and not emulator.has_data():
        forgot = infra.forget_local_stack(settings, deployment)
        console.print(
            "The emulator is not running, so its resources are already gone"
            + ("; local state cleared." if forgot else ".")
        )
        return
    if not yes:
        _confirm(f"Destroy every resource of {deployment}, including all artifacts?")
    # The emulator's state is durable: a stopped emulator is started to destroy it.
    stack = infra.open_stack(
        settings, deployment, start_emulator=emulator is not None, on_output=terraform_progress
    )
    result = infra.destroy(stack, on_stop=lambda note: console.print(note))
    console.print(
        f"Destroyed {deployment}: {result.endpoints_deleted} endpoint(s), "
        f"{result.objects_deleted} object version(s) and "
        f"{result.model_packages_deleted} model package(s) deleted first"
        + ("; emulator stopped." if result.emulator_stopped else ".")
    )


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise MlopsError(f"{question} Refusing without a terminal: pass --yes to confirm.")
    answer = input(f"{question} Type 'yes' to continue: ")
    if answer.strip().lower() != "yes":
        raise MlopsError("Cancelled; nothing was changed.")


@task(
    help={
        **TARGET_HELP,
        "output": "write the definition to this file instead of printing it",
    }
)
def pipeline_definition(c, target="local", env=None, output=None):
    """Build the pipeline definition JSON from the Terraform outputs, for review."""
    with exit_on_error():
        from pipelines.definition import build_definition

        config = infra.read_infra_config_from_state(_settings(c), Deployment.parse(target, env))
        text = build_definition(config)
        if output:
            Path(output).write_text(text)
            console.print(f"Wrote the definition of {config.pipeline_name} to {output}")
        else:
            sys.stdout.write(text)


@task
def validate(c):
    """terraform fmt -check and validate on infra/ (offline; a pre-commit hook)."""
    with exit_on_error():
        console.print(validate_configuration(_settings(c), os.environ))


# --- pipeline runs -------------------------------------------------------------------------

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


def _open(c, target, env):
    from pipelines.run import open_target

    return open_target(_settings(c), Deployment.parse(target, env))


def _open_records(c, target, env):
    """The backend, for reading executions; locally, the executor's own records
    (they live in SQLite and need nothing else, so they read while the emulator is down)."""
    settings = _settings(c)
    deployment = Deployment.parse(target, env)
    if deployment.is_local:
        from pipelines.backends.local import LocalBackend

        # Reading needs neither Terraform nor the emulator: a poll costs milliseconds.
        return LocalBackend(settings, None)
    return _open(c, target, env)[2]


def _finish(backend, execution) -> None:
    from pipelines.monitor import execution_summary

    steps = backend.details(execution, backend.steps(execution.execution_id))
    console.print(execution_summary(execution, steps, backend.links(execution, steps)))
    if execution.status != "Succeeded":
        raise Exit(code=1)


def _follow(backend, execution, timeout) -> None:
    from rich.prompt import Confirm

    from pipelines.monitor import watch

    try:
        execution = watch(backend, execution, timeout=timeout)
    except KeyboardInterrupt:
        if backend.name == "local":
            console.print("[yellow]Stopping the execution (the running job is terminated)...[/]")
        elif not (sys.stdin.isatty() and Confirm.ask(f"Stop {execution.execution_arn}?")):
            console.print(f"Left running: {execution.execution_arn}")
            raise Exit(code=130) from None
        backend.stop(execution.execution_id)
        execution = backend.wait(execution.execution_id, timeout=600)
    if not execution.finished:
        console.print(
            f"[yellow]Still {execution.status} after {timeout} s; it keeps running.[/] "
            f"Follow it with `invoke execution-show --target {backend_target(backend)}`."
        )
        raise Exit(code=1)
    _finish(backend, execution)


def backend_target(backend) -> str:
    return "local" if backend.name == "local" else "aws"


# No automatic short flags: --host-runtime would take -h, which users type for help.
@task(iterable=["param"], help=RUN_HELP, auto_shortflags=False)
def pipeline_run(
    c,
    target="local",
    env=None,
    param=None,
    data=None,
    wait=True,
    timeout=7200,
    host_runtime=False,
):
    """Run the pipeline end to end: infra, data, definition, execution, summary."""
    with exit_on_error():
        from pipelines import run
        from pipelines.datasets import check_data_argument

        deployment = Deployment.parse(target, env)
        overrides = run.check_overrides(param or [], data)
        # A typo in --data is reported now, not after a cold infra-up.
        check_data_argument(data)
        settings = _settings(c)
        if host_runtime:
            settings = settings.with_overrides(runtime_host=True)
        if deployment.is_local:
            runtime_build = run.start_runtime_build(settings, console.print)
            stack, config, up = run.ensure_local_stack(settings, terraform_progress)
            if up is not None:
                console.print(f"Local infrastructure applied: {up.timing()}.")
            if runtime_build is not None:
                runtime_build.result()  # a failed build is reported here, before uploads
        else:
            # Credentials are verified here, before anything is uploaded.
            stack = infra.open_stack(settings, deployment)
            config = infra.read_infra_config(stack)
        prepared = run.prepare_run(stack.connection, config, overrides, data, root=settings.root)
        data_note = "uploaded" if prepared.dataset.uploaded else "unchanged"
        console.print(f"Input data: {prepared.dataset.uri} ({data_note})")
        backend = run.backend_for(stack, config)
        execution = backend.start(prepared)
        console.print(f"Started {execution.execution_arn} ({execution.display_name})")
        if deployment.is_local:
            retention.prune_sandboxes(settings.state_dir, settings.keep_execution_sandboxes)
        if not wait:
            sys.stdout.write(execution.execution_arn + "\n")
            return
        _follow(backend, execution, float(timeout))


@task(help={**TARGET_HELP, "limit": "how many executions to show, newest first (default 10)"})
def executions(c, target="local", env=None, limit=None):
    """List recent executions of the pipeline with their status."""
    with exit_on_error():
        from pipelines.monitor import executions_table

        # Typed here, not by invoke (an int default makes invoke parse it: a traceback).
        count = whole_number(10 if limit is None else limit, "--limit")
        backend = _open_records(c, target, env)
        console.print(executions_table(backend.list_executions(limit=count)))


@task(help=EXECUTION_HELP)
def execution_show(c, execution=None, target="local", env=None):
    """Steps, statuses, durations, failure reasons, metrics and lineage of an execution."""
    with exit_on_error():
        from pipelines.monitor import execution_summary, steps_table

        backend = _open_records(c, target, env)
        found = backend.describe(execution) if execution else backend.latest()
        steps = backend.details(found, backend.steps(found.execution_id))
        console.print(steps_table(found, steps))
        console.print(execution_summary(found, steps, backend.links(found, steps)))


@task(help={**EXECUTION_HELP, "wait": "follow it to the end", "timeout": RUN_HELP["timeout"]})
def pipeline_retry(c, execution=None, target="local", env=None, wait=True, timeout=7200):
    """Resume a failed or stopped execution from the failed step, reusing what succeeded."""
    with exit_on_error():
        _, _, backend = _open(c, target, env)
        found = backend.describe(execution) if execution else backend.latest()
        resumed = backend.retry(found.execution_id)
        console.print(f"Retrying {resumed.execution_arn}")
        if wait:
            _follow(backend, resumed, float(timeout))


@task(help=EXECUTION_HELP)
def pipeline_stop(c, execution=None, target="local", env=None):
    """Stop a running execution: its running job is terminated, nothing new starts."""
    with exit_on_error():
        _, _, backend = _open(c, target, env)
        found = backend.describe(execution) if execution else backend.latest()
        stopped = backend.wait(backend.stop(found.execution_id).execution_id, timeout=600)
        console.print(f"Execution {stopped.execution_id}: {stopped.status}")


# --- model registry, deployment, predictions ---------------------------------------------------

MODEL_HELP = {**TARGET_HELP, "version": "model version number (default: the latest)"}


def _registry(stack, config):
    from pipelines.registry import Registry

    return Registry(stack.connection, config.model_package_group_name)


@task(help={**TARGET_HELP, "status": "only versions with this approval status"})
def models(c, status=None, target="local", env=None):
    """List the model versions: approval status, metrics, the execution behind each."""
    with exit_on_error():
        from pipelines.monitor import versions_table

        stack, config, backend = _open(c, target, env)
        registry = _registry(stack, config)
        versions = registry.versions(status)
        metrics = {v.version: registry.metrics(v) for v in versions}
        console.print(versions_table(versions, metrics, _version_checks(backend, versions)))


def _version_checks(backend, versions) -> dict[int, str]:
    """Each version's check results, from the steps of the execution that registered it."""
    from pipelines.errors import MlopsError
    from pipelines.monitor import version_checks

    found = {}
    for version in versions:
        if version.execution_id:
            try:
                found[version.version] = version_checks(backend.steps(version.execution_id))
            except MlopsError:
                found[version.version] = ""  # the execution's records are gone
    return found


@task(help={**MODEL_HELP, "reason": "why (recorded in the approval description)"})
def model_approve(c, version=None, reason="", target="local", env=None):
    """Approve a model version (default: the latest), recording who and why."""
    with exit_on_error():
        from pipelines.registry import APPROVED, actor

        number = optional_whole_number(version, "--version")
        stack, config, _ = _open(c, target, env)
        updated = _registry(stack, config).set_status(
            number, APPROVED, reason, actor(stack.connection)
        )
        console.print(
            f"Version {updated.version}: {updated.status} ({updated.approval_description})"
        )


@task(help={**MODEL_HELP, "reason": "why it is rejected (required)"})
def model_reject(c, version=None, reason=None, target="local", env=None):
    """Reject a model version (default: the latest); --reason is required."""
    with exit_on_error():
        from pipelines.registry import REJECTED, actor

        if not reason:
            raise MlopsError("Say why with --reason: it is recorded with the rejection.")
        number = optional_whole_number(version, "--version")
        stack, config, _ = _open(c, target, env)
        updated = _registry(stack, config).set_status(
            number, REJECTED, reason, actor(stack.connection)
        )
        console.print(
            f"Version {updated.version}: {updated.status} ({updated.approval_description})"
        )


# --- deployment and promotion tasks (issue 16) --------------------------------------------

STAGE_HELP = {
    **TARGET_HELP,
    "stage": "staging or prod (local: its own endpoint; aws: its Terraform environment); "
    "default: the environment's endpoint",
}


def _deployer(c, target, env, stage, wait=True):
    from pipelines.serving.deployer import open_deployer

    return open_deployer(_settings(c), target, env, stage, wait=wait)


@task(
    help={
        **STAGE_HELP,
        "version": "model version to deploy (default: the latest Approved one)",
        "strategy": "all-at-once, canary or linear (default from invoke.yaml)",
        "wait": "aws: wait until the endpoint is InService (default)",
    }
)
def deploy(c, version=None, target="local", env=None, stage=None, strategy=None, wait=True):
    """Deploy an Approved model version to a stage's endpoint, blue/green."""
    with exit_on_error():
        number = optional_whole_number(version, "--version")
        rollout = _deployer(c, target, env, stage, wait).deploy(number, strategy)
        console.print(rollout.message)


@task(help=STAGE_HELP)
def endpoint_status(c, target="local", env=None, stage=None):
    """Show what a stage's endpoint serves and whether it answers."""
    with exit_on_error():
        status = _deployer(c, target, env, stage).status()
        console.print(status.line)
    if not status.running:
        raise Exit(code=3)


@task(help={**STAGE_HELP, "yes": "aws: do not ask for confirmation"})
def endpoint_down(c, target="local", env=None, stage=None, yes=False):
    """Stop the local endpoint, or delete the SageMaker endpoint and its configs."""
    with exit_on_error():
        deployer = _deployer(c, target, env, stage)
        if deployer.needs_confirmation and not yes:
            _confirm(f"Delete the endpoint {deployer.endpoint}?")
        console.print(deployer.down())


@task(
    help={
        **STAGE_HELP,
        "data": "CSV file with a header: the model's feature columns (extra columns are ignored)",
        "output": "also write every prediction to this CSV file",
        "limit": "how many rows to show (default 20)",
    }
)
def predict(c, data, target="local", env=None, stage=None, output=None, limit=None):
    """Send rows of a CSV file to a stage's endpoint and print the predictions."""
    with exit_on_error():
        from pipelines.monitor import predictions_table

        shown = whole_number(20 if limit is None else limit, "--limit")
        result, version = _deployer(c, target, env, stage).predict(Path(data))
        console.print(predictions_table(result, shown, version))
        if output:
            Path(output).write_text("prediction\n" + "".join(f"{v!r}\n" for v in result.values))
            console.print(f"Wrote {len(result.values)} predictions to {output}")


@task(
    help={
        **TARGET_HELP,
        "from": "the stage whose version is promoted, after its gates (staging)",
        "to": "the stage it is deployed to, blue/green (prod)",
        "strategy": "all-at-once, canary or linear (default from invoke.yaml)",
        "approved_by": "for automation: who approves (with --reason); else a terminal asks",
        "reason": "for automation: why it is approved",
    }
)
def promote(
    c, from_="staging", to="prod", target="local", env=None, strategy=None,
    approved_by=None, reason=None,
):  # fmt: skip
    """Promote a stage's version: gates, explicit approval, then a blue/green rollout."""
    with exit_on_error():
        from pipelines.promotion import cli

        console.print(cli.promote_from_terminal(
            _settings(c), from_, to, target, env, strategy, approved_by, reason
        ))  # fmt: skip


@task(help=STAGE_HELP)
def deployments(c, target="local", env=None, stage=None):
    """The deployment history of a stage: versions, approvals, gates, strategies, outcomes."""
    with exit_on_error():
        from pipelines.promotion.report import history_table

        deployer = _deployer(c, target, env, stage)
        console.print(history_table(deployer.history(), f"Deployments of {deployer.endpoint}"))


@task(help=STAGE_HELP)
def rollback(c, target="local", env=None, stage=None):
    """Return a stage to the version it served before, blue/green."""
    with exit_on_error():
        rollout = _deployer(c, target, env, stage).rollback()
        console.print(f"Rolled back to version {rollout.record.version}. {rollout.message}")
