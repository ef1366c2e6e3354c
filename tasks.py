"""Tasks: `invoke --list`. Thin on purpose: parse arguments, call pipelines/, print."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from pipelines import infra
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
        console.print(f"{verb} emulator pid {info.pid} at {info.endpoint}")


@task
def emulator_down(c):
    """Stop the local AWS emulator (its resources vanish with it)."""
    with exit_on_error():
        stopped = infra.emulator_for(_settings(c)).stop()
        console.print("Emulator stopped." if stopped else "The emulator was not running.")


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
        stack = infra.open_stack(
            _settings(c), deployment, start_emulator=True, on_output=terraform_progress
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
        if deployment.is_local and not infra.emulator_for(settings).status().running:
            forgot = infra.forget_local_stack(settings, deployment)
            console.print(
                "The emulator is not running, so its resources are already gone"
                + ("; local state cleared." if forgot else ".")
            )
            return
        stack = infra.open_stack(settings, deployment, on_output=terraform_progress)
        if not yes:
            _confirm(f"Destroy every resource of {deployment}, including all artifacts?")
        result = infra.destroy(stack)
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


@task(iterable=["param"], help=RUN_HELP)
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

        deployment = Deployment.parse(target, env)
        overrides = run.check_overrides(param or [], data)
        settings = _settings(c)
        if host_runtime:
            settings = settings.with_overrides(runtime_host=True)
        if deployment.is_local:
            stack, config, provisioned = run.ensure_local_stack(settings, terraform_progress)
            if provisioned:
                console.print("Local infrastructure applied.")
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
        if not wait:
            sys.stdout.write(execution.execution_arn + "\n")
            return
        _follow(backend, execution, float(timeout))


@task(help={**TARGET_HELP, "limit": "how many executions to show (newest first)"})
def executions(c, target="local", env=None, limit=10):
    """List recent executions of the pipeline with their status."""
    with exit_on_error():
        from pipelines.monitor import executions_table

        _, _, backend = _open(c, target, env)
        console.print(executions_table(backend.list_executions(limit=int(limit))))


@task(help=EXECUTION_HELP)
def execution_show(c, execution=None, target="local", env=None):
    """Steps, statuses, durations, failure reasons, metrics and lineage of an execution."""
    with exit_on_error():
        from pipelines.monitor import execution_summary, steps_table

        _, _, backend = _open(c, target, env)
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

        stack, config, _ = _open(c, target, env)
        registry = _registry(stack, config)
        versions = registry.versions(status)
        metrics = {v.version: registry.metrics(v) for v in versions}
        console.print(versions_table(versions, metrics))


@task(help={**MODEL_HELP, "reason": "why (recorded in the approval description)"})
def model_approve(c, version=None, reason="", target="local", env=None):
    """Approve a model version (default: the latest), recording who and why."""
    with exit_on_error():
        from pipelines.registry import APPROVED, actor

        stack, config, _ = _open(c, target, env)
        number = int(version) if version is not None else None
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
        stack, config, _ = _open(c, target, env)
        number = int(version) if version is not None else None
        updated = _registry(stack, config).set_status(
            number, REJECTED, reason, actor(stack.connection)
        )
        console.print(
            f"Version {updated.version}: {updated.status} ({updated.approval_description})"
        )


@task(
    help={
        **TARGET_HELP,
        "version": "model version to deploy (default: the latest Approved one)",
        "strategy": "aws: all-at-once or canary (default from invoke.yaml)",
        "wait": "aws: wait until the endpoint is InService (default)",
    }
)
def deploy(c, version=None, target="local", env=None, strategy=None, wait=True):
    """Deploy an Approved model version to the local endpoint or a SageMaker endpoint."""
    with exit_on_error():
        from pipelines import deploy as deployment
        from pipelines.registry import require_approved

        settings = _settings(c)
        stack, config, _ = _open(c, target, env)
        registry = _registry(stack, config)
        chosen = registry.get(int(version)) if version is not None else registry.latest_approved()
        require_approved(chosen)
        deploy_settings = deployment.DeploySettings.from_settings(settings, strategy=strategy)
        if stack.deployment.is_local:
            endpoint = deployment.local_endpoint(
                settings, stack.connection, config, deploy_settings
            )
            status = endpoint.deploy(chosen)
            console.print(f"Version {chosen.version} serving at {status.url}/invocations")
            return
        result = deployment.deploy_to_sagemaker(
            stack.connection, config, chosen, deploy_settings, wait=wait
        )
        verb = "Created" if result.created else f"Updated ({deploy_settings.strategy})"
        console.print(
            f"{verb} endpoint {result.endpoint} with version {chosen.version} "
            f"(config {result.endpoint_config}): {result.status}"
        )


@task(help=TARGET_HELP)
def endpoint_status(c, target="local", env=None):
    """Show what the endpoint serves and whether it answers."""
    with exit_on_error():
        from pipelines import deploy as deployment

        settings = _settings(c)
        stack, config, _ = _open(c, target, env)
        if stack.deployment.is_local:
            endpoint = deployment.local_endpoint(settings, stack.connection, config)
            status = endpoint.status()
            console.print(
                f"Endpoint {status.name} at {status.url}: {status.detail}"
                + (f" (model package {status.package_arn})" if status.package_arn else "")
            )
            if not status.running:
                raise Exit(code=3)
            return
        arn = deployment.deployed_package_arn(stack.connection, config)
        described = stack.connection.client("sagemaker").describe_endpoint(
            EndpointName=deployment.endpoint_name(config)
        )
        console.print(
            f"Endpoint {described['EndpointName']}: {described['EndpointStatus']} "
            f"(model package {arn})"
        )


@task(help={**TARGET_HELP, "yes": "aws: do not ask for confirmation"})
def endpoint_down(c, target="local", env=None, yes=False):
    """Stop the local endpoint, or delete the SageMaker endpoint and its configs."""
    with exit_on_error():
        from pipelines import deploy as deployment

        settings = _settings(c)
        stack, config, _ = _open(c, target, env)
        if stack.deployment.is_local:
            endpoint = deployment.local_endpoint(settings, stack.connection, config)
            stopped = endpoint.down()
            console.print("Endpoint stopped." if stopped else "The endpoint was not running.")
            return
        if not yes:
            _confirm(f"Delete the SageMaker endpoint {deployment.endpoint_name(config)}?")
        removed = deployment.remove_endpoints(stack.connection, config)
        console.print(
            f"Deleted {removed.endpoints} endpoint(s), {removed.endpoint_configs} endpoint "
            f"config(s) and {removed.models} model(s)."
        )


@task(
    help={
        **TARGET_HELP,
        "data": "CSV file with a header: the model's feature columns (extra columns are ignored)",
        "output": "also write every prediction to this CSV file",
        "limit": "how many rows to show",
    }
)
def predict(c, data, target="local", env=None, output=None, limit=20):
    """Send rows of a CSV file to the deployed endpoint and print the predictions."""
    with exit_on_error():
        from pipelines import deploy as deployment
        from pipelines import predict as predicting
        from pipelines.monitor import predictions_table

        settings = _settings(c)
        stack, config, _ = _open(c, target, env)
        registry = _registry(stack, config)
        if stack.deployment.is_local:
            endpoint = deployment.local_endpoint(settings, stack.connection, config)
            status = endpoint.status()
            if not status.running or not status.package_arn:
                raise MlopsError(
                    f"The local endpoint is not serving ({status.detail}): `invoke deploy` first."
                )
            package, invoke = status.package_arn, predicting.local_invoker(status.url)
        else:
            package = deployment.deployed_package_arn(stack.connection, config)
            invoke = predicting.sagemaker_invoker(
                stack.connection, deployment.endpoint_name(config)
            )
        version = registry.describe(package)
        features, target_column = registry.features(version)
        rows, actual = predicting.read_rows(Path(data), features, target_column)
        values = predicting.predict(rows, invoke)
        result = predicting.Predictions(values, actual, target_column, features)
        console.print(predictions_table(result, int(limit), version.version))
        if output:
            Path(output).write_text("prediction\n" + "".join(f"{value!r}\n" for value in values))
            console.print(f"Wrote {len(values)} predictions to {output}")
