"""Deploying to a SageMaker endpoint, without AWS: create, update and removal run
against the emulator; the blue/green update policy and the failure paths the
emulator cannot produce are checked with botocore's Stubber, which validates every
request against the SageMaker API model."""

from __future__ import annotations

import dataclasses

import pytest
from botocore.stub import ANY, Stubber

from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.registry import PENDING, ModelVersion
from pipelines.serving import deploy
from pipelines.serving.deploy import DeploySettings, deploy_to_sagemaker, deployed_package_arn
from tests.serving.conftest import ACCOUNT, CONFIG
from tests.support import terraform_named

AWS_CONFIG = terraform_named(CONFIG, environment="aws", name_prefix="deploy")
ENDPOINT = "deploy-aws-endpoint"


def test_first_deploy_creates_a_tagged_endpoint_with_data_capture(
    emulator_connection, register_version
):
    version = register_version(10)
    result = deploy_to_sagemaker(
        emulator_connection, AWS_CONFIG, version, DeploySettings(capture_percent=20), poll_seconds=1
    )
    assert result.created
    assert result.status == "InService"
    assert result.endpoint == ENDPOINT
    assert result.model == f"{ENDPOINT}-v{version.version}"
    assert result.endpoint_config.startswith(f"{ENDPOINT}-v{version.version}-")

    sagemaker = emulator_connection.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == result.endpoint_config
    config = sagemaker.describe_endpoint_config(EndpointConfigName=result.endpoint_config)
    variant = config["ProductionVariants"][0]
    assert variant["ModelName"] == result.model
    assert variant["InstanceType"] == "ml.m5.large"
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 20
    assert capture["DestinationS3Uri"] == f"s3://{CONFIG.bucket_name}/datacapture"
    model = sagemaker.describe_model(ModelName=result.model)
    assert model["PrimaryContainer"]["ModelPackageName"] == version.arn
    assert model["ExecutionRoleArn"] == CONFIG.execution_role_arn
    tags = {
        t["Key"]: t["Value"]
        for t in sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    }
    assert tags == {
        "Project": "deploy",
        "Environment": "aws",
        "ManagedBy": "mlops-tasks",
        "ModelVersion": str(version.version),
    }
    assert deployed_package_arn(emulator_connection, AWS_CONFIG) == version.arn


def test_a_second_deploy_updates_the_endpoint_in_place_and_destroy_removes_all(
    emulator_connection, register_version
):
    first, second = register_version(10), register_version(12)
    deploy_to_sagemaker(emulator_connection, AWS_CONFIG, first, DeploySettings(), poll_seconds=1)
    result = deploy_to_sagemaker(
        emulator_connection, AWS_CONFIG, second, DeploySettings(), poll_seconds=1
    )
    assert not result.created
    sagemaker = emulator_connection.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == result.endpoint_config
    assert deployed_package_arn(emulator_connection, AWS_CONFIG) == second.arn
    tags = {
        t["Key"]: t["Value"]
        for t in sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    }
    assert tags["ModelVersion"] == str(second.version)

    removed = deploy.remove_endpoints(emulator_connection, AWS_CONFIG)
    assert removed.endpoints == 1
    assert removed.endpoint_configs >= 2
    assert removed.models >= 2
    assert sagemaker.list_endpoints(NameContains=ENDPOINT)["Endpoints"] == []
    assert sagemaker.list_models(NameContains=f"{ENDPOINT}-v")["Models"] == []
    with pytest.raises(MlopsError, match="There is no endpoint deploy-aws-endpoint"):
        deployed_package_arn(emulator_connection, AWS_CONFIG)
    # Nothing left to remove is not an error: destroy can run twice.
    assert deploy.remove_endpoints(emulator_connection, AWS_CONFIG) == deploy.RemovedEndpoints(
        0, 0, 0
    )


def test_an_unapproved_version_is_refused_before_any_call(emulator_connection, register_version):
    version = register_version(10, approve=False)
    assert version.status == PENDING
    other = terraform_named(AWS_CONFIG, name_prefix="refused")
    with pytest.raises(MlopsError, match="is PendingManualApproval"):
        deploy_to_sagemaker(emulator_connection, other, version, DeploySettings())
    sagemaker = emulator_connection.client("sagemaker")
    assert sagemaker.list_endpoint_configs(NameContains="refused-")["EndpointConfigs"] == []
    assert sagemaker.list_models(NameContains="refused-")["Models"] == []


# --- blue/green policy and failures, with the Stubber --------------------------------------


VERSION = ModelVersion(
    arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/serving-models/7",
    version=7,
    status="Approved",
    created_at=0.0,
)
ENDPOINT_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{ENDPOINT}"


class StubbedConnection:
    """An AwsConnection whose SageMaker client is a single stubbed client."""

    is_emulator = False

    def __init__(self) -> None:
        import boto3

        self.stubbed = boto3.Session(region_name="us-east-1").client("sagemaker")
        self.stubber = Stubber(self.stubbed)

    def client(self, service: str, **_: object):
        assert service == "sagemaker"
        return self.stubbed

    def sagemaker(self):
        return self.stubbed


def not_found(stubber: Stubber, method: str) -> None:
    stubber.add_client_error(
        method, service_error_code="ValidationException", service_message="Could not find model."
    )


def expect_update(stubber: Stubber, deployment_config: dict) -> None:
    stubber.add_response(
        "describe_model",
        {"ModelName": f"{ENDPOINT}-v7", "ModelArn": f"{ENDPOINT_ARN}-v7", "CreationTime": 0},
    )
    stubber.add_response("create_endpoint_config", {"EndpointConfigArn": f"{ENDPOINT_ARN}-config"})
    stubber.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": ENDPOINT_ARN,
            "EndpointStatus": "InService",
            "CreationTime": 0,
            "LastModifiedTime": 0,
        },
        {"EndpointName": ENDPOINT},
    )
    stubber.add_response(
        "update_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": ANY,
            "DeploymentConfig": deployment_config,
        },
    )
    stubber.add_response("add_tags", {}, {"ResourceArn": ENDPOINT_ARN, "Tags": ANY})


def test_canary_updates_shift_a_share_first_and_roll_back_on_alarms():
    connection = StubbedConnection()
    settings = DeploySettings(
        strategy="canary",
        canary_percent=25,
        canary_wait_seconds=600,
        rollback_alarms=("p99-latency", "5xx-rate"),
    )
    expect_update(
        connection.stubber,
        {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                    "WaitIntervalInSeconds": 600,
                },
                "TerminationWaitInSeconds": 0,
                # Larger than the canary's one 600 s wait (API reference, BlueGreenUpdatePolicy).
                "MaximumExecutionTimeoutInSeconds": 1200,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": "p99-latency"}, {"AlarmName": "5xx-rate"}]
            },
        },
    )
    with connection.stubber:
        result = deploy_to_sagemaker(connection, AWS_CONFIG, VERSION, settings, wait=False)
    connection.stubber.assert_no_pending_responses()
    assert result.status == "Updating"
    assert not result.created


def test_a_failed_update_reports_the_reason_and_that_the_old_version_stays():
    connection = StubbedConnection()
    expect_update(
        connection.stubber,
        {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": 0,
                "MaximumExecutionTimeoutInSeconds": 600,  # the API's minimum
            }
        },
    )
    failed = {
        "EndpointName": ENDPOINT,
        "EndpointArn": ENDPOINT_ARN,
        "EndpointStatus": "Failed",
        "FailureReason": "The primary container failed the ping health check.",
        "CreationTime": 0,
        "LastModifiedTime": 0,
    }
    connection.stubber.add_response("describe_endpoint", failed)  # the waiter's poll
    connection.stubber.add_response("describe_endpoint", failed)  # the reason lookup
    with connection.stubber, pytest.raises(MlopsError) as raised:
        deploy_to_sagemaker(connection, AWS_CONFIG, VERSION, DeploySettings(), poll_seconds=1)
    message = str(raised.value)
    assert "did not reach InService" in message
    assert "failed the ping health check" in message
    assert "kept (or rolled back to) the previous version" in message


def test_api_errors_name_the_step_and_the_code():
    connection = StubbedConnection()
    not_found(connection.stubber, "describe_model")
    connection.stubber.add_client_error(
        "create_model",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform: iam:PassRole",
    )
    with connection.stubber, pytest.raises(MlopsError) as raised:
        deploy_to_sagemaker(connection, AWS_CONFIG, VERSION, DeploySettings(), wait=False)
    assert str(raised.value) == (
        f"Deploying version 7 to {ENDPOINT} failed: AccessDeniedException: "
        "not authorized to perform: iam:PassRole"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"strategy": "rolling"}, "Unknown deployment strategy 'rolling'"),
        # SageMaker's limits (API reference, TrafficRoutingConfig): canary at most 50% of the
        # fleet, linear steps 10-50%; and the rollout's timeout at most 28800 s.
        ({"linear_percent": 60}, r"deploy.linear_percent must be 10-50"),
        ({"linear_percent": 5}, r"deploy.linear_percent must be 10-50"),
        ({"canary_percent": 60}, r"deploy.canary_percent must be 1-50"),
        (
            {"strategy": "linear", "linear_percent": 10, "linear_wait_seconds": 3600},
            r"waits 32400 s in all; SageMaker's MaximumExecutionTimeoutInSeconds",
        ),
        ({"canary_wait_seconds": -1}, "deploy.canary_wait_seconds must be 0-3600 seconds"),
        ({"capture_percent": 150}, "Capture percentage must be between 0 and 100"),
        (
            {"instance_typ": "ml.c5.large"},
            r"Unknown deploy setting\(s\) in invoke.yaml: instance_typ",
        ),
    ],
)
def test_bad_deploy_settings_are_named(tmp_path, values, message):
    settings = Settings.load(None, root=tmp_path, environ={})
    settings = dataclasses.replace(settings, deploy=values)
    with pytest.raises(MlopsError, match=message):
        DeploySettings.from_settings(settings)


def test_command_line_overrides_win_over_invoke_yaml(tmp_path):
    settings = Settings.load(None, root=tmp_path, environ={})
    settings = dataclasses.replace(settings, deploy={"strategy": "canary", "instance_count": 2})
    resolved = DeploySettings.from_settings(settings, strategy="all-at-once", instance_count=None)
    assert resolved.strategy == "all-at-once"
    assert resolved.instance_count == 2


def test_linear_updates_shift_in_steps_and_roll_back_on_alarms():
    connection = StubbedConnection()
    settings = DeploySettings(
        strategy="linear",
        linear_percent=20,
        linear_wait_seconds=90,
        rollback_alarms=("5xx-rate",),
    )
    expect_update(
        connection.stubber,
        {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "LINEAR",
                    "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                    "WaitIntervalInSeconds": 90,
                },
                "TerminationWaitInSeconds": 0,
                "MaximumExecutionTimeoutInSeconds": 960,  # 4 waits of 90 s at 20/40/60/80%
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "5xx-rate"}]},
        },
    )
    with connection.stubber:
        result = deploy_to_sagemaker(connection, AWS_CONFIG, VERSION, settings, wait=False)
    connection.stubber.assert_no_pending_responses()
    assert result.status == "Updating"


@pytest.mark.parametrize(
    ("strategy", "steps"),
    [
        ("all-at-once", []),
        ("canary", [(0.25, 600.0)]),
        ("linear", [(0.2, 90.0), (0.4, 90.0), (0.6, 90.0), (0.8, 90.0)]),
    ],
)
def test_the_local_shift_follows_sagemakers_schedule(strategy, steps):
    settings = DeploySettings(
        strategy=strategy,
        canary_percent=25,
        canary_wait_seconds=600,
        linear_percent=20,
        linear_wait_seconds=90,
    )
    assert deploy.traffic_steps(settings) == steps
