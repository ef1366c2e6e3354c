"""A damaged local terraform.tfstate (issue 28, item 5): named with its recovery,
never reported as a state lock held by another run."""

from __future__ import annotations

import json
import re

import pytest

from pipelines.config.deployment import Deployment
from pipelines.core.aws import AwsConnection
from pipelines.emulator import Emulator
from pipelines.stack.terraform import (
    TerraformError,
    TerraformStack,
    environment_without_terraform_noise,
    terraform_base_env,
)
from tests.support import free_port, invoke_task


def _state(serial: int) -> str:
    """A Terraform state as the local backend writes it (resources left out)."""
    return json.dumps(
        {"version": 4, "terraform_version": "1.9.0", "serial": serial, "lineage": "l"}, indent=2
    )


def _stack(settings) -> TerraformStack:
    env = terraform_base_env(settings, environment_without_terraform_noise())
    return TerraformStack(settings, Deployment.parse("local"), env, local_state=True)


def _damage(stack: TerraformStack, serial: int = 7) -> None:
    text = _state(serial)
    stack.local_state_file.parent.mkdir(parents=True, exist_ok=True)
    stack.local_state_file.write_text(text[: len(text) // 2])


def test_a_cut_state_names_the_newest_good_copy(tmp_settings):
    stack = _stack(tmp_settings)
    _damage(stack)
    backup = stack.local_state_file.with_name("terraform.tfstate.backup")
    backup.write_text(_state(5))
    stack.applied_state_copy.write_text(_state(6))
    with pytest.raises(TerraformError) as refused:
        stack.init()
    message = str(refused.value)
    assert f"The Terraform state {stack.local_state_file} is damaged (not valid JSON" in message
    assert f"`cp {stack.applied_state_copy} {stack.local_state_file}`" in message
    assert "lock" not in message


def test_terraforms_own_backup_is_named_when_it_is_the_only_good_copy(tmp_settings):
    stack = _stack(tmp_settings)
    _damage(stack)
    backup = stack.local_state_file.with_name("terraform.tfstate.backup")
    backup.write_text(_state(5))
    stack.applied_state_copy.write_text("")  # damaged too
    with pytest.raises(TerraformError, match=re.escape(f"cp {backup} {stack.local_state_file}")):
        stack.init()


def test_with_no_good_copy_the_rebuild_is_named(tmp_settings):
    stack = _stack(tmp_settings)
    _damage(stack)
    with pytest.raises(TerraformError, match=r"No good copy is kept.*invoke destroy --yes"):
        stack.init()


@pytest.mark.server
def test_terraforms_own_error_is_shown_for_a_state_it_cannot_read(tmp_settings):
    """Past the project's own check, Terraform calls an unreadable state a failure to
    take the lock; the wrapper shows Terraform's reason, not a stale-lock hint."""
    stack = _stack(tmp_settings)
    stack.init()  # real terraform init, with no state yet
    _damage(stack)
    with pytest.raises(TerraformError) as refused:
        stack.plan()  # takes the state lock first
    assert "Unsupported state file format" in str(refused.value)
    assert "force-unlock" not in str(refused.value)


@pytest.mark.server
def test_infra_up_on_a_cut_state_says_so_instead_of_blaming_a_lock(tmp_path):
    state_dir, port = tmp_path / "state", free_port()
    emulator = Emulator(state_dir / "emulator", port)
    info, _ = emulator.start()  # with data, so infra-up does not discard the state
    AwsConnection.for_emulator(info.endpoint, emulator.tls.ca_cert, "us-east-1").client(
        "s3"
    ).create_bucket(Bucket="kept")
    tfstate = state_dir / "terraform" / "local" / "terraform.tfstate"
    tfstate.parent.mkdir(parents=True)
    tfstate.with_name("terraform.tfstate.backup").write_text(_state(3))
    tfstate.write_text(_state(4)[:40])
    try:
        result = invoke_task("infra-up", state_dir=state_dir, port=port)
    finally:
        emulator.stop()
    assert result.returncode == 1
    assert f"The Terraform state {tfstate} is damaged" in result.stderr
    assert f"cp {tfstate}.backup {tfstate}" in result.stderr
    assert "force-unlock" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_successful_infra_up_keeps_an_atomic_copy_of_the_state(tmp_settings):
    stack = _stack(tmp_settings)
    stack.local_state_file.parent.mkdir(parents=True)
    stack.local_state_file.write_text(_state(9))
    stack.keep_applied_state()
    assert json.loads(stack.applied_state_copy.read_text())["serial"] == 9
    # A damaged state is never copied over the good copy.
    _damage(stack)
    stack.keep_applied_state()
    assert json.loads(stack.applied_state_copy.read_text())["serial"] == 9
