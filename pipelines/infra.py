"""Infrastructure operations behind the invoke tasks: up, outputs, plan review, destroy.

Each operation takes a :class:`Stack` (the deployment, its Terraform wrapper and
its AWS connection) built by :func:`open_stack`, the only place that decides what
differs between the local emulator and a real account.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipelines.emulator import Emulator
from pipelines.errors import MlopsError
from pipelines.infra_config import InfraConfig
from pipelines.locks import exclusive
from pipelines.plan_review import (
    CheckovSummary,
    PlanSummary,
    render_markdown,
    summarize_checkov,
    summarize_plan,
)
from pipelines.settings import PROJECT_ROOT, Settings
from pipelines.targets import AwsConnection, Deployment, emulator_process_env
from pipelines.terraform import (
    TerraformStack,
    environment_without_terraform_noise,
    terraform_base_env,
)

_TFVARS_REGION = re.compile(r'^\s*region\s*=\s*"([a-z0-9-]+)"', re.MULTILINE)


@dataclass
class Stack:
    settings: Settings
    deployment: Deployment
    terraform: TerraformStack
    connection: AwsConnection
    emulator: Emulator | None = None


@dataclass(frozen=True)
class UpResult:
    changed: bool
    outputs: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def timing(self) -> str:
        """``"12.3 s (init 1.2 s, plan 5.0 s, apply 6.1 s)"``"""
        parts = ", ".join(f"{name} {value:.1f} s" for name, value in self.seconds.items())
        return f"{sum(self.seconds.values()):.1f} s ({parts})"


def infra_lock(
    settings: Settings, deployment: Deployment
) -> contextlib.AbstractContextManager[None]:
    """One infra-up / destroy at a time per deployment, across processes: two cold
    ``pipeline-run``s would otherwise both apply, and one would hit Terraform's state lock."""

    def waiting() -> None:
        print(f"Waiting for another task that is changing {deployment} ...", file=sys.stderr)

    return exclusive(
        settings.state_dir / "locks" / f"infra-{deployment.slug}.lock",
        on_wait=waiting,
        what=f"the infrastructure lock of {deployment}",
    )


def emulator_for(settings: Settings) -> Emulator:
    return Emulator(settings.emulator_dir, settings.emulator_port)


def tfvars_region(settings: Settings, deployment: Deployment) -> str:
    path = settings.infra_dir / "envs" / f"{deployment.env}.tfvars"
    try:
        match = _TFVARS_REGION.search(path.read_text())
    except FileNotFoundError:
        raise MlopsError(
            f"No variables file for environment {deployment.env!r}: expected {path}."
        ) from None
    if match is None:
        raise MlopsError(f'{path} does not set region = "...".')
    return match.group(1)


def open_stack(
    settings: Settings,
    deployment: Deployment,
    *,
    start_emulator: bool = False,
    on_output: Callable[[str], None] | None = None,
) -> Stack:
    """Resolve how to reach the deployment; for AWS, verify credentials first.

    Nothing is created or changed here except, when asked, starting the emulator.
    """
    region = tfvars_region(settings, deployment)
    base_env = terraform_base_env(settings, environment_without_terraform_noise())
    if deployment.is_local:
        emulator = emulator_for(settings)
        fresh = False
        if start_emulator:
            info, fresh = emulator.start()
        else:
            info = emulator.require_running()
        connection = AwsConnection.for_emulator(info.endpoint, emulator.tls.ca_cert, region)
        env = emulator_process_env(base_env, ca_bundle=emulator.tls.ca_cert, region=region)
        terraform = TerraformStack(
            settings,
            deployment,
            env,
            variables={"aws_endpoint_url": info.endpoint},
            on_output=on_output,
        )
        if fresh and not info.restored:
            # A new emulator without durable state (first start, or after destroy):
            # whatever the local Terraform state lists does not exist in it.
            terraform.discard_local_state()
        return Stack(settings, deployment, terraform, connection, emulator)

    connection = AwsConnection.for_aws(region=region)
    terraform = TerraformStack(settings, deployment, base_env, on_output=on_output)
    return Stack(settings, deployment, terraform, connection)


def infra_up(stack: Stack) -> UpResult:
    """init, plan and apply only when the plan has changes; idempotent."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    stack.terraform.init()
    seconds["init"] = time.perf_counter() - started
    mark = time.perf_counter()
    plan = stack.terraform.plan()
    seconds["plan"] = time.perf_counter() - mark
    if plan.has_changes:
        mark = time.perf_counter()
        stack.terraform.apply(plan.plan_file)
        seconds["apply"] = time.perf_counter() - mark
    plan.plan_file.unlink(missing_ok=True)
    outputs = stack.terraform.outputs()
    remember_outputs(stack, outputs)
    return UpResult(changed=plan.has_changes, outputs=outputs, seconds=seconds)


def read_infra_config(stack: Stack) -> InfraConfig:
    stack.terraform.init()
    return InfraConfig.from_outputs(stack.terraform.outputs())


def read_infra_config_from_state(settings: Settings, deployment: Deployment) -> InfraConfig:
    """The outputs recorded in the deployment's state, without reaching the emulator
    or AWS (an S3 backend still needs credentials to read the state)."""
    env = terraform_base_env(settings, environment_without_terraform_noise())
    if deployment.is_local:
        env = emulator_process_env(
            env,
            ca_bundle=emulator_for(settings).tls.ca_cert,
            region=tfvars_region(settings, deployment),
        )
    terraform = TerraformStack(settings, deployment, env)
    terraform.init()
    return InfraConfig.from_outputs(terraform.outputs())


# --- plan review ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanReview:
    directory: Path
    summary: PlanSummary
    checkov: CheckovSummary

    @property
    def has_changes(self) -> bool:
        return self.summary.has_changes


def review_plan(stack: Stack, directory: Path | None = None) -> PlanReview:
    """Write tfplan, plan.json, plan.txt, plan.md and checkov.json to a review folder."""
    directory = directory or stack.settings.state_dir / "review" / stack.deployment.slug
    directory.mkdir(parents=True, exist_ok=True)
    stack.terraform.init()
    plan = stack.terraform.plan(directory / "tfplan")
    plan_json = stack.terraform.show_json(plan.plan_file)
    (directory / "plan.json").write_text(json.dumps(plan_json, indent=2, sort_keys=True) + "\n")
    (directory / "plan.txt").write_text(stack.terraform.show_text(plan.plan_file))
    checkov = run_checkov_on_plan(
        directory / "plan.json", directory / "checkov.json", stack.settings.infra_dir
    )
    summary = summarize_plan(plan_json)
    markdown = render_markdown(
        summary, title=f"Terraform plan: {stack.deployment}", checkov=checkov
    )
    (directory / "plan.md").write_text(markdown)
    return PlanReview(directory=directory, summary=summary, checkov=checkov)


CHECKOV_PROJECT = PROJECT_ROOT / "tools" / "checkov"


def checkov_command(project: Path = CHECKOV_PROJECT) -> list[str] | None:
    """The command that runs checkov from its own locked tool environment.

    checkov pins boto3 exactly, so it cannot share the project's environment: uv
    builds `tools/checkov/.venv` from `tools/checkov/uv.lock` on first use (a few
    seconds from a warm cache) and reuses it afterwards."""
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - uv is a project dependency
        return None
    return [find_uv_bin(), "run", "--project", str(project), "--locked", "--quiet", "checkov"]


def run_checkov_on_plan(plan_json: Path, report: Path, code_dir: Path) -> CheckovSummary:
    """checkov on the plan, honouring the justified inline skips in the code."""
    command = checkov_command()
    if command is None:
        return CheckovSummary(0, 0, 0, error="uv is not installed (uv sync --locked)")
    result = subprocess.run(
        [
            *command,
            "--file",
            str(plan_json),
            "--framework",
            "terraform_plan",
            "--repo-root-for-plan-enrichment",
            str(code_dir),
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        return CheckovSummary(
            0, 0, 0, error=f"checkov exited {result.returncode}: {result.stderr.strip()[-500:]}"
        )
    report.write_text(json.dumps(data, indent=2) + "\n")
    return summarize_checkov(data)


# --- destroy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DestroyResult:
    objects_deleted: int
    model_packages_deleted: int
    emulator_stopped: bool
    pipeline_deleted: bool = False
    endpoints_deleted: int = 0


def destroy(stack: Stack, on_stop: Callable[[str], None] | None = None) -> DestroyResult:
    """Stop running executions, delete what pipelines put in the stack's resources,
    then terraform destroy.

    Versioned objects would otherwise block the bucket's deletion, and SageMaker
    refuses to delete a model package group that still holds versions. A running
    execution would upload into the bucket while it is emptied, so it is stopped
    first. Rerunning finishes a half-done destroy: when the outputs are gone (the
    root module's outputs vanish first), the names recorded at the last apply are used.
    """
    stack.terraform.init()
    outputs = stack.terraform.outputs() or _remembered_outputs(stack)
    objects = packages = 0
    pipeline_deleted = False
    endpoints = 0
    if outputs:
        config = InfraConfig.from_outputs(outputs)
        stopped_runs = stop_running_executions(stack, config)
        if stopped_runs and on_stop is not None:
            on_stop(
                f"Stopped {len(stopped_runs)} running execution(s) first: "
                + ", ".join(stopped_runs)
            )
        endpoints = remove_deployments(stack, config)
        pipeline_deleted = delete_pipeline(stack.connection, config.pipeline_name)
        objects = empty_bucket(stack.connection, config.bucket_name)
        packages = delete_model_packages(stack.connection, config.model_package_group_name)
    stack.terraform.destroy()
    _remembered_outputs_file(stack).unlink(missing_ok=True)
    stopped = False
    if stack.emulator is not None:
        stopped = stack.emulator.stop()
        # Everything in it was just deleted; its durable copy must not come back.
        stack.emulator.discard_data()
    if stack.deployment.is_local:
        remove_local_records(stack.settings)
    return DestroyResult(objects, packages, stopped, pipeline_deleted, endpoints)


def stop_running_executions(stack: Stack, config: InfraConfig, timeout: float = 120.0) -> list[str]:
    """Stop every unfinished execution of the pipeline and wait for it; returns their ids."""
    from pipelines.run import backend_for

    backend = backend_for(stack, config)
    try:
        running = [e for e in backend.list_executions(config.pipeline_name, 100) if not e.finished]
    except MlopsError:
        return []  # no pipeline (yet): nothing runs
    for execution in running:
        backend.stop(execution.execution_id)
    for execution in running:
        backend.wait(execution.execution_id, timeout=timeout)
    return [e.execution_id for e in running]


def remember_outputs(stack: Stack, outputs: dict[str, Any]) -> None:
    """Keep the names of what was applied, for a destroy that outlives the outputs."""
    if outputs:
        path = _remembered_outputs_file(stack)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(outputs, sort_keys=True))


def _remembered_outputs_file(stack: Stack) -> Path:
    return stack.terraform.work_dir / "applied_outputs.json"


def _remembered_outputs(stack: Stack) -> dict[str, Any]:
    try:
        return json.loads(_remembered_outputs_file(stack).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def remove_deployments(stack: Stack, config: InfraConfig) -> int:
    """Endpoints first: they hold models that hold the registry's versions. Returns how
    many endpoints were taken down (locally: the endpoint's processes and its records)."""
    from pipelines.serving import deploy

    removed = deploy.remove_endpoints(stack.connection, config).endpoints
    if stack.deployment.is_local:
        # The environment's endpoint and each stage's (their own names and ports).
        stopped = sum(
            deploy.local_endpoint(stack.settings, stack.connection, config, stage=stage).down()
            for stage in (None, *deploy.STAGES)
        )
        return max(removed, stopped)
    return removed


def delete_pipeline(connection: AwsConnection, name: str) -> bool:
    """Delete the pipeline that pipeline-run upserted; False when there is none."""
    sagemaker = connection.client("sagemaker")
    try:
        sagemaker.delete_pipeline(PipelineName=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "ResourceNotFound",
            "ValidationException",
        ):
            return False
        raise MlopsError(f"Could not delete pipeline {name}: {error}") from error
    return True


def remove_local_records(settings: Settings) -> None:
    """The executor's records, sandboxes and endpoint releases describe resources
    that are gone: stop any endpoint still serving, then remove them all."""
    from pipelines.serving.local_endpoint import stop_local_endpoints

    state = settings.state_dir
    stop_local_endpoints(state)
    for name in ("executor.db", "executor.db-wal", "executor.db-shm"):
        (state / name).unlink(missing_ok=True)
    shutil.rmtree(state / "executions", ignore_errors=True)
    shutil.rmtree(state / "endpoints", ignore_errors=True)


def forget_local_stack(settings: Settings, deployment: Deployment) -> bool:
    """With no emulator running, the local resources are already gone: drop the state
    and stop a local endpoint that outlived its emulator."""
    from pipelines.serving.local_endpoint import stop_local_endpoints

    stop_local_endpoints(settings.state_dir)
    remove_local_records(settings)
    stack_dir = settings.state_dir / "terraform" / deployment.slug
    state = stack_dir / "terraform.tfstate"
    if state.is_file():
        state.replace(state.with_suffix(".tfstate.stale"))
        return True
    return False


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
        if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return deleted
        raise MlopsError(f"Could not empty s3://{bucket}: {error}") from error
    return deleted


def delete_model_packages(connection: AwsConnection, group: str) -> int:
    sagemaker = connection.client("sagemaker")
    arns: list[str] = []
    try:
        for page in sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group
        ):
            arns += [p["ModelPackageArn"] for p in page.get("ModelPackageSummaryList", [])]
        for arn in arns:
            sagemaker.delete_model_package(ModelPackageName=arn)
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if "does not exist" in message:
            return 0
        raise MlopsError(f"Could not delete the model packages of {group}: {error}") from error
    return len(arns)
