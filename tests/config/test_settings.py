"""Settings, deployments, credentials handling and the typed infrastructure config."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core.aws import (
    emulator_process_env,
    ensure_emulator_credentials,
    verify_credentials,
)
from pipelines.core.errors import MlopsError

OUTPUTS = {
    "automation_queue_url": None,
    "automation_rule_names": {"approval_deploy": "mlops-local-approval-deploy"},
    "account_id": "123456789012",
    "bucket_arn": "arn:aws:s3:::b",
    "bucket_name": "b",
    "code_repository_clone_url_http": None,
    "code_repository_clone_url_ssh": None,
    "code_repository_name": None,
    "endpoint_names": {
        "default": "mlops-local-endpoint",
        "staging": "mlops-local-staging-endpoint",
        "prod": "mlops-local-prod-endpoint",
    },
    "environment": "local",
    "execution_role_arn": "arn:aws:iam::123456789012:role/r",
    "kms_key_arn": None,
    "model_package_group_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/g",
    "model_package_group_name": "g",
    "monitoring_schedule_names": {
        "default": "mlops-local-endpoint-data-quality",
        "staging": "mlops-local-staging-endpoint-data-quality",
        "prod": "mlops-local-prod-endpoint-data-quality",
    },
    "name": "mlops-local",
    "name_prefix": "mlops",
    "pipeline_name": "mlops-local-pipeline",
    "region": "us-east-1",
}


def test_settings_precedence_is_environment_then_config_then_default(tmp_path):
    config = {"emulator": {"port": 5001}, "state_dir": "state", "name_prefix": "acme"}
    settings = Settings.load(config, root=tmp_path, environ={})
    assert settings.emulator_port == 5001
    assert settings.state_dir == tmp_path / "state"
    assert settings.name_prefix == "acme"
    overridden = Settings.load(config, root=tmp_path, environ={"MLOPS_EMULATOR_PORT": "5002"})
    assert overridden.emulator_port == 5002
    assert Settings.load(None, root=tmp_path, environ={}).emulator_port == 4569


@pytest.mark.parametrize("port", ["abc", "80", "70000"])
def test_bad_emulator_port_is_rejected_with_its_value(tmp_path, port):
    with pytest.raises(MlopsError, match=port):
        Settings.load(None, root=tmp_path, environ={"MLOPS_EMULATOR_PORT": port})


def test_deployment_defaults_and_validation():
    assert Deployment.parse() == Deployment("local", "local")
    assert Deployment.parse("aws") == Deployment("aws", "dev")
    assert Deployment.parse("AWS", "prod").slug == "aws-prod"
    with pytest.raises(MlopsError, match="Unknown target 'gcp'"):
        Deployment.parse("gcp")
    with pytest.raises(MlopsError, match="one environment, 'local'"):
        Deployment.parse("local", "prod")
    with pytest.raises(MlopsError, match="Invalid AWS environment 'Prod!'"):
        Deployment.parse("aws", "Prod!")


def test_local_subprocesses_never_see_real_credentials(tmp_path):
    base = {
        "PATH": "/usr/bin",
        "AWS_PROFILE": "production",
        "AWS_ACCESS_KEY_ID": "real-key",
        "AWS_SECRET_ACCESS_KEY": "real-secret",
        "AWS_SESSION_TOKEN": "real-token",
    }
    ours = ensure_emulator_credentials(tmp_path / "ca.pem")
    env = emulator_process_env(base, ca_bundle=tmp_path / "ca.pem", region="us-east-1")
    assert env["AWS_ACCESS_KEY_ID"] == ours.access_key_id
    assert env["AWS_SECRET_ACCESS_KEY"] == ours.secret_access_key
    assert "AWS_PROFILE" not in env
    assert "AWS_SESSION_TOKEN" not in env
    assert env["AWS_CONFIG_FILE"] == os.devnull
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert env["AWS_CA_BUNDLE"] == str(tmp_path / "ca.pem")
    assert env["PATH"] == "/usr/bin"


def test_missing_aws_credentials_fail_before_anything_happens(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    session = boto3.Session(region_name="eu-west-1")
    with pytest.raises(MlopsError, match=r"No AWS credentials found for --target aws.*AWS_PROFILE"):
        verify_credentials(session, "eu-west-1")


def test_infra_config_reads_terraform_json_entries():
    entries = {
        name: {"value": value, "type": "string", "sensitive": False}
        for name, value in OUTPUTS.items()
    }
    config = InfraConfig.from_outputs(entries)
    assert config.bucket_name == "b"
    assert config.bucket_uri == "s3://b"
    assert config.kms_key_arn is None
    # A state applied before per-pipeline outputs: its one pipeline is the first.
    first = {
        "pipeline_name": "mlops-local-pipeline",
        "base_job_prefix": "mlops-local-pipeline",
        "model_package_group_name": "g",
        "model_package_group_arn": OUTPUTS["model_package_group_arn"],
        "endpoint_names": OUTPUTS["endpoint_names"],
        "monitoring_schedule_names": OUTPUTS["monitoring_schedule_names"],
    }
    assert config.to_dict() == {
        **OUTPUTS,
        "pipelines": {"main": first},
        "pipeline_key": "main",
        "base_job_prefix": "mlops-local-pipeline",
        "derived": False,
    }


def test_infra_config_names_missing_outputs():
    partial = {k: v for k, v in OUTPUTS.items() if k not in ("bucket_name", "execution_role_arn")}
    with pytest.raises(MlopsError, match="lack bucket_name, execution_role_arn"):
        InfraConfig.from_outputs(partial)


def test_infra_config_without_outputs_says_to_apply_first():
    with pytest.raises(MlopsError, match="invoke infra-up"):
        InfraConfig.from_outputs({})


def test_settings_paths_derive_from_root(tmp_path: Path):
    settings = Settings.load(None, root=tmp_path, environ={})
    assert settings.infra_dir == tmp_path / "infra"
    assert settings.emulator_dir == tmp_path / ".mlops" / "emulator"
