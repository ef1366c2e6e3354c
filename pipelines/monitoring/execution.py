"""One monitoring execution of the deployed endpoint, on either target.

The deployed version is found as SageMaker finds it (endpoint -> endpoint config -> model ->
model package; the local endpoint records itself in the emulator the same way), its
baselines in the package's ``ModelMetrics`` (``ModelDataQuality``, ``ModelQuality``), the
captured requests in its data capture destination.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.infra_config import InfraConfig
from pipelines.config.monitoring_settings import MonitoringSettings
from pipelines.config.settings import Settings
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.core.s3io import parse_s3_uri
from pipelines.executor.checks import load_analyzer
from pipelines.monitoring import alerts, drift, outputs, quality
from pipelines.monitoring import capture_reader as capture
from pipelines.monitoring.results import History
from pipelines.registry import Registry
from pipelines.serving import deploy

if TYPE_CHECKING:
    from pipelines.monitoring.dataset import CurrentDataset

EXIT_OK = 0
EXIT_VIOLATIONS = 3
Json = dict[str, Any]


def schedule_name(config: InfraConfig, stage: str | None = None) -> str:
    """The endpoint's data-quality monitoring schedule (Terraform's output)."""
    return config.monitoring_schedule_name(stage)


@dataclass(frozen=True)
class DeployedModel:
    version: int
    package_arn: str
    features: list[str]
    target: str
    data_statistics: str | None
    data_constraints: str | None
    quality_statistics: str | None
    quality_constraints: str | None


def deployed_model(
    connection: AwsConnection, config: InfraConfig, stage: str | None = None
) -> DeployedModel:
    """What the endpoint serves; ``stage``: the key of its names in the outputs (locally a
    stage's own endpoint; None: the environment's)."""
    arn = deploy.deployed_package_arn(connection, config, stage)
    registry = Registry(connection, config.model_package_group_name)
    version = registry.describe(arn)
    features, target = registry.features(version)
    package = registry.sagemaker.describe_model_package(ModelPackageName=arn)
    metrics = package.get("ModelMetrics") or {}

    def uri(kind: str, part: str) -> str | None:
        return (metrics.get(kind) or {}).get(part, {}).get("S3Uri")

    return DeployedModel(
        version.version,
        arn,
        features,
        target,
        uri("ModelDataQuality", "Statistics"),
        uri("ModelDataQuality", "Constraints"),
        uri("ModelQuality", "Statistics"),
        uri("ModelQuality", "Constraints"),
    )


def read_json(s3: Any, uri: str, what: str) -> Json:
    bucket, key = parse_s3_uri(uri)
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Reading the {what} {uri} failed: {error}") from error


@dataclass
class MonitoringResult:
    endpoint: str
    schedule: str
    version: int
    started: datetime
    window: capture.Window
    records: int = 0
    skipped: int = 0  # captured records that are not CSV
    unparsable: int = 0  # CSV records that are not rows of the features (a header row)
    drifts: list[drift.FeatureDrift] = field(default_factory=list)
    violations: list[Json] = field(default_factory=list)
    quality: quality.ModelQuality | None = None
    output_prefix: str | None = None
    written: list[str] = field(default_factory=list)
    alarms: dict[str, str] = field(default_factory=dict)
    notifications: list[Json] = field(default_factory=list)
    hooks: list[alerts.HookResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def all_violations(self) -> list[Json]:
        return self.violations + (self.quality.violations if self.quality else [])

    @property
    def exit_code(self) -> int:
        return EXIT_VIOLATIONS if self.all_violations else EXIT_OK

    def to_record(self) -> Json:
        return {
            "endpoint": self.endpoint,
            "schedule": self.schedule,
            "version": self.version,
            "started": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "window": [
                self.window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                self.window.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            ],
            "records": self.records,
            "skipped": self.skipped,
            "unparsable": self.unparsable,
            "features": [d.to_dict() for d in self.drifts],
            "violations": self.violations,
            "model_quality": (
                {
                    "metrics": self.quality.metrics,
                    "violations": self.quality.violations,
                    "matched": self.quality.matched,
                }
                if self.quality
                else None
            ),
            "output": self.output_prefix,
            "alarms": self.alarms,
            "exit_code": self.exit_code,
        }


def analyze_window(
    analyzer: ModuleType,
    source: capture.CaptureSource,
    endpoint: str,
    window: capture.Window,
    features: list[str],
    *,
    prediction_column: str | None = None,
    keep_outputs: bool = False,
    chunk_records: int = 50_000,
) -> tuple[CurrentDataset, int, dict[str, list[float]]]:
    """The window's captured requests as the current dataset (streamed, chunk by chunk);
    the number of non-CSV records skipped; and, when asked, the predictions by inference id.

    With ``prediction_column``, each row is the response's prediction, under that name, then
    the request's features: the dataset Model Monitor builds from a capture with its output,
    to match a baseline whose first column is the target ("the prediction/output columns
    are assumed to be the first columns", developer guide, model-monitor-create-baseline).
    """
    from pipelines.monitoring.dataset import CurrentDataset  # pandas, only when it runs

    merge = prediction_column is not None
    columns = [prediction_column, *features] if merge else features
    dataset = CurrentDataset(analyzer, columns)
    skipped = 0
    inferences: dict[str, list[float]] = {}
    for chunk in capture.read_chunks(
        source, endpoint, window, chunk_records, keep_outputs or merge
    ):
        if merge:
            bodies, unmatched = with_predictions(chunk.csv_inputs, chunk.outputs)
            dataset.unparsable += unmatched
        else:
            bodies = chunk.csv_inputs
        dataset.add_csv(bodies)
        skipped += chunk.skipped
        if keep_outputs:
            inferences.update(quality.captured_inferences(chunk.inference_ids, chunk.outputs))
    return dataset, skipped, inferences


def with_predictions(bodies: list[str], outputs: list[tuple[str, str]]) -> tuple[list[str], int]:
    """Each request's rows with its response's predictions first; requests whose response
    does not hold one prediction per row are left out and counted."""
    merged, unmatched = [], 0
    for body, (data, encoding) in zip(bodies, outputs, strict=True):
        rows = [line for line in body.splitlines() if line.strip()]
        try:
            predictions = capture.predictions_of(data, encoding)
        except (MlopsError, ValueError, TypeError, AttributeError):
            predictions = []
        if not rows or len(predictions) != len(rows):
            unmatched += 1
            continue
        merged.append("\n".join(f"{p!r},{row}" for p, row in zip(predictions, rows, strict=True)))
    return merged, unmatched


def run_monitoring(
    settings: Settings,
    connection: AwsConnection,
    config: InfraConfig,
    *,
    since: timedelta = timedelta(hours=1),
    ground_truth: Path | None = None,
    source: capture.CaptureSource | None = None,
    now: datetime | None = None,
    stage: str | None = None,
) -> MonitoringResult:
    """A data-quality (and with ground truth, model-quality) monitoring execution of the
    endpoint ``stage`` names in the outputs (None: the environment's own); its alarm
    notifications are in the result, for the caller to show."""
    monitoring = MonitoringSettings.from_settings(settings)
    started = now or datetime.now(UTC)
    clock = datetime.now(UTC)
    endpoint, schedule = deploy.endpoint_name(config, stage), schedule_name(config, stage)
    model = deployed_model(connection, config, stage)
    if not model.data_statistics or not model.data_constraints:
        raise MlopsError(
            f"Model version {model.version} has no ModelDataQuality baseline in its ModelMetrics "
            "(it was registered before the data-quality check): nothing to compare with."
        )
    labels = quality.read_ground_truth(ground_truth, model.target) if ground_truth else None
    s3 = connection.client("s3")
    analyzer = load_analyzer()
    window = capture.Window.since(since, started)
    result = MonitoringResult(endpoint, schedule, model.version, started, window)
    source = source or capture.S3CaptureSource(s3, deploy.capture_destination(config))
    dataset, result.skipped, inferences = analyze_window(
        analyzer,
        source,
        endpoint,
        window,
        model.features,
        prediction_column=model.target,
        keep_outputs=labels is not None,
    )
    result.records = dataset.rows
    result.unparsable = dataset.unparsable
    history = History(settings.state_dir, endpoint, monitoring.keep_results)
    if dataset.rows == 0:
        # Counted (a schedule's quiet hour); like the alarms' treat_missing_data =
        # notBreaching on AWS, no data leaves every alarm OK.
        history.add(result.to_record())
        result.seconds = (datetime.now(UTC) - clock).total_seconds()
        return result

    # The whole baseline, target column included, as the AWS job definition uses it: the
    # current dataset's first column is the prediction, in the target's place.
    base_statistics = read_json(s3, model.data_statistics, "baseline statistics")
    base_constraints = read_json(s3, model.data_constraints, "baseline constraints")
    statistics = dataset.statistics()
    result.violations, result.drifts = drift.check(
        analyzer, statistics, base_statistics, base_constraints
    )
    documents: dict[str, Any] = {
        analyzer.STATISTICS_FILE: statistics,
        analyzer.VIOLATIONS_FILE: analyzer.violations_document(result.violations),
    }
    metrics = outputs.data_metrics(statistics, result.drifts, endpoint, schedule, started)
    quality_constraints: Json = {}
    if labels is not None:
        quality_constraints = (
            read_json(s3, model.quality_constraints, "model-quality constraints")
            if model.quality_constraints
            else {}
        )
        quality_baseline = (
            read_json(s3, model.quality_statistics, "model-quality baseline")
            if model.quality_statistics
            else None
        )
        result.quality = quality.evaluate(
            analyzer, quality.join(labels, inferences), quality_constraints, quality_baseline
        )
        documents["model_quality_statistics.json"] = result.quality.statistics
        documents["model_quality_constraint_violations.json"] = analyzer.violations_document(
            result.quality.violations
        )
        metrics += outputs.model_metrics(result.quality.statistics, endpoint, schedule, started)
    documents[outputs.METRICS_FILE] = metrics
    result.output_prefix = outputs.output_prefix(config.bucket_name, endpoint, schedule, started)
    result.written = outputs.write_outputs(s3, result.output_prefix, documents)

    quality_violations = [
        {
            **v,
            "threshold": quality_constraints.get("regression_constraints", {})
            .get(v["metric_name"], {})
            .get("threshold", 0.0),
        }
        for v in (result.quality.violations if result.quality else [])
    ]
    result.alarms, changes = alerts.evaluate_alarms(
        endpoint,
        schedule,
        result.drifts,
        quality_violations,
        result.quality.metrics if result.quality else {},
        {} if history.quiet_since_latest() else alerts.alarm_states(history.latest()),
        started,
    )
    result.notifications = [
        alerts.alarm_message(change, config.region, config.account_id, started)
        for change in changes
    ]
    history.add(result.to_record())
    if result.notifications:
        payload = {
            "alarms": result.notifications,
            "violations": result.all_violations,
            "monitoringExecution": {
                "endpoint": endpoint,
                "schedule": schedule,
                "modelVersion": model.version,
                "output": result.output_prefix,
                "records": result.records,
            },
        }
        result.hooks = alerts.call_hooks(
            payload, monitoring.alert_command, monitoring.alert_webhook
        )
    result.seconds = (datetime.now(UTC) - clock).total_seconds()
    return result
