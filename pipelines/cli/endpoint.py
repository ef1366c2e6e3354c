"""Tasks for the endpoint: deploy, status, take down, predict."""

from __future__ import annotations

from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from pipelines.cli.arguments import optional_whole_number, whole_number
from pipelines.cli.common import TARGET_HELP, confirm, deployment, megabytes, settings
from pipelines.core.errors import MlopsError
from pipelines.executor.retention import prune_releases
from pipelines.registry import Registry
from pipelines.targets import open_target
from pipelines.ui.console import console, exit_on_error


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
        from pipelines import deploy as deploying
        from pipelines.registry import require_approved

        number = optional_whole_number(version, "--version")
        conf = settings(c)
        stack, config, _ = open_target(conf, deployment(target, env))
        registry = Registry(stack.connection, config.model_package_group_name)
        chosen = registry.get(number) if number is not None else registry.latest_approved()
        require_approved(chosen)
        deploy_settings = deploying.DeploySettings.from_settings(conf, strategy=strategy)
        if stack.deployment.is_local:
            endpoint = deploying.local_endpoint(conf, stack.connection, config, deploy_settings)
            status = endpoint.deploy(chosen)
            console.print(f"Version {chosen.version} serving at {status.url}/invocations")
            pruned = prune_releases(endpoint.dir, conf.keep_releases)
            if pruned.removed:
                console.print(
                    f"Removed {len(pruned.removed)} old release(s) "
                    f"({megabytes(pruned.freed_bytes)}; keeping {conf.keep_releases})."
                )
            return
        result = deploying.deploy_to_sagemaker(
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
        from pipelines import deploy as deploying

        conf = settings(c)
        stack, config, _ = open_target(conf, deployment(target, env))
        if stack.deployment.is_local:
            endpoint = deploying.local_endpoint(conf, stack.connection, config)
            status = endpoint.status()
            console.print(
                f"Endpoint {status.name} at {status.url}: {status.detail}"
                + (f" (model package {status.package_arn})" if status.package_arn else "")
            )
            if not status.running:
                raise Exit(code=3)
            return
        arn = deploying.deployed_package_arn(stack.connection, config)
        described = stack.connection.client("sagemaker").describe_endpoint(
            EndpointName=deploying.endpoint_name(config)
        )
        console.print(
            f"Endpoint {described['EndpointName']}: {described['EndpointStatus']} "
            f"(model package {arn})"
        )


@task(help={**TARGET_HELP, "yes": "aws: do not ask for confirmation"})
def endpoint_down(c, target="local", env=None, yes=False):
    """Stop the local endpoint, or delete the SageMaker endpoint and its configs."""
    with exit_on_error():
        from pipelines import deploy as deploying

        conf = settings(c)
        stack, config, _ = open_target(conf, deployment(target, env))
        if stack.deployment.is_local:
            endpoint = deploying.local_endpoint(conf, stack.connection, config)
            stopped = endpoint.down()
            console.print("Endpoint stopped." if stopped else "The endpoint was not running.")
            return
        if not yes:
            confirm(f"Delete the SageMaker endpoint {deploying.endpoint_name(config)}?")
        removed = deploying.remove_endpoints(stack.connection, config)
        console.print(
            f"Deleted {removed.endpoints} endpoint(s), {removed.endpoint_configs} endpoint "
            f"config(s) and {removed.models} model(s)."
        )


@task(
    help={
        **TARGET_HELP,
        "data": "CSV file with a header: the model's feature columns (extra columns are ignored)",
        "output": "also write every prediction to this CSV file",
        "limit": "how many rows to show (default 20)",
    }
)
def predict(c, data, target="local", env=None, output=None, limit=None):
    """Send rows of a CSV file to the deployed endpoint and print the predictions."""
    with exit_on_error():
        from pipelines import deploy as deploying
        from pipelines import predict as predicting
        from pipelines.ui.views import predictions_table

        shown = whole_number(20 if limit is None else limit, "--limit")
        conf = settings(c)
        stack, config, _ = open_target(conf, deployment(target, env))
        registry = Registry(stack.connection, config.model_package_group_name)
        if stack.deployment.is_local:
            endpoint = deploying.local_endpoint(conf, stack.connection, config)
            status = endpoint.status()
            if not status.running or not status.package_arn:
                raise MlopsError(
                    f"The local endpoint is not serving ({status.detail}): `invoke deploy` first."
                )
            package, invoke = status.package_arn, predicting.local_invoker(status.url)
        else:
            package = deploying.deployed_package_arn(stack.connection, config)
            invoke = predicting.sagemaker_invoker(stack.connection, deploying.endpoint_name(config))
        version = registry.describe(package)
        features, target_column = registry.features(version)
        rows, actual = predicting.read_rows(Path(data), features, target_column)
        values = predicting.predict(rows, invoke)
        result = predicting.Predictions(values, actual, target_column, features)
        console.print(predictions_table(result, shown, version.version))
        if output:
            Path(output).write_text("prediction\n" + "".join(f"{value!r}\n" for value in values))
            console.print(f"Wrote {len(values)} predictions to {output}")
