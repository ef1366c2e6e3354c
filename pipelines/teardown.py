"""`invoke destroy`: take a deployment down completely, in the order AWS requires.

Running executions are stopped, endpoints removed, the pipelines deleted, the
bucket emptied and the registries' versions deleted, for every pipeline: those
Terraform lists and, locally, those run without being listed (``--pipeline
FILE.py:FUNC``), whose model package groups the local stack created itself. Then
Terraform destroys the stack. Versioned objects would otherwise block the bucket's deletion, and
SageMaker refuses to delete a model package group that still holds versions.

What differs per target is one :class:`Teardown` each (the target map hands it out):
locally the agent, the endpoints' servers, the schedules, the emulator and the
executor's records go too; on AWS, the monitoring schedules before their endpoint.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from pipelines.automation.agent import AgentProcess
from pipelines.backends.base import Backend
from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core.aws import AwsConnection, api_error, error_code
from pipelines.core.errors import MlopsError
from pipelines.monitoring import sagemaker_schedule
from pipelines.monitoring.local_schedule import stop_schedules
from pipelines.registry import Registry
from pipelines.serving import deploy
from pipelines.serving.local_endpoint import stop_local_endpoints
from pipelines.stack.stacks import (
    Stack,
    emulator_for,
    infra_config,
    remembered_outputs,
    remembered_outputs_file,
)

Notify = Callable[[str], None]


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


class Teardown:
    """The steps every target shares; subclasses add what their target runs."""

    def already_gone(self, settings: Settings, deployment: Deployment) -> bool | None:
        """None when there is something to destroy; otherwise whether stale local
        state was cleared."""
        return None

    def before(self, stack: Stack) -> None:
        """Before anything is deleted."""

    def remove_endpoints(self, stack: Stack, config: InfraConfig) -> int:
        return deploy.remove_endpoints(stack.connection, config).endpoints

    def pipelines(self, stack: Stack, config: InfraConfig) -> list[InfraConfig]:
        """Every pipeline whose resources go: those Terraform lists, the first first."""
        return [config.for_pipeline(key) for key in listed_keys(config)]

    def after(self, stack: Stack) -> bool:
        """After terraform destroy; True when a server was stopped."""
        return False

    def destroy(
        self,
        stack: Stack,
        backend: Callable[[Stack, InfraConfig], Backend],
        on_stop: Notify | None = None,
    ) -> DestroyResult:
        """Empty the stack's resources, then terraform destroy.

        A running execution would upload into the bucket while it is emptied, so it is
        stopped first. Rerunning finishes a half-done destroy: when the outputs are gone
        (the root module's outputs vanish first), the names recorded at the last apply
        are used."""
        self.before(stack)
        stack.terraform.init()
        outputs = stack.terraform.outputs() or remembered_outputs(stack)
        objects = packages = endpoints = 0
        pipeline_deleted = False
        if outputs:
            config = infra_config(stack.settings, outputs)
            pipelines = self.pipelines(stack, config)
            runner = backend(stack, config)
            stopped_runs = [
                run for pipeline in pipelines for run in stop_running_executions(runner, pipeline)
            ]
            if stopped_runs and on_stop is not None:
                on_stop(
                    f"Stopped {len(stopped_runs)} running execution(s) first: "
                    + ", ".join(stopped_runs)
                )
            # Endpoints first: they hold models that hold the registry's versions.
            endpoints = sum(self.remove_endpoints(stack, pipeline) for pipeline in pipelines)
            deleted = [delete_pipeline(stack.connection, p.pipeline_name) for p in pipelines]
            pipeline_deleted = any(deleted)
            objects = empty_bucket(stack.connection, config.bucket_name)
            for pipeline in pipelines:
                registry = Registry(stack.connection, pipeline.model_package_group_name)
                packages += registry.delete_all()
                if pipeline.derived:  # not Terraform's: nothing else deletes the group
                    delete_model_package_group(stack.connection, pipeline.model_package_group_name)
        stack.terraform.destroy()
        remembered_outputs_file(stack).unlink(missing_ok=True)
        stopped = self.after(stack)
        return DestroyResult(objects, packages, stopped, pipeline_deleted, endpoints)


class LocalTeardown(Teardown):
    def already_gone(self, settings: Settings, deployment: Deployment) -> bool | None:
        emulator = emulator_for(settings)
        if emulator.status().running or emulator.has_data():
            return None
        # With no emulator and no durable data, the resources are already gone.
        return forget_local_stack(settings, deployment)

    def before(self, stack: Stack) -> None:
        # The automation agent would act on the events the teardown emits.
        AgentProcess(stack.settings).stop()

    def pipelines(self, stack: Stack, config: InfraConfig) -> list[InfraConfig]:
        listed = super().pipelines(stack, config)
        derived = unlisted_keys(stack.connection, config)
        return listed + [config.for_pipeline(key) for key in derived]

    def remove_endpoints(self, stack: Stack, config: InfraConfig) -> int:
        removed = super().remove_endpoints(stack, config)
        # The environment's endpoint and each stage's (their own names and ports).
        stopped = sum(
            deploy.local_endpoint(stack.settings, stack.connection, config, stage=stage).down()
            for stage in (None, *deploy.STAGES)
        )
        return max(removed, stopped)

    def after(self, stack: Stack) -> bool:
        stopped = False
        if stack.emulator is not None:
            stopped = stack.emulator.stop()
            # Everything in it was just deleted; its durable copy must not come back.
            stack.emulator.discard_data()
        remove_local_records(stack.settings)
        return stopped


class AwsTeardown(Teardown):
    def remove_endpoints(self, stack: Stack, config: InfraConfig) -> int:
        # SageMaker refuses to delete an endpoint that has monitoring schedules.
        sagemaker_schedule.remove_schedules(stack.connection.sagemaker(), config)
        return super().remove_endpoints(stack, config)


def remove_local_records(settings: Settings) -> None:
    """The executor's records, sandboxes and endpoint releases describe resources
    that are gone: stop any endpoint still serving, then remove them all."""
    state = settings.state_dir
    stop_schedules(state)  # no monitoring schedule outlives its endpoint
    stop_local_endpoints(state)
    for name in ("executor.db", "executor.db-wal", "executor.db-shm"):
        (state / name).unlink(missing_ok=True)
    shutil.rmtree(state / "executions", ignore_errors=True)
    shutil.rmtree(state / "endpoints", ignore_errors=True)
    shutil.rmtree(state / "monitoring", ignore_errors=True)


def forget_local_stack(settings: Settings, deployment: Deployment) -> bool:
    """With no emulator running, the local resources are already gone: drop the state
    and stop a local endpoint that outlived its emulator."""
    remove_local_records(settings)
    state = settings.state_dir / "terraform" / deployment.slug / "terraform.tfstate"
    if state.is_file():
        state.replace(state.with_suffix(".tfstate.stale"))
        return True
    return False


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


def listed_keys(config: InfraConfig) -> list[str | None]:
    """The keys of the pipelines Terraform's outputs list, the first first (None: the
    config's own pipeline, for a config that lists none)."""
    first = config.pipeline_key
    return [first, *sorted(k for k in config.pipelines or {} if k != first)]


def unlisted_keys(connection: AwsConnection, config: InfraConfig) -> list[str]:
    """Keys of pipelines the stack holds but Terraform does not list: run by source
    (``--pipeline FILE.py:FUNC``), they got the names a listed pipeline after the first
    would, ``<name>-<key>-models`` and ``<name>-<key>-pipeline``, from the local stack."""
    if not config.name:
        return []
    pattern = re.compile(rf"^{re.escape(config.name)}-([a-z][a-z0-9-]*[a-z0-9])-(models|pipeline)$")
    sagemaker = connection.sagemaker()
    names: list[str] = []
    try:
        for page in sagemaker.get_paginator("list_model_package_groups").paginate(
            NameContains=f"{config.name}-"
        ):
            names += [g["ModelPackageGroupName"] for g in page["ModelPackageGroupSummaryList"]]
        for page in sagemaker.get_paginator("list_pipelines").paginate(
            PipelineNamePrefix=f"{config.name}-"
        ):
            names += [p["PipelineName"] for p in page["PipelineSummaries"]]
    except ClientError as error:
        raise api_error("Listing the stack's model package groups and pipelines", error) from error
    listed = set(config.pipelines or {})
    keys = {m.group(1) for m in map(pattern.match, names) if m}
    return sorted(keys - listed)


def delete_model_package_group(connection: AwsConnection, name: str) -> bool:
    """Delete a group Terraform does not manage (emptied first); False when gone."""
    try:
        connection.sagemaker().delete_model_package_group(ModelPackageGroupName=name)
    except ClientError as error:
        if error_code(error) in ("ResourceNotFound", "ValidationException"):
            return False
        raise api_error(f"Deleting model package group {name}", error) from error
    return True


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
