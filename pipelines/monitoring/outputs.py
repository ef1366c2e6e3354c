"""What a monitoring execution leaves behind, in Model Monitor's places and formats.

* ``statistics.json`` and ``constraint_violations.json`` under
  ``s3://<bucket>/monitoring/<endpoint>/<schedule>/<yyyy>/<mm>/<dd>/<hh>/`` (the folder
  SageMaker appends to a schedule's ``MonitoringOutputs`` S3 URI);
* the CloudWatch metrics file of a custom monitor ("CloudWatch Metrics for Bring Your Own
  Containers", model-monitor-byoc-cloudwatch): one JSON object per line, shaped like
  ``PutMetricData``'s ``MetricDatum``; the metric names are the built-in container's
  (model-monitor-interpreting-cloudwatch): ``feature_data_<f>`` (statistic values),
  ``feature_non_null_<f>`` and ``feature_baseline_drift_<f>``. On AWS the container's file goes
  to CloudWatch; locally it is written next to the other two files (``cloudwatch_metrics.jsonl``).

Namespaces and dimensions are those the SageMaker SDK's own dashboards query for the built-in
container's metrics (sagemaker-python-sdk ``src/sagemaker/dashboard/data_quality_dashboard.py``
and ``model_quality_dashboard.py``): ``aws/sagemaker/Endpoints/data-metrics`` with ``Endpoint``,
``Feature`` and ``MonitoringSchedule``, and ``aws/sagemaker/Endpoints/model-metrics`` with
``Endpoint`` and ``MonitoringSchedule``. The developer guide's pages disagree with each other
(``/aws/sagemaker/Endpoints/data-metric``, ``/aws/sagemaker/Endpoint/data-metrics``); the alarms
(infra/modules/model_monitoring) and the execution role's ``cloudwatch:namespace`` condition use
the same values (tests/infra/test_monitoring_plan.py checks the three agree).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.errors import MlopsError
from pipelines.core.s3io import parse_s3_uri
from pipelines.monitoring.drift import FeatureDrift

DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
MODEL_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
METRICS_FILE = "cloudwatch_metrics.jsonl"
Json = dict[str, Any]


def output_prefix(bucket: str, endpoint: str, schedule: str, when: datetime) -> str:
    return f"s3://{bucket}/monitoring/{endpoint}/{schedule}/{when.strftime('%Y/%m/%d/%H')}"


def dimensions(endpoint: str, schedule: str, feature: str | None = None) -> list[dict[str, str]]:
    """A metric's dimensions: a feature's data-quality metrics also carry ``Feature``."""
    named = [("Endpoint", endpoint), ("Feature", feature), ("MonitoringSchedule", schedule)]
    return [{"Name": name, "Value": value} for name, value in named if value is not None]


def data_metrics(
    statistics: Json, drifts: Sequence[FeatureDrift], endpoint: str, schedule: str, when: datetime
) -> list[Json]:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    items = max(int(statistics["dataset"]["item_count"]), 1)
    metrics: list[Json] = []
    for feature in statistics["features"]:
        name = feature["name"]
        dims = dimensions(endpoint, schedule, name)
        stats = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        common = stats.get("common", {"num_present": 0})
        metrics.append(
            {
                "MetricName": f"feature_non_null_{name}",
                "Timestamp": stamp,
                "Dimensions": dims,
                "Value": common["num_present"] / items,
            }
        )
        if "numerical_statistics" in feature:
            metrics.append(
                {
                    "MetricName": f"feature_data_{name}",
                    "Timestamp": stamp,
                    "Dimensions": dims,
                    "StatisticValues": {
                        "SampleCount": float(common["num_present"]),
                        "Sum": stats["sum"],
                        "Minimum": stats["min"],
                        "Maximum": stats["max"],
                    },
                }
            )
    for drift in drifts:
        if drift.distance is not None:
            metrics.append(
                {
                    "MetricName": f"feature_baseline_drift_{drift.name}",
                    "Timestamp": stamp,
                    "Dimensions": dimensions(endpoint, schedule, drift.name),
                    "Value": drift.distance,
                }
            )
    return metrics


def model_metrics(statistics: Json, endpoint: str, schedule: str, when: datetime) -> list[Json]:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {
            "MetricName": name,
            "Timestamp": stamp,
            "Dimensions": dimensions(endpoint, schedule),
            "Value": entry["value"],
        }
        for name, entry in statistics.get("regression_metrics", {}).items()
    ]


def write_outputs(s3: Any, prefix: str, documents: dict[str, Any]) -> list[str]:
    """Each document as a file under the prefix (JSON; a list is written as JSON lines)."""
    bucket, key_prefix = parse_s3_uri(prefix)
    written = []
    for name, document in documents.items():
        if isinstance(document, list):
            body = "".join(json.dumps(item, sort_keys=True) + "\n" for item in document)
        else:
            body = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
        key = f"{key_prefix.rstrip('/')}/{name}"
        try:
            s3.put_object(
                Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json"
            )
        except (ClientError, BotoCoreError) as error:
            raise MlopsError(f"Writing s3://{bucket}/{key} failed: {error}") from error
        written.append(f"s3://{bucket}/{key}")
    return written
