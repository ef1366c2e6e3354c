"""tftest fixtures: plans of a temporary copy of infra/ against the emulator.

Plan tests never apply; they still need the emulator because the root reads
``aws_caller_identity`` (STS) at plan time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tftest

from pipelines.config.settings import Settings
from pipelines.core.aws import emulator_process_env
from pipelines.emulator import Emulator, EmulatorInfo
from pipelines.stack.terraform import terraform_base_env, write_local_backend_override
from tests.support import project_copy

PlanFn = Callable[..., tftest.TerraformPlanOutput]


@pytest.fixture(scope="session")
def plan_infra(
    tmp_path_factory: pytest.TempPathFactory, emulator: tuple[Emulator, EmulatorInfo]
) -> PlanFn:
    """Plan infra/ as the local environment with the given variables overriding;
    plans are cached per variable set for the session."""
    instance, info = emulator
    root = project_copy(tmp_path_factory.mktemp("plan"))
    infra_dir = root / "infra"
    write_local_backend_override(infra_dir)
    settings = Settings.load(None, root=root, environ={**os.environ, "MLOPS_STATE_DIR": str(root)})
    env = emulator_process_env(
        terraform_base_env(settings, os.environ), ca_bundle=instance.tls.ca_cert, region="us-east-1"
    )
    env["TF_DATA_DIR"] = str(root / "tfdata")
    tf = tftest.TerraformTest(str(infra_dir), env=env)
    # tftest would delete the copy's lock file and state when collected; it is a copy.
    tf.setup(cleanup_on_exit=False, init_vars={"path": str(root / "terraform.tfstate")})
    cache: dict[str, tftest.TerraformPlanOutput] = {}

    def plan(**tf_vars: Any) -> tftest.TerraformPlanOutput:
        key = repr(sorted(tf_vars.items()))
        if key not in cache:
            # Variables go on the command line: tftest puts -var-file after -var,
            # which would let a tfvars file override the value under test.
            cache[key] = tf.plan(
                output=True,
                tf_vars={
                    "environment": "local",
                    "region": "us-east-1",
                    "aws_endpoint_url": info.endpoint,
                    **tf_vars,
                },
            )
        return cache[key]

    plan.tf = tf  # type: ignore[attr-defined]
    plan.endpoint = info.endpoint  # type: ignore[attr-defined]
    return plan


def resources_by_address(plan: tftest.TerraformPlanOutput) -> dict[str, dict[str, Any]]:
    """Every planned resource's values, keyed by full address."""
    found: dict[str, dict[str, Any]] = {}

    def walk(module: dict[str, Any]) -> None:
        for resource in module.get("resources", []):
            found[resource["address"]] = resource.get("values", {})
        for child in module.get("child_modules", []):
            walk(child)

    walk(plan["planned_values"]["root_module"])
    return found


def infra_dir_of(plan: PlanFn) -> Path:
    return Path(plan.tf.tfdir)  # type: ignore[attr-defined]
