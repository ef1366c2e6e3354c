"""Deploy an Approved model version: a local endpoint, or a SageMaker endpoint on AWS.

On AWS: a SageMaker Model from the model package, a new endpoint config named with
the version (data capture on), then the endpoint is created or updated blue/green
(all at once, or canary with auto-rollback on CloudWatch alarms when configured),
and the task waits for InService. Everything is tagged with the project, the
environment and the model version. ``remove_endpoints`` deletes what deploys
created, for ``invoke destroy``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core import polling
from pipelines.core.aws import AwsConnection, api_error, is_missing
from pipelines.core.errors import MlopsError
from pipelines.registry import ModelVersion, require_approved
from pipelines.serving.local_endpoint import LocalEndpoint

STRATEGIES = ("all-at-once", "canary", "linear")
# BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds: valid range 600-28800.
MIN_EXECUTION_TIMEOUT, MAX_EXECUTION_TIMEOUT = 600, 28800
STAGES = ("staging", "prod")
# Locally each stage's endpoint listens next to the default one (mlops.endpoint.port), and
# each pipeline's three endpoints next to the previous pipeline's.
_STAGE_PORT_OFFSET = {"staging": 1, "prod": 2}
_PORTS_PER_PIPELINE = 3


def check_stage(stage: str | None) -> str | None:
    if stage in (None, ""):
        return None
    if stage not in STAGES:
        raise MlopsError(f"Unknown stage {stage!r}: use {' or '.join(STAGES)}.")
    return stage


def stage_port(settings: Settings, stage: str | None) -> int:
    pipeline = _PORTS_PER_PIPELINE * settings.pipelines.position
    return settings.endpoint_port + pipeline + _STAGE_PORT_OFFSET.get(stage or "", 0)


@dataclass(frozen=True)
class DeploySettings:
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    strategy: str = "all-at-once"
    canary_percent: int = 10
    canary_wait_seconds: int = 300
    linear_percent: int = 25
    linear_wait_seconds: int = 120
    rollback_alarms: tuple[str, ...] = ()
    capture_percent: float = 100.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise MlopsError(
                f"Unknown deployment strategy {self.strategy!r}: use {' or '.join(STRATEGIES)}."
            )
        if not 0 <= self.capture_percent <= 100:
            raise MlopsError(
                f"Capture percentage must be between 0 and 100, got {self.capture_percent}."
            )
        # SageMaker's limits (API reference, TrafficRoutingConfig): a canary is at most 50%
        # of the fleet, a linear step 10-50%, each wait 0-3600 s. Checked before anything
        # changes, on both targets: local success means SageMaker accepts it too.
        if not 1 <= self.canary_percent <= 50:
            raise MlopsError(
                f"deploy.canary_percent must be 1-50 (SageMaker's CanarySize is at most 50% "
                f"of the fleet), got {self.canary_percent}."
            )
        if not 10 <= self.linear_percent <= 50:
            raise MlopsError(
                f"deploy.linear_percent must be 10-50 (SageMaker's LinearStepSize), got "
                f"{self.linear_percent}."
            )
        for name in ("canary_wait_seconds", "linear_wait_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3600:
                raise MlopsError(f"deploy.{name} must be 0-3600 seconds, got {value!r}.")
        if self.execution_timeout_seconds > MAX_EXECUTION_TIMEOUT:
            raise MlopsError(
                f"The {self.strategy} rollout waits {self.total_wait_seconds} s in all; "
                f"SageMaker's MaximumExecutionTimeoutInSeconds must exceed that and allows at "
                f"most {MAX_EXECUTION_TIMEOUT} s. Shorten the waits or widen the steps."
            )

    @property
    def total_wait_seconds(self) -> int:
        """How long the traffic shift bakes in all: each step's wait before the next."""
        return int(sum(wait for _, wait in traffic_steps(self)))

    @property
    def execution_timeout_seconds(self) -> int:
        """MaximumExecutionTimeoutInSeconds: larger than the waits (API reference,
        BlueGreenUpdatePolicy), with 10 minutes for the new fleet to come up; 600-28800."""
        return max(MIN_EXECUTION_TIMEOUT, self.total_wait_seconds + MIN_EXECUTION_TIMEOUT)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DeploySettings:
        values = {**settings.deploy, **{k: v for k, v in overrides.items() if v is not None}}
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MlopsError(f"Unknown deploy setting(s) in invoke.yaml: {', '.join(unknown)}.")
        if "rollback_alarms" in values:
            values["rollback_alarms"] = tuple(values["rollback_alarms"] or ())
        return cls(**values)


def endpoint_name(config: InfraConfig, stage: str | None = None) -> str:
    """The environment's endpoint; locally, a stage's own endpoint beside it (Terraform's
    ``endpoint_names`` output)."""
    return config.endpoint_name(stage)


def traffic_steps(settings: DeploySettings) -> list[tuple[float, float]]:
    """The local endpoint's shift before the new version takes all traffic: ``(share,
    bake seconds)`` steps, the same schedule SageMaker follows for the strategy."""
    if settings.strategy == "canary":
        return [(settings.canary_percent / 100, float(settings.canary_wait_seconds))]
    if settings.strategy == "linear":
        step = settings.linear_percent
        return [(p / 100, float(settings.linear_wait_seconds)) for p in range(step, 100, step)]
    return []


def capture_destination(config: InfraConfig) -> str:
    return f"s3://{config.bucket_name}/datacapture"


def resource_tags(config: InfraConfig, version: ModelVersion | None = None) -> list[dict[str, str]]:
    tags = {
        "Project": config.name_prefix,
        "Environment": config.environment,
        "ManagedBy": "mlops-tasks",
    }
    if version is not None:
        tags["ModelVersion"] = str(version.version)
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def deployment_config(settings: DeploySettings) -> dict[str, Any]:
    """The blue/green update policy for an existing endpoint."""
    if settings.strategy == "canary":
        routing: dict[str, Any] = {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percent},
            "WaitIntervalInSeconds": settings.canary_wait_seconds,
        }
    elif settings.strategy == "linear":
        routing = {
            "Type": "LINEAR",
            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": settings.linear_percent},
            "WaitIntervalInSeconds": settings.linear_wait_seconds,
        }
    else:
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": settings.execution_timeout_seconds,
        }
    }
    if settings.rollback_alarms:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in settings.rollback_alarms]
        }
    return config


@dataclass(frozen=True)
class AwsDeployment:
    endpoint: str
    endpoint_config: str
    model: str
    status: str
    created: bool


def deploy_to_sagemaker(
    connection: AwsConnection,
    config: InfraConfig,
    version: ModelVersion,
    settings: DeploySettings,
    *,
    wait: bool = True,
    poll_seconds: int = 30,
    guard: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> AwsDeployment:
    """``guard`` wraps the call that moves traffic (create or update the endpoint): the
    deployer's re-check, under the registry's lock, that the version is still Approved."""
    require_approved(version)
    sagemaker = connection.sagemaker()
    endpoint = endpoint_name(config)
    tags = resource_tags(config, version)
    model = f"{endpoint}-v{version.version}"
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    endpoint_config = f"{endpoint}-v{version.version}-{stamp}"[:63]
    try:
        try:
            sagemaker.describe_model(ModelName=model)
        except ClientError as error:
            if not is_missing(error):
                raise
            sagemaker.create_model(
                ModelName=model,
                PrimaryContainer={"ModelPackageName": version.arn},
                ExecutionRoleArn=config.execution_role_arn,
                Tags=tags,
            )
        capture: dict[str, Any] = {
            "EnableCapture": settings.capture_percent > 0,
            "InitialSamplingPercentage": int(settings.capture_percent),
            "DestinationS3Uri": capture_destination(config),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        }
        if config.kms_key_arn:
            capture["KmsKeyId"] = config.kms_key_arn
        sagemaker.create_endpoint_config(
            EndpointConfigName=endpoint_config,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model,
                    "InitialInstanceCount": settings.instance_count,
                    "InstanceType": settings.instance_type,
                    "InitialVariantWeight": 1.0,
                }
            ],
            DataCaptureConfig=capture,
            Tags=tags,
        )
        try:
            described = sagemaker.describe_endpoint(EndpointName=endpoint)
            created = False
        except ClientError as error:
            if not is_missing(error):
                raise
            described, created = None, True
        with guard():
            if created:
                sagemaker.create_endpoint(
                    EndpointName=endpoint, EndpointConfigName=endpoint_config, Tags=tags
                )
            else:
                sagemaker.update_endpoint(
                    EndpointName=endpoint,
                    EndpointConfigName=endpoint_config,
                    DeploymentConfig=deployment_config(settings),
                )
        if not created:
            sagemaker.add_tags(ResourceArn=described["EndpointArn"], Tags=tags)
    except (ClientError, BotoCoreError) as error:
        raise api_error(f"Deploying version {version.version} to {endpoint}", error) from error

    status = "Creating" if created else "Updating"
    if wait:
        status = wait_in_service(sagemaker, endpoint, poll_seconds)
    return AwsDeployment(endpoint, endpoint_config, model, status, created)


def wait_in_service(
    sagemaker: Any, endpoint: str, poll_seconds: int = 30, timeout: int = 3600
) -> str:
    try:
        sagemaker.get_waiter("endpoint_in_service").wait(
            EndpointName=endpoint,
            WaiterConfig={"Delay": poll_seconds, "MaxAttempts": max(1, timeout // poll_seconds)},
        )
    except WaiterError as error:
        reason = ""
        with contextlib.suppress(ClientError, BotoCoreError):
            reason = sagemaker.describe_endpoint(EndpointName=endpoint).get("FailureReason", "")
        raise MlopsError(
            f"Endpoint {endpoint} did not reach InService: {reason or error}. If the update "
            "failed, SageMaker kept (or rolled back to) the previous version."
        ) from error
    return "InService"


@dataclass(frozen=True)
class RemovedEndpoints:
    endpoints: int
    endpoint_configs: int
    models: int


def remove_endpoints(
    connection: AwsConnection, config: InfraConfig, timeout: float = 1800
) -> RemovedEndpoints:
    """Delete the endpoint, endpoint configs and models that deploys created."""
    sagemaker = connection.sagemaker()
    endpoint = endpoint_name(config)
    counts = [0, 0, 0]
    try:
        for page in sagemaker.get_paginator("list_endpoints").paginate(NameContains=endpoint):
            for item in page["Endpoints"]:
                if item["EndpointName"] == endpoint:
                    sagemaker.delete_endpoint(EndpointName=endpoint)
                    counts[0] += 1
        if counts[0]:
            # SageMaker takes minutes to delete an endpoint (the emulator none): its
            # configs and models go once it is gone.
            with contextlib.suppress(polling.PollTimeout):
                polling.poll(
                    lambda: _endpoint_exists(sagemaker, endpoint),
                    lambda exists: not exists,
                    polling.PollSchedule(15.0, 15.0),
                    timeout=timeout,
                )
        for page in sagemaker.get_paginator("list_endpoint_configs").paginate(
            NameContains=f"{endpoint}-v"
        ):
            for item in page["EndpointConfigs"]:
                sagemaker.delete_endpoint_config(EndpointConfigName=item["EndpointConfigName"])
                counts[1] += 1
        for page in sagemaker.get_paginator("list_models").paginate(NameContains=f"{endpoint}-v"):
            for item in page["Models"]:
                sagemaker.delete_model(ModelName=item["ModelName"])
                counts[2] += 1
    except (ClientError, BotoCoreError) as error:
        raise api_error(f"Removing the endpoint {endpoint}", error) from error
    return RemovedEndpoints(*counts)


def local_endpoint(
    settings: Settings,
    connection: AwsConnection,
    config: InfraConfig,
    deploy: DeploySettings | None = None,
    stage: str | None = None,
) -> LocalEndpoint:
    """The local endpoint of this stack, or of one of its stages (its own name and port);
    ``deploy`` defaults to invoke.yaml's settings."""
    deploy = deploy or DeploySettings.from_settings(settings)
    return LocalEndpoint(
        settings.state_dir,
        connection,
        name=endpoint_name(config, stage),
        port=stage_port(settings, stage),
        role_arn=config.execution_role_arn,
        capture_uri=capture_destination(config),
        capture_percent=deploy.capture_percent,
        tags={t["Key"]: t["Value"] for t in resource_tags(config)},
        runtime_cache=settings.runtime_cache,
        host_runtime=settings.runtime_host,
    )


def deployed_package_arn(
    connection: AwsConnection, config: InfraConfig, stage: str | None = None
) -> str:
    """The model package behind the SageMaker endpoint (endpoint → config → model); locally
    a stage's endpoint records itself the same way."""
    sagemaker = connection.sagemaker()
    endpoint = endpoint_name(config, stage)
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
        endpoint_config = sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"]
        )
        model = sagemaker.describe_model(
            ModelName=endpoint_config["ProductionVariants"][0]["ModelName"]
        )
    except ClientError as error:
        if is_missing(error):
            flag = f" --stage {stage}" if stage else ""
            raise MlopsError(
                f"There is no endpoint {endpoint}: deploy a version with `invoke deploy{flag}`."
            ) from error
        raise api_error(f"Describing {endpoint}", error) from error
    except BotoCoreError as error:
        raise api_error(f"Describing {endpoint}", error) from error
    package = model.get("PrimaryContainer", {}).get("ModelPackageName")
    if not package:
        raise MlopsError(f"Endpoint {endpoint} does not serve a registered model package.")
    return package


def _endpoint_exists(sagemaker: Any, endpoint: str) -> bool:
    try:
        sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError:
        return False
    return True
