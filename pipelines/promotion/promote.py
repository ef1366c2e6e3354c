"""``invoke promote --from staging --to prod``: gates on the source stage, an explicit
approval, then a blue/green rollout of the same version to the target stage.

A failed gate leaves the target untouched; the attempt is recorded in its history as
``blocked`` with the figures of every gate.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.promotion_settings import PromotionSettings
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.core.records import StepRun
from pipelines.core.s3io import parse_s3_uri
from pipelines.definition.names import PREPROCESS_STEP
from pipelines.monitoring.results import History
from pipelines.promotion.approval import Approval, check_flags
from pipelines.promotion.gates import GateResult, failed, run_gates
from pipelines.registry import ModelVersion, require_approved
from pipelines.serving.deploy import STAGES, DeploySettings, check_stage
from pipelines.serving.deployer import Rollout, StageDeployer
from pipelines.serving.deployment_records import DeploymentRecord
from pipelines.targets import open_deployer

if TYPE_CHECKING:
    import pandas as pd


class GateFailure(MlopsError):
    def __init__(self, results: list[GateResult], target: str) -> None:
        self.results = results
        names = ", ".join(f"{r.name} ({r.summary})" for r in failed(results))
        super().__init__(f"Promotion blocked, {target} untouched: failed gate(s): {names}.")


@dataclass(frozen=True)
class Promotion:
    version: ModelVersion
    gates: list[GateResult]
    approval: Approval
    rollout: Rollout


# A pipeline module's model package may name its held-out rows (a CSV with a header holding
# the features and the target) in its CustomerMetadataProperties: the accuracy gate's data.
HELD_OUT_DATA = "mlops:held-out-data"


def held_out_split_uri(bucket: str, pipeline: str, version: ModelVersion) -> str:
    """Where the execution that registered ``version`` writes its test split when its
    preprocessing step ran (not a cache hit): the fallback when no step record says."""
    if not version.execution_id:
        raise MlopsError(
            f"Model version {version.version} records no pipeline execution (GeneratedBy) "
            f"and no {HELD_OUT_DATA} in its CustomerMetadataProperties, so its held-out test "
            "split cannot be found (a pipeline module registers the latter: docs/pipelines.md)."
        )
    return f"s3://{bucket}/{pipeline}/{version.execution_id}/{PREPROCESS_STEP}/test/test.csv"


def recorded_split_uri(steps: list[StepRun], sagemaker: Any) -> str | None:
    """The test split the execution's preprocessing step produced, from its record: the
    job's ``ProcessingOutputConfig`` (a cached step points at the run that made it)."""
    step = next((s for s in steps if s.name == PREPROCESS_STEP), None)
    if step is None:
        return None
    outputs = step.properties.get("ProcessingOutputConfig", {}).get("Outputs")
    if outputs is None and step.properties.get("ProcessingJobArn"):
        name = step.properties["ProcessingJobArn"].rsplit("/", 1)[-1]
        job = sagemaker.describe_processing_job(ProcessingJobName=name)
        outputs = job.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for output in outputs or []:
        if output.get("OutputName") == "test":
            return output["S3Output"]["S3Uri"].rstrip("/") + "/test.csv"
    return None


def held_out_test_split(
    source: StageDeployer, version: ModelVersion
) -> tuple[pd.DataFrame, list[float]]:
    uri = version.customer_metadata.get(HELD_OUT_DATA)
    if uri is None and version.execution_id:
        try:
            steps = source.backend().steps(version.execution_id)
            uri = recorded_split_uri(steps, source.connection.client("sagemaker"))
        except (MlopsError, ClientError, BotoCoreError):
            uri = None  # the execution's records are gone: use where it writes the split
    uri = uri or held_out_split_uri(source.config.bucket_name, source.config.pipeline_name, version)
    if not uri.startswith("s3://"):
        raise MlopsError(f"Model version {version.version}'s {HELD_OUT_DATA} is not an S3 URI.")
    bucket, key = parse_s3_uri(uri)
    try:
        body = source.connection.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Cannot read the held-out test split {uri}: {error}") from error
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(body))
    features, target = source.registry.features(version)
    return frame[features], frame[target].astype(float).tolist()


def check_promotion(
    settings: Settings,
    from_stage: str,
    to_stage: str,
    strategy: str | None,
    *,
    allow_backward: bool = False,
    reason: str | None = None,
) -> PromotionSettings:
    """Everything that can be wrong with the arguments and invoke.yaml, before any work.
    A promotion goes forward along the stages (``STAGES``: staging, then prod); backward
    only on purpose, with a reason."""
    if check_stage(from_stage) is None or check_stage(to_stage) is None:
        raise MlopsError("Name both stages: --from staging --to prod.")
    if from_stage == to_stage:
        raise MlopsError(f"--from and --to are both {from_stage!r}: promote between two stages.")
    if STAGES.index(from_stage) > STAGES.index(to_stage):
        order = " → ".join(STAGES)
        if not allow_backward:
            raise MlopsError(
                f"--from {from_stage} --to {to_stage} goes backward along the stages ({order}): "
                "pass --allow-backward --reason TEXT to do it on purpose; nothing was changed."
            )
        if not reason:
            raise MlopsError(
                "--allow-backward needs --reason TEXT, recorded with the deployment; nothing "
                "was changed."
            )
    DeploySettings.from_settings(settings, strategy=strategy)
    return PromotionSettings.from_settings(settings)


def check_downgrade(
    serving: int | None, version: ModelVersion, to_stage: str, *, allowed: bool
) -> str | None:
    """A warning when ``to_stage`` serves a newer version than the one promoted; refused
    unless ``allowed`` (no person confirms it at a terminal)."""
    if serving is None or serving <= version.version:
        return None
    note = (
        f"{to_stage} serves version {serving}, newer than version {version.version}: this "
        f"promotion downgrades {to_stage}."
    )
    if not allowed:
        raise MlopsError(f"{note} Pass --allow-downgrade to do it on purpose; nothing was changed.")
    return note


def promote(
    settings: Settings,
    *,
    from_stage: str,
    to_stage: str,
    approve: Callable[[list[GateResult], ModelVersion], Approval],
    target: str | None = None,
    env: str | None = None,
    strategy: str | None = None,
    approved_by: str | None = None,
    reason: str | None = None,
    allow_backward: bool = False,
    allow_downgrade: bool = False,
    warn: Callable[[str], None] = lambda _: None,
) -> Promotion:
    """Gates, approval (``approve`` sees the gate results first), then the rollout. A
    downgrade of the target is refused unless allowed, or ``warn``ed about before a person
    at a terminal approves (``approved_by`` None)."""
    gate_settings = check_promotion(
        settings, from_stage, to_stage, strategy, allow_backward=allow_backward, reason=reason
    )
    check_flags(approved_by, reason)
    source = open_deployer(settings, target, env, from_stage)
    destination = open_deployer(settings, target, env, to_stage)
    version = source.serving_version()
    require_approved(version)
    downgrade = check_downgrade(
        destination.status().version,
        version,
        to_stage,
        allowed=allow_downgrade or approved_by is None,
    )
    results = run_gates(
        source.ping,
        source.invoker(),
        lambda: held_out_test_split(source, version),
        source.registry.metrics(version),
        gate_settings,
        open_violations(settings, source.endpoint, version.version),
    )
    gates = [r.to_dict() for r in results]
    chosen = DeploySettings.from_settings(settings, strategy=strategy).strategy
    if failed(results):
        destination.record_blocked(
            DeploymentRecord(
                stage=destination.label,
                endpoint=destination.endpoint,
                version=version.version,
                package_arn=version.arn,
                kind="promote",
                strategy=chosen,
                outcome="blocked: " + ", ".join(r.name for r in failed(results)) + " gate failed",
                previous_version=destination.status().version,
                gates=gates,
            )
        )
        raise GateFailure(results, to_stage)
    if downgrade:
        warn(downgrade)
    approval = approve(results, version)
    rollout = destination.deploy(
        version=version, strategy=strategy, kind="promote", approval=approval.to_dict(), gates=gates
    )
    return Promotion(version, results, approval, rollout)


def open_violations(settings: Settings, endpoint: str, version: int) -> int | None:
    """The violations of the latest monitoring run of ``endpoint``, when it checked this
    version; None when monitoring has not checked it yet (the gate is then skipped).
    Reads the local monitoring history: on AWS, the schedule's own results are not read."""
    latest = History(settings.state_dir, endpoint).latest()
    if latest is None or latest.get("version") != version:
        return None
    quality = latest.get("model_quality") or {}
    return len(latest.get("violations") or []) + len(quality.get("violations") or [])
