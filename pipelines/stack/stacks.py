"""A deployment's Terraform stack and how to reach what it created: open, apply, read.

Two openers, one per kind of place a stack lives (the local emulator, an AWS
account); the target map (``pipelines.targets``) decides which one a deployment uses.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core.aws import AwsConnection, emulator_process_env
from pipelines.core.errors import MlopsError
from pipelines.core.files import write_atomically
from pipelines.core.locks import exclusive
from pipelines.emulator import Emulator
from pipelines.stack.terraform import (
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


def _variables(settings: Settings) -> dict[str, Any]:
    # invoke.yaml is the one source of the resource names' prefix and of the pipelines
    # that get names of their own (the first keeps the environment's). The values reach
    # Terraform in a JSON variables file, so the list stays a list.
    return {
        "name_prefix": settings.name_prefix,
        "pipelines": settings.pipelines.terraform_pipelines(),
    }


def open_emulator_stack(
    settings: Settings,
    deployment: Deployment,
    *,
    start_emulator: bool = False,
    on_output: Callable[[str], None] | None = None,
) -> Stack:
    """A stack on the local emulator, with Terraform's state in a local file.

    Nothing is created or changed here except, when asked, starting the emulator."""
    region = tfvars_region(settings, deployment)
    base_env = terraform_base_env(settings, environment_without_terraform_noise())
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
        variables={**_variables(settings), "aws_endpoint_url": info.endpoint},
        on_output=on_output,
        local_state=True,
    )
    if fresh and not info.restored:
        # A new emulator without durable state (first start, or after destroy):
        # whatever the local Terraform state lists does not exist in it.
        terraform.discard_local_state()
    return Stack(settings, deployment, terraform, connection, emulator)


def open_account_stack(
    settings: Settings,
    deployment: Deployment,
    *,
    on_output: Callable[[str], None] | None = None,
) -> Stack:
    """A stack in an AWS account, with Terraform's state in S3; credentials are
    verified first, so nothing starts with an identity that cannot finish."""
    region = tfvars_region(settings, deployment)
    base_env = terraform_base_env(settings, environment_without_terraform_noise())
    connection = AwsConnection.for_aws(region=region)
    terraform = TerraformStack(
        settings, deployment, base_env, variables=_variables(settings), on_output=on_output
    )
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
    stack.terraform.keep_applied_state()
    return UpResult(changed=plan.has_changes, outputs=outputs, seconds=seconds)


def pipeline_view(stack: Stack, outputs: dict[str, Any]) -> InfraConfig:
    """The outputs as the chosen pipeline (``--pipeline``, else mlops.default_pipeline)
    sees them: its model package group, pipeline and endpoints."""
    return chosen_view(stack.settings, infra_config(stack.settings, outputs))


def chosen_view(settings: Settings, config: InfraConfig) -> InfraConfig:
    """The first pipeline of invoke.yaml holds the environment's own names (the top-level
    outputs), whatever key the applied state gave it; any other, its own."""
    catalog = settings.pipelines
    return config if catalog.default == catalog.keys[0] else config.for_pipeline(catalog.default)


def read_infra_config(stack: Stack) -> InfraConfig:
    stack.terraform.init()
    return pipeline_view(stack, stack.terraform.outputs())


def infra_config(settings: Settings, outputs: dict[str, Any]) -> InfraConfig:
    """The typed outputs (every pipeline's); a state applied before per-pipeline outputs
    is read as the repository's first pipeline's."""
    return InfraConfig.from_outputs(outputs, first_pipeline=settings.pipelines.keys[0])


def read_outputs_from_state(
    settings: Settings, deployment: Deployment, *, local_state: bool
) -> InfraConfig:
    """The outputs recorded in the deployment's state, without reaching the emulator
    or AWS (an S3 backend still needs credentials to read the state)."""
    env = terraform_base_env(settings, environment_without_terraform_noise())
    if local_state:
        # Terraform must not pick up a real identity while it reads local state.
        env = emulator_process_env(
            env,
            ca_bundle=emulator_for(settings).tls.ca_cert,
            region=tfvars_region(settings, deployment),
        )
    terraform = TerraformStack(settings, deployment, env, local_state=local_state)
    terraform.init()
    return chosen_view(settings, infra_config(settings, terraform.outputs()))


def remember_outputs(stack: Stack, outputs: dict[str, Any]) -> None:
    """Keep the names of what was applied, for a destroy that outlives the outputs."""
    if outputs:
        write_atomically(
            remembered_outputs_file(stack), json.dumps(outputs, sort_keys=True).encode()
        )


def remembered_outputs_file(stack: Stack) -> Path:
    return stack.terraform.work_dir / "applied_outputs.json"


def remembered_outputs(stack: Stack) -> dict[str, Any]:
    try:
        return json.loads(remembered_outputs_file(stack).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
