"""The SageMaker monitoring schedule: requests checked by botocore's Stubber against the
service model (its request validation on), no AWS account."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from botocore.stub import ANY, Stubber

from pipelines.config.infra_config import InfraConfig
from pipelines.config.monitoring_settings import MonitoringSettings
from pipelines.core.errors import MlopsError
from pipelines.monitoring import sagemaker_schedule as aws
from pipelines.monitoring.execution import DeployedModel
from tests.support import terraform_named

ARN = "arn:aws:sagemaker:us-east-1:123456789012"
IMAGE = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
CONFIG = terraform_named(
    InfraConfig(
        region="us-east-1",
        account_id="123456789012",
        environment="dev",
        name_prefix="mlops",
        bucket_name="mlops-dev-artifacts",
        bucket_arn="arn:aws:s3:::mlops-dev-artifacts",
        execution_role_arn="arn:aws:iam::123456789012:role/mlops-dev-sagemaker-execution",
        model_package_group_name="mlops-dev-models",
        model_package_group_arn=f"{ARN}:model-package-group/mlops-dev-models",
        pipeline_name="mlops-dev-pipeline",
        kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
)
MODEL = DeployedModel(
    version=7,
    package_arn=f"{ARN}:model-package/mlops-dev-models/7",
    features=["crim", "rm"],
    target="medv",
    data_statistics="s3://mlops-dev-artifacts/p/CheckDataQuality/statistics.json",
    data_constraints="s3://mlops-dev-artifacts/p/CheckDataQuality/constraints.json",
    quality_statistics=None,
    quality_constraints=None,
)
NOT_FOUND = "ResourceNotFound"


@pytest.fixture
def sagemaker():
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_the_first_deploy_creates_the_job_definition_and_the_hourly_schedule(sagemaker):
    client, stub = sagemaker
    request = aws.job_definition_request(CONFIG, MODEL, MonitoringSettings(), IMAGE)
    assert request["JobDefinitionName"] == "mlops-dev-endpoint-data-quality-v7"
    assert request["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == "mlops-dev-endpoint"
    assert (
        request["DataQualityBaselineConfig"]["StatisticsResource"]["S3Uri"] == MODEL.data_statistics
    )
    assert request["DataQualityJobOutputConfig"]["KmsKeyId"] == CONFIG.kms_key_arn
    assert request["JobResources"]["ClusterConfig"]["VolumeKmsKeyId"] == CONFIG.kms_key_arn
    stub.add_client_error("describe_data_quality_job_definition", NOT_FOUND)
    stub.add_response(
        "create_data_quality_job_definition",
        {"JobDefinitionArn": f"{ARN}:data-quality-job-definition/x"},
        request,
    )
    stub.add_client_error("describe_monitoring_schedule", NOT_FOUND)
    stub.add_response(
        "create_monitoring_schedule",
        {"MonitoringScheduleArn": f"{ARN}:monitoring-schedule/x"},
        {
            "MonitoringScheduleName": "mlops-dev-endpoint-data-quality",
            "MonitoringScheduleConfig": {
                "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                "MonitoringJobDefinitionName": "mlops-dev-endpoint-data-quality-v7",
                "MonitoringType": "DataQuality",
            },
            "Tags": ANY,
        },
    )
    state = aws.ensure_schedule(client, CONFIG, MODEL, MonitoringSettings(), image=IMAGE)
    assert state.created
    assert state.expression == "cron(0 * ? * * *)"


def test_a_new_version_points_the_schedule_at_its_baseline(sagemaker):
    client, stub = sagemaker
    stub.add_response("describe_data_quality_job_definition", described_definition())
    stub.add_response("describe_monitoring_schedule", described_schedule())
    stub.add_response(
        "update_monitoring_schedule",
        {"MonitoringScheduleArn": f"{ARN}:monitoring-schedule/x"},
        {
            "MonitoringScheduleName": "mlops-dev-endpoint-data-quality",
            "MonitoringScheduleConfig": {
                "ScheduleConfig": {"ScheduleExpression": "cron(0 0 ? * * *)"},
                "MonitoringJobDefinitionName": "mlops-dev-endpoint-data-quality-v7",
                "MonitoringType": "DataQuality",
            },
        },
    )
    state = aws.ensure_schedule(
        client, CONFIG, MODEL, MonitoringSettings(), every=timedelta(days=1), image=IMAGE
    )
    assert not state.created


def test_endpoint_down_deletes_schedules_then_job_definitions(sagemaker):
    client, stub = sagemaker
    stub.add_response(
        "list_monitoring_schedules",
        {
            "MonitoringScheduleSummaries": [
                {
                    "MonitoringScheduleName": "mlops-dev-endpoint-data-quality",
                    "MonitoringScheduleArn": f"{ARN}:monitoring-schedule/x",
                    "CreationTime": "2026-01-01T00:00:00Z",
                    "LastModifiedTime": "2026-01-01T00:00:00Z",
                    "MonitoringScheduleStatus": "Scheduled",
                }
            ]
        },
        {"EndpointName": "mlops-dev-endpoint"},
    )
    stub.add_response(
        "delete_monitoring_schedule",
        {},
        {"MonitoringScheduleName": "mlops-dev-endpoint-data-quality"},
    )
    stub.add_client_error("describe_monitoring_schedule", NOT_FOUND)
    stub.add_response(
        "list_data_quality_job_definitions",
        {
            "JobDefinitionSummaries": [
                {
                    "MonitoringJobDefinitionName": "mlops-dev-endpoint-data-quality-v7",
                    "MonitoringJobDefinitionArn": f"{ARN}:data-quality-job-definition/x",
                    "CreationTime": "2026-01-01T00:00:00Z",
                    "EndpointName": "mlops-dev-endpoint",
                }
            ]
        },
        {"EndpointName": "mlops-dev-endpoint", "NameContains": "mlops-dev-endpoint-data-quality"},
    )
    stub.add_response(
        "delete_data_quality_job_definition",
        {},
        {"JobDefinitionName": "mlops-dev-endpoint-data-quality-v7"},
    )
    assert aws.remove_schedules(client, CONFIG, poll=0) == 1


def test_sagemaker_schedules_run_hourly_or_daily_only():
    with pytest.raises(MlopsError, match="every 1h or every 1d"):
        aws.schedule_expression(timedelta(minutes=10), MonitoringSettings())


def test_a_version_without_a_data_baseline_gets_no_schedule(sagemaker):
    client, _ = sagemaker
    bare = DeployedModel(1, MODEL.package_arn, [], "medv", None, None, None, None)
    with pytest.raises(MlopsError, match="no ModelDataQuality baseline"):
        aws.ensure_schedule(client, CONFIG, bare, MonitoringSettings(), image=IMAGE)


def described_definition() -> dict:
    request = aws.job_definition_request(CONFIG, MODEL, MonitoringSettings(), IMAGE)
    request.pop("Tags")
    return {
        **request,
        "JobDefinitionArn": f"{ARN}:data-quality-job-definition/x",
        "CreationTime": "2026-01-01T00:00:00Z",
    }


def described_schedule() -> dict:
    return {
        "MonitoringScheduleArn": f"{ARN}:monitoring-schedule/x",
        "MonitoringScheduleName": "mlops-dev-endpoint-data-quality",
        "MonitoringScheduleStatus": "Scheduled",
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
        "MonitoringScheduleConfig": {},
    }
