"""The SageMaker deployer of a stage, against the emulator's SageMaker and S3: deploy,
status, a second deploy (UpdateEndpoint), rollback and the history they leave."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.serving.sagemaker_deployer import SageMakerDeployer
from tests.serving.conftest import CONFIG
from tests.support import terraform_named

# The staging environment's own group is empty: it deploys dev's versions, through the
# group named in invoke.yaml (cross-account on AWS, shared by dev's group policy).
STAGING = terraform_named(
    CONFIG,
    environment="staging",
    name_prefix="stage",
    model_package_group_name="stage-staging-models",
)


@pytest.fixture
def staging(emulator_connection, tmp_path) -> SageMakerDeployer:
    settings = dataclasses.replace(
        Settings.load(None, root=tmp_path, environ={}),
        promotion={"source_model_package_group": CONFIG.model_package_group_arn},
    )
    stack = SimpleNamespace(
        connection=emulator_connection, deployment=Deployment.parse("aws", "staging")
    )
    deployer = SageMakerDeployer(settings, stack, STAGING, "staging")
    deployer.wait = False  # the emulator's endpoints are InService at once
    return deployer


def test_a_stage_deploys_updates_rolls_back_and_keeps_its_history(staging, register_version):
    first, second = register_version(10), register_version(12)
    assert staging.endpoint == "stage-staging-endpoint"
    assert not staging.status().running
    with pytest.raises(MlopsError, match="has no recorded deployment to roll back from"):
        staging.rollback()

    created = staging.deploy(first.version)
    assert created.message.startswith(
        f"Created endpoint stage-staging-endpoint with version {first.version}"
    )
    updated = staging.deploy(second.version, "canary")
    assert updated.message.startswith("Updated (canary) endpoint stage-staging-endpoint")
    status = staging.status()
    assert (status.running, status.version, status.package_arn) == (
        True,
        second.version,
        second.arn,
    )

    rolled = staging.rollback()
    assert rolled.record.version == first.version
    assert staging.status().version == first.version
    history = [
        (r.version, r.kind, r.strategy, r.previous_version, r.outcome) for r in staging.history()
    ]
    assert history == [
        (first.version, "deploy", "all-at-once", None, "deployed"),
        (second.version, "deploy", "canary", first.version, "deployed"),
        (first.version, "rollback", "all-at-once", second.version, "deployed"),
    ]
    assert all(r.stage == "staging" for r in staging.history())
    assert {r.package_arn for r in staging.history()} == {first.arn, second.arn}
    assert "Deleted 1 endpoint(s)" in staging.down()
    assert not staging.status().running
