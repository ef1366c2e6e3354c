"""`invoke destroy`: take a deployment down completely, in the order AWS requires.

Running executions are stopped, endpoints removed, the pipeline deleted, the
bucket emptied and the registry's versions deleted; then Terraform destroys the
stack. Versioned objects would otherwise block the bucket's deletion, and
SageMaker refuses to delete a model package group that still holds versions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from pipelines.backends.base import Backend
from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core.aws import AwsConnection, api_error, error_code
from pipelines.core.errors import MlopsError
from pipelines.registry import Registry
from pipelines.stack.stacks import (
    Stack,
    infra_lock,
    remembered_outputs,
    remembered_outputs_file,
)
from pipelines.targets import target_for


@dataclass(frozen=True)
class DestroyResult:
    objects_deleted: int
    model_packages_deleted: int
    emulator_stopped: bool
    pipeline_deleted: bool = False
    endpoints_deleted: int = 0
    # Set when there was nothing left to destroy (the local emulator's data was gone).
    already_gone: bool = False
    state_cleared: bool = False

    def describe(self, deployment: Deployment) -> str:
        if self.already_gone:
            return "The emulator is not running, so its resources are already gone" + (
                "; local state cleared." if self.state_cleared else "."
            )
        return (
            f"Destroyed {deployment}: {self.endpoints_deleted} endpoint(s), "
            f"{self.objects_deleted} object version(s) and "
            f"{self.model_packages_deleted} model package(s) deleted first"
            + ("; emulator stopped." if self.emulator_stopped else ".")
        )


def destroy_deployment(
    settings: Settings,
    deployment: Deployment,
    *,
    confirm: Callable[[str], None],
    on_stop: Callable[[str], None] | None = None,
    on_output: Callable[[str], None] | None = None,
) -> DestroyResult:
    """`invoke destroy`: serialised with infra-up on the infrastructure lock; ``confirm``
    raises to cancel before anything is touched."""
    target = target_for(deployment)
    with infra_lock(settings, deployment):
        gone = target.already_gone(settings, deployment)
        if gone is not None:
            return DestroyResult(0, 0, False, already_gone=True, state_cleared=gone)
        confirm(f"Destroy every resource of {deployment}, including all artifacts?")
        # The emulator's state is durable: a stopped emulator is started to destroy it.
        stack = target.open_stack(settings, deployment, start=True, on_output=on_output)
        return destroy(stack, on_stop=on_stop)


def destroy(stack: Stack, on_stop: Callable[[str], None] | None = None) -> DestroyResult:
    """Empty the stack's resources, then terraform destroy.

    A running execution would upload into the bucket while it is emptied, so it is
    stopped first. Rerunning finishes a half-done destroy: when the outputs are gone
    (the root module's outputs vanish first), the names recorded at the last apply
    are used."""
    target = target_for(stack.deployment)
    target.before_destroy(stack)
    stack.terraform.init()
    outputs = stack.terraform.outputs() or remembered_outputs(stack)
    objects = packages = endpoints = 0
    pipeline_deleted = False
    if outputs:
        config = InfraConfig.from_outputs(outputs)
        stopped_runs = stop_running_executions(target.backend(stack, config), config)
        if stopped_runs and on_stop is not None:
            on_stop(
                f"Stopped {len(stopped_runs)} running execution(s) first: "
                + ", ".join(stopped_runs)
            )
        # Endpoints first: they hold models that hold the registry's versions.
        endpoints = target.remove_endpoints(stack, config)
        pipeline_deleted = delete_pipeline(stack.connection, config.pipeline_name)
        objects = empty_bucket(stack.connection, config.bucket_name)
        packages = Registry(stack.connection, config.model_package_group_name).delete_all()
    stack.terraform.destroy()
    remembered_outputs_file(stack).unlink(missing_ok=True)
    stopped = target.after_destroy(stack)
    return DestroyResult(objects, packages, stopped, pipeline_deleted, endpoints)


def stop_running_executions(
    backend: Backend, config: InfraConfig, timeout: float = 120.0
) -> list[str]:
    """Stop every unfinished execution of the pipeline and wait for it; returns their ids."""
    try:
        running = [e for e in backend.list_executions(config.pipeline_name, 100) if not e.finished]
    except MlopsError:
        return []  # no pipeline (yet): nothing runs
    for execution in running:
        backend.stop(execution.execution_id)
    for execution in running:
        backend.wait(execution.execution_id, timeout=timeout)
    return [e.execution_id for e in running]


def delete_pipeline(connection: AwsConnection, name: str) -> bool:
    """Delete the pipeline that pipeline-run upserted; False when there is none."""
    sagemaker = connection.client("sagemaker")
    try:
        sagemaker.delete_pipeline(PipelineName=name)
    except ClientError as error:
        if error_code(error) in ("ResourceNotFound", "ValidationException"):
            return False
        raise api_error(f"Deleting pipeline {name}", error) from error
    return True


def empty_bucket(connection: AwsConnection, bucket: str) -> int:
    """Delete every object version and delete marker; returns how many were deleted."""
    s3 = connection.client("s3")
    deleted = 0
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            keys = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for start in range(0, len(keys), 1000):
                batch = keys[start : start + 1000]
                response = s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise MlopsError(
                        f"Could not empty s3://{bucket}: {len(errors)} object(s) failed, e.g. "
                        f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                    )
                deleted += len(batch)
    except ClientError as error:
        if error_code(error) == "NoSuchBucket":
            return deleted
        raise api_error(f"Emptying s3://{bucket}", error) from error
    return deleted
