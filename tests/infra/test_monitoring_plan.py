"""Plan checks of model monitoring's alerting (infra/modules/model_monitoring): the drift alarms
on the monitoring schedule's metrics, the KMS-encrypted topic, and plan.md listing them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.monitoring.alerts import drift_alarm_name
from pipelines.monitoring.outputs import DATA_METRICS_NAMESPACE, data_metrics
from pipelines.stack.plan_review import render_markdown, summarize_plan
from tests.infra.conftest import PlanFn, resources_by_address

MODULE = "module.model_monitoring"
ENDPOINT = "mlops-local-endpoint"
SCHEDULE = "mlops-local-endpoint-data-quality"
# The prediction, under the target's name, is monitored beside the features.
FEATURES = (
    "medv",
    "crim",
    "zn",
    "indus",
    "chas",
    "nox",
    "rm",
    "age",
    "dis",
    "rad",
    "tax",
    "ptratio",
    "b",
    "lstat",
)
SUBSCRIBED = {
    "alarm_subscriptions": '[{protocol = "email", endpoint = "team@example.com"}]',
    "monitored_features": '["rm", "lstat"]',
    "drift_threshold": "0.2",
}


@pytest.fixture(scope="module")
def plan(plan_infra: PlanFn):
    return plan_infra()


@pytest.fixture(scope="module")
def resources(plan) -> dict[str, dict[str, Any]]:
    return resources_by_address(plan)


def test_one_drift_alarm_per_feature_on_the_schedules_metric(resources):
    alarms = {
        values["alarm_name"]: values
        for address, values in resources.items()
        if address.startswith(f"{MODULE}.aws_cloudwatch_metric_alarm.drift[")
    }
    # The names the local run shows (pipelines/monitoring/alerts.py) are the AWS alarms' names.
    assert set(alarms) == {drift_alarm_name(ENDPOINT, f) for f in FEATURES}
    rm = alarms[drift_alarm_name(ENDPOINT, "rm")]
    assert rm["namespace"] == DATA_METRICS_NAMESPACE
    assert rm["metric_name"] == "feature_baseline_drift_rm"
    assert rm["dimensions"] == {
        "Endpoint": ENDPOINT,
        "Feature": "rm",
        "MonitoringSchedule": SCHEDULE,
    }
    assert rm["comparison_operator"] == "GreaterThanThreshold"
    assert rm["threshold"] == 0.1
    assert rm["treat_missing_data"] == "notBreaching"


def test_the_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(plan, resources):
    assert resources[f"{MODULE}.aws_sns_topic.this"]["name"] == "mlops-local-alerts"
    topic_change = next(
        c for c in plan["resource_changes"] if c["address"] == f"{MODULE}.aws_sns_topic.this"
    )
    assert topic_change["change"]["after_unknown"]["kms_master_key_id"] is True  # the new key
    key = resources[f"{MODULE}.aws_kms_key.this"]
    assert key["enable_key_rotation"] is True
    statements = {s["Sid"]: s for s in json.loads(key["policy"])["Statement"]}
    cloudwatch = statements["CloudWatchAlarmsPublishEncrypted"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_subscriptions_and_threshold_are_variables(plan_infra: PlanFn):
    resources = resources_by_address(plan_infra(**SUBSCRIBED))
    subscription = resources[f'{MODULE}.aws_sns_topic_subscription.this["email:team@example.com"]']
    assert subscription["protocol"] == "email"
    alarms = [a for a in resources if a.startswith(f"{MODULE}.aws_cloudwatch_metric_alarm.drift[")]
    assert len(alarms) == 2
    assert resources[f'{MODULE}.aws_cloudwatch_metric_alarm.drift["rm"]']["threshold"] == 0.2


def test_plan_md_lists_the_alarms_and_the_topic(plan):
    markdown = render_markdown(summarize_plan(plan._raw), title="Terraform plan: local")
    assert f"`{MODULE}.aws_sns_topic.this`" in markdown
    assert "SNS topic `mlops-local-alerts`, encrypted with key `(known after apply)`" in markdown
    assert (
        f"alarm `{drift_alarm_name(ENDPOINT, 'rm')}`: Maximum of "
        "`aws/sagemaker/Endpoints/data-metrics feature_baseline_drift_rm` "
        f"(Endpoint={ENDPOINT}, Feature=rm, MonitoringSchedule={SCHEDULE}) GreaterThanThreshold 0.1"
    ) in markdown
    assert "CloudWatchAlarmsOfThisAccountPublish" in markdown
    assert "SNS topic not encrypted" not in markdown


def test_the_execution_role_covers_the_monitoring_job_and_nothing_wider(resources):
    """The job reads the capture and the baseline, writes monitoring/, puts its metrics and
    logs: the role's policy allows exactly that already; it may not manage schedules."""
    from fnmatch import fnmatch

    policy = json.loads(
        resources["module.sagemaker_execution_role.aws_iam_role_policy.this"]["policy"]
    )
    allowed = [
        (action, resource, s.get("Condition", {}))
        for s in policy["Statement"]
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        for resource in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    ]
    bucket = "arn:aws:s3:::mlops-local-artifacts-123456789012-us-east-1"

    def allows(action: str, resource: str) -> list[dict]:
        return [c for a, r, c in allowed if a == action and fnmatch(resource, r)]

    assert allows("s3:GetObject", f"{bucket}/datacapture/mlops-local-endpoint/AllTraffic/x.jsonl")
    assert allows("s3:PutObject", f"{bucket}/monitoring/mlops-local-endpoint/s/2026/01/01/00/x")
    (condition,) = allows("cloudwatch:PutMetricData", "*")
    (namespaces,) = condition["StringLike"].values()
    assert any(fnmatch(DATA_METRICS_NAMESPACE, n) for n in namespaces)
    assert not [a for a, _, _ in allowed if "Monitoring" in a or a in ("sagemaker:*", "*")]


def test_alarms_iam_and_the_published_metrics_agree(resources):
    """One namespace and one dimension set for the drift metric, from the authoritative
    source: the SageMaker SDK's own data-quality dashboard for Model Monitor's built-in
    container, https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/
    dashboard/data_quality_dashboard.py (``{aws/sagemaker/Endpoints/data-metrics,Endpoint,
    Feature,MonitoringSchedule}``). The developer guide's pages disagree with each other
    (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-interpreting-cloudwatch.html
    says ``/aws/sagemaker/Endpoints/data-metric``)."""
    from datetime import UTC, datetime
    from fnmatch import fnmatch

    from pipelines.monitoring.drift import FeatureDrift

    alarm = resources[f'{MODULE}.aws_cloudwatch_metric_alarm.drift["rm"]']
    policy = json.loads(
        resources["module.sagemaker_execution_role.aws_iam_role_policy.this"]["policy"]
    )
    (metrics_grant,) = [s for s in policy["Statement"] if s["Sid"] == "JobMetrics"]
    granted = metrics_grant["Condition"]["StringLike"]["cloudwatch:namespace"]
    statistics = {
        "dataset": {"item_count": 2},
        "features": [
            {
                "name": "rm",
                "numerical_statistics": {
                    "common": {"num_present": 2},
                    "sum": 1.0,
                    "min": 0.0,
                    "max": 1.0,
                },
            }
        ],
    }
    drift = FeatureDrift("rm", None, None, distance=0.3, threshold=0.1, violations=())
    (published,) = [
        m
        for m in data_metrics(statistics, [drift], ENDPOINT, SCHEDULE, datetime.now(UTC))
        if m["MetricName"] == "feature_baseline_drift_rm"
    ]
    assert alarm["namespace"] == DATA_METRICS_NAMESPACE == "aws/sagemaker/Endpoints/data-metrics"
    assert DATA_METRICS_NAMESPACE in granted  # exactly, not only through a wildcard
    assert not any(
        fnmatch(DATA_METRICS_NAMESPACE, n) for n in granted if n != DATA_METRICS_NAMESPACE
    )
    assert alarm["dimensions"] == {d["Name"]: d["Value"] for d in published["Dimensions"]}
    assert alarm["metric_name"] == published["MetricName"]
