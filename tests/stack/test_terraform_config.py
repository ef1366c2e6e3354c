"""Terraform configuration the project writes: mirror CLI config, backends, lock file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipelines.config.deployment import Deployment
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.core.errors import MlopsError
from pipelines.stack.terraform import (
    BACKEND_OVERRIDE,
    TerraformStack,
    cli_config_text,
    find_provider_mirror,
    locked_aws_provider_version,
    terraform_base_env,
    write_local_backend_override,
)


def fake_mirror(root: Path, version: str = "5.100.0", platform: str = "linux_amd64") -> Path:
    (root / "registry.terraform.io" / "hashicorp" / "aws" / version / platform).mkdir(parents=True)
    return root


def test_lock_file_pins_the_aws_provider_with_a_hash():
    assert locked_aws_provider_version(PROJECT_ROOT / "infra") == "5.100.0"
    lock = (PROJECT_ROOT / "infra" / ".terraform.lock.hcl").read_text()
    assert '"h1:' in lock


def test_cli_config_installs_mirrored_providers_from_disk(tmp_path):
    mirror = fake_mirror(tmp_path / "mirror")
    text = cli_config_text(mirror)
    assert f'path    = "{mirror}"' in text
    assert 'include = ["registry.terraform.io/hashicorp/aws"]' in text
    assert 'exclude = ["registry.terraform.io/hashicorp/aws"]' in text


def test_configured_mirror_overrides_the_environment_config_file(tmp_path):
    mirror = fake_mirror(tmp_path / "mirror")
    settings = Settings.load(
        {"terraform": {"provider_mirror": str(mirror)}},
        root=tmp_path,
        environ={},
    )
    env = terraform_base_env(settings, {"TF_CLI_CONFIG_FILE": "/nonexistent/.terraformrc"})
    config = Path(env["TF_CLI_CONFIG_FILE"])
    assert config.parent == tmp_path / ".mlops" / "terraform"
    assert str(mirror) in config.read_text()
    assert env["TF_INPUT"] == "0"


def test_a_configured_mirror_that_is_not_one_is_rejected(tmp_path):
    settings = Settings.load(
        None, root=tmp_path, environ={"MLOPS_TF_PROVIDER_MIRROR": str(tmp_path)}
    )
    with pytest.raises(MlopsError, match=r"has no registry\.terraform\.io/"):
        find_provider_mirror(settings)


def test_local_backend_override_is_the_same_for_every_state_dir(tmp_path):
    override = write_local_backend_override(tmp_path)
    assert override.name == BACKEND_OVERRIDE
    # The state path is passed at init, so checkouts and tests never rewrite this file.
    assert json.loads(override.read_text()) == {"terraform": {"backend": {"local": {}}}}


def test_local_state_lives_in_the_state_dir(tmp_settings):
    stack = TerraformStack(tmp_settings, Deployment.parse("local"), env={}, local_state=True)
    assert stack.configure_backend() == [
        f"path={tmp_settings.state_dir}/terraform/local/terraform.tfstate"
    ]


def test_aws_target_needs_a_state_bucket_and_drops_the_local_override(tmp_settings):
    write_local_backend_override(tmp_settings.infra_dir)
    stack = TerraformStack(tmp_settings, Deployment.parse("aws", "dev"), env={})
    with pytest.raises(MlopsError, match="MLOPS_TF_STATE_BUCKET"):
        stack.init()
    assert not (tmp_settings.infra_dir / BACKEND_OVERRIDE).exists()


def test_unknown_environment_has_no_variables_file(tmp_settings):
    stack = TerraformStack(tmp_settings, Deployment.parse("aws", "qa"), env={})
    with pytest.raises(MlopsError, match=r"qa\.tfvars"):
        stack.init()


def test_gitignore_keeps_generated_files_out_of_the_repository():
    generated = [
        "infra/backend_override.tf.json",
        ".mlops/terraform/local/terraform.tfstate",
        "infra/.terraform/providers",
    ]
    result = subprocess.run(
        ["git", "check-ignore", *generated], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.stdout.split() == generated


def test_local_outputs_are_read_once_per_state_file_version(tmp_path, monkeypatch):
    """The console asks for outputs at every page: a local state file that did not change
    is not asked again; a changed one, and remote state, always are."""
    settings = Settings.load(None, environ={"MLOPS_STATE_DIR": str(tmp_path / "state")})
    calls: list[str] = []

    def output(*args, **kwargs):
        calls.append(args[0])
        return 0, json.dumps({"bucket_name": {"value": f"bucket-{len(calls)}"}}), ""

    local = TerraformStack(settings, Deployment.parse("local"), env={}, local_state=True)
    monkeypatch.setattr(local._tf, "cmd", output)
    local.local_state_file.parent.mkdir(parents=True)
    local.local_state_file.write_text('{"serial": 1}')
    assert local.outputs() == {"bucket_name": "bucket-1"}
    assert local.outputs() == {"bucket_name": "bucket-1"}
    assert calls == ["output"]
    local.local_state_file.write_text('{"serial": 2, "changed": true}')
    assert local.outputs() == {"bucket_name": "bucket-2"}

    remote = TerraformStack(settings, Deployment.parse("aws", "dev"), env={})
    monkeypatch.setattr(remote._tf, "cmd", output)
    remote.outputs()
    remote.outputs()
    assert len(calls) == 4
