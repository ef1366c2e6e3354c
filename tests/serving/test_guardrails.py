"""Deployment guardrails SageMaker would refuse are refused before anything changes, on
both targets (API reference: TrafficRoutingConfig, BlueGreenUpdatePolicy)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.serving.deployer import StageDeployer
from tests.serving.conftest import CONFIG


class _Untouchable(StageDeployer):
    """A deployer whose every side effect fails the test: nothing may be called."""

    def _endpoint_name(self) -> str:
        return "guarded-endpoint"

    def _rollout(self, version, settings):
        raise AssertionError("a rollout started")

    def status(self):
        raise AssertionError("the endpoint was looked at")

    def down(self):
        raise AssertionError("the endpoint was taken down")

    def invoker(self):
        raise AssertionError("the endpoint was invoked")


@pytest.fixture
def deployer(tmp_path):
    def client(service: str):
        made = boto3.client(service, region_name="us-east-1")
        Stubber(made).activate()  # no response queued: any call raises
        return made

    connection = SimpleNamespace(client=client, sagemaker=lambda: client("sagemaker"))
    stack = SimpleNamespace(connection=connection, deployment=None)
    settings = dataclasses.replace(
        Settings.load(None, root=tmp_path, environ={}),
        deploy={"strategy": "canary", "canary_percent": 60},
    )
    return _Untouchable(settings, stack, CONFIG, "staging")


def test_a_60_percent_canary_is_refused_before_anything_changes(deployer):
    with pytest.raises(MlopsError, match=r"canary_percent must be 1-50.*got 60"):
        deployer.deploy(3)


def test_a_strategy_on_the_command_line_is_checked_the_same_way(deployer):
    deployer.settings = dataclasses.replace(
        deployer.settings, deploy={"linear_percent": 5, "canary_percent": 10}
    )
    with pytest.raises(MlopsError, match=r"linear_percent must be 10-50"):
        deployer.deploy(3, "linear")
