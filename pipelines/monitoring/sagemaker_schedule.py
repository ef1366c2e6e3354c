"""SageMaker Model Monitor on AWS: the data-quality job definition and the hourly schedule.

``ensure_schedule`` creates (or points at a new version's baseline) a data-quality job
definition running Model Monitor's analyzer image against the deployed version's
``ModelDataQuality`` baseline, and the monitoring schedule on the endpoint
(``cron(0 * ? * * *)``). ``remove_schedules`` deletes both; SageMaker refuses to delete an
endpoint that still has schedules, so endpoint-down and destroy call it first. The job runs
as the execution role, whose policy already covers what it does (read the capture and the
baseline, write ``monitoring/``, put metrics in ``aws/sagemaker/Endpoints/data-metrics``,
pull ``sagemaker-*`` images, write ``/aws/sagemaker/*`` logs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.infra_config import InfraConfig
from pipelines.config.monitoring_settings import MonitoringSettings
from pipelines.core.errors import MlopsError
from pipelines.monitoring.execution import DeployedModel, schedule_name
from pipelines.serving import deploy

_CRON = {timedelta(hours=1): "cron(0 * ? * * *)", timedelta(days=1): "cron(0 0 ? * * *)"}
PROCESSING_INPUT = "/opt/ml/processing/input/endpoint"
PROCESSING_OUTPUT = "/opt/ml/processing/output"


def schedule_expression(every: timedelta | None, settings: MonitoringSettings) -> str:
    """SageMaker schedules run hourly or daily (cron); other intervals are refused."""
    if every is None:
        return settings.schedule_expression
    if every not in _CRON:
        raise MlopsError(
            "A SageMaker monitoring schedule runs every 1h or every 1d (24h); got "
            f"{int(every.total_seconds())} s."
        )
    return _CRON[every]


def analyzer_image(region: str) -> str:
    from sagemaker import image_uris

    return image_uris.retrieve("model-monitor", region=region)


def job_definition_request(
    config: InfraConfig, model: DeployedModel, settings: MonitoringSettings, image: str
) -> dict[str, Any]:
    name = f"{schedule_name(config)}-v{model.version}"[:63]
    output: dict[str, Any] = {
        "MonitoringOutputs": [
            {
                "S3Output": {
                    # SageMaker appends <endpoint>/<schedule>/yyyy/mm/dd/hh.
                    "S3Uri": f"s3://{config.bucket_name}/monitoring",
                    "LocalPath": PROCESSING_OUTPUT,
                    "S3UploadMode": "EndOfJob",
                }
            }
        ]
    }
    cluster: dict[str, Any] = {
        "InstanceCount": 1,
        "InstanceType": settings.instance_type,
        "VolumeSizeInGB": 20,
    }
    if config.kms_key_arn:
        output["KmsKeyId"] = config.kms_key_arn
        cluster["VolumeKmsKeyId"] = config.kms_key_arn
    return {
        "JobDefinitionName": name,
        "DataQualityBaselineConfig": {
            "ConstraintsResource": {"S3Uri": model.data_constraints},
            "StatisticsResource": {"S3Uri": model.data_statistics},
        },
        "DataQualityAppSpecification": {
            "ImageUri": image,
            "Environment": {"publish_cloudwatch_metrics": "Enabled"},
        },
        "DataQualityJobInput": {
            "EndpointInput": {
                "EndpointName": deploy.endpoint_name(config),
                "LocalPath": PROCESSING_INPUT,
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "DataQualityJobOutputConfig": output,
        "JobResources": {"ClusterConfig": cluster},
        "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
        "RoleArn": config.execution_role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "Tags": deploy.resource_tags(config),
    }


@dataclass(frozen=True)
class ScheduleState:
    schedule: str
    job_definition: str
    expression: str
    created: bool


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in (
        "ResourceNotFound",
        "ValidationException",
    )


def ensure_schedule(
    sagemaker: Any,
    config: InfraConfig,
    model: DeployedModel,
    settings: MonitoringSettings,
    *,
    every: timedelta | None = None,
    image: str | None = None,
) -> ScheduleState:
    if not model.data_statistics or not model.data_constraints:
        raise MlopsError(
            f"Model version {model.version} has no ModelDataQuality baseline: no schedule made."
        )
    schedule = schedule_name(config)
    expression = schedule_expression(every, settings)
    request = job_definition_request(
        config, model, settings, image or analyzer_image(config.region)
    )
    definition = request["JobDefinitionName"]
    try:
        try:
            sagemaker.describe_data_quality_job_definition(JobDefinitionName=definition)
        except ClientError as error:
            if not _missing(error):
                raise
            sagemaker.create_data_quality_job_definition(**request)
        schedule_config = {
            "ScheduleConfig": {"ScheduleExpression": expression},
            "MonitoringJobDefinitionName": definition,
            "MonitoringType": "DataQuality",
        }
        try:
            sagemaker.describe_monitoring_schedule(MonitoringScheduleName=schedule)
            created = False
        except ClientError as error:
            if not _missing(error):
                raise
            created = True
        if created:
            sagemaker.create_monitoring_schedule(
                MonitoringScheduleName=schedule,
                MonitoringScheduleConfig=schedule_config,
                Tags=deploy.resource_tags(config),
            )
        else:
            sagemaker.update_monitoring_schedule(
                MonitoringScheduleName=schedule, MonitoringScheduleConfig=schedule_config
            )
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Creating the monitoring schedule {schedule} failed: {error}") from error
    return ScheduleState(schedule, definition, expression, created)


def remove_schedules(
    sagemaker: Any, config: InfraConfig, timeout: float = 600, poll: float = 10
) -> int:
    """Delete the endpoint's monitoring schedules, then this project's job definitions."""
    endpoint = deploy.endpoint_name(config)
    removed = 0
    try:
        names = [
            s["MonitoringScheduleName"]
            for page in sagemaker.get_paginator("list_monitoring_schedules").paginate(
                EndpointName=endpoint
            )
            for s in page["MonitoringScheduleSummaries"]
        ]
        for name in names:
            sagemaker.delete_monitoring_schedule(MonitoringScheduleName=name)
            removed += 1
        deadline = time.monotonic() + timeout
        for name in names:
            while time.monotonic() < deadline:
                try:
                    sagemaker.describe_monitoring_schedule(MonitoringScheduleName=name)
                except ClientError as error:
                    if _missing(error):
                        break
                    raise
                time.sleep(poll)
        for page in sagemaker.get_paginator("list_data_quality_job_definitions").paginate(
            EndpointName=endpoint, NameContains=schedule_name(config)
        ):
            for item in page["JobDefinitionSummaries"]:
                sagemaker.delete_data_quality_job_definition(
                    JobDefinitionName=item["MonitoringJobDefinitionName"]
                )
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(
            f"Removing the monitoring schedules of {endpoint} failed: {error}"
        ) from error
    return removed
