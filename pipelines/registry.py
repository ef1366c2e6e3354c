"""The model registry: versions of the model package group, their approval, their metrics.

Works the same on the emulator and on SageMaker: every version's metrics come from
the evaluation report its package points at (ModelMetrics.ModelQuality), its
features from the data baseline (ModelMetrics.ModelDataQuality), the execution
and commit that produced it from its MetadataProperties, and the sha256 (and S3 version)
of its model and code tarballs from its CustomerMetadataProperties (:data:`ARTIFACTS`),
which the local executor's RegisterModel records and a local deploy checks.

Approval changes hold the registry's lock (a file in the state folder, with ``lock_dir``),
which a deploy also holds while it re-checks a version's approval and switches traffic to
it: a version rejected during a deploy is never served.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.aws import AwsConnection, api_error, is_missing
from pipelines.core.documents import numeric_leaves
from pipelines.core.errors import MlopsError
from pipelines.core.locks import exclusive
from pipelines.core.s3io import parse_s3_uri
from pipelines.definition.code_package import ARTIFACTS
from pipelines.events.publish import model_package_changed

APPROVED = "Approved"
REJECTED = "Rejected"
PENDING = "PendingManualApproval"
STATUSES = (APPROVED, REJECTED, PENDING)


@dataclass(frozen=True)
class ModelVersion:
    arn: str
    version: int
    status: str
    created_at: float
    description: str | None = None
    approval_description: str | None = None
    execution_arn: str | None = None
    commit: str | None = None
    image: str = ""
    model_data_url: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    report_uri: str | None = None
    baseline_uri: str | None = None
    # Which DriftCheckBaselines the version records: "data", "bias", "model".
    drift_baselines: tuple[str, ...] = ()
    customer_metadata: dict[str, str] = field(default_factory=dict)

    @property
    def execution_id(self) -> str | None:
        return self.execution_arn.rsplit("/", 1)[-1] if self.execution_arn else None

    def artifact_sha256(self, artifact: str) -> str | None:
        """The registered sha256 of the ``"model"`` or ``"code"`` tarball, if recorded."""
        return self.customer_metadata.get(ARTIFACTS[artifact].sha256)

    def artifact_version_id(self, artifact: str) -> str | None:
        return self.customer_metadata.get(ARTIFACTS[artifact].version_id)


class Registry:
    def __init__(self, connection: AwsConnection, group: str, lock_dir: Path | None = None) -> None:
        self.connection = connection
        self.group = group
        self.sagemaker = connection.sagemaker()
        self.lock_dir = lock_dir

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry's lock (approval changes, and a deploy's switch of traffic)."""
        if self.lock_dir is None:
            yield
            return
        with exclusive(
            self.lock_dir / f"registry-{self.group}.lock",
            what=f"the lock of the model registry {self.group}",
        ):
            yield

    def versions(self, status: str | None = None) -> list[ModelVersion]:
        """Every version of the group, newest first (optionally one approval status)."""
        if status is not None and status not in STATUSES:
            raise MlopsError(
                f"Unknown approval status {status!r}: use one of {', '.join(STATUSES)}."
            )
        request: dict[str, Any] = {"ModelPackageGroupName": self.group}
        if status:
            request["ModelApprovalStatus"] = status
        try:
            found = [self.describe(arn) for arn in self._arns(request)]
        except (ClientError, BotoCoreError) as error:
            raise api_error(f"Listing the versions of {self.group}", error) from error
        if status:  # the emulator ignores the filter
            found = [v for v in found if v.status == status]
        return sorted(found, key=lambda v: v.version, reverse=True)

    def _arns(self, request: dict[str, Any]) -> list[str]:
        pages = self.sagemaker.get_paginator("list_model_packages").paginate(**request)
        return [s["ModelPackageArn"] for page in pages for s in page["ModelPackageSummaryList"]]

    def delete_all(self) -> int:
        """Delete every version (SageMaker refuses to delete a group that holds any);
        returns how many were deleted, 0 when the group is already gone."""
        try:
            arns = self._arns({"ModelPackageGroupName": self.group})
            for arn in arns:
                self.sagemaker.delete_model_package(ModelPackageName=arn)
        except ClientError as error:
            if is_missing(error):
                return 0
            raise api_error(f"Deleting the model versions of {self.group}", error) from error
        return len(arns)

    def get(self, version: int | None = None) -> ModelVersion:
        """One version by number; the latest when ``version`` is None."""
        versions = self.versions()
        if not versions:
            raise MlopsError(
                f"The model package group {self.group} has no versions yet: "
                "run `invoke pipeline-run` first."
            )
        if version is None:
            return versions[0]
        for found in versions:
            if found.version == version:
                return found
        known = ", ".join(str(v.version) for v in versions)
        raise MlopsError(
            f"Model version {version} does not exist in {self.group} (versions: {known})."
        )

    def latest_approved(self) -> ModelVersion:
        approved = [v for v in self.versions() if v.status == APPROVED]
        if not approved:
            raise MlopsError(
                f"No Approved version in {self.group}. Review the candidates with "
                "`invoke models` and approve one with `invoke model-approve --version N`."
            )
        return approved[0]

    def set_status(self, version: int | None, status: str, reason: str, who: str) -> ModelVersion:
        with self.locked():
            target = self.get(version)
            when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            verb = "approved" if status == APPROVED else "rejected"
            description = f"{verb} by {who} at {when}" + (f": {reason}" if reason else "")
            # The properties again, unchanged: SageMaker keeps them on an update, the
            # emulator (moto 5.2.5) drops those the request leaves out.
            kept = (
                {"CustomerMetadataProperties": target.customer_metadata}
                if target.customer_metadata
                else {}
            )
            try:
                self.sagemaker.update_model_package(
                    ModelPackageArn=target.arn,
                    ModelApprovalStatus=status,
                    ApprovalDescription=description[:1024],
                    **kept,
                )
            except (ClientError, BotoCoreError) as error:
                raise api_error(f"Updating version {target.version}", error) from error
        model_package_changed(self.connection, target.arn)  # the event SageMaker emits
        return self.describe(target.arn)

    def describe(self, arn: str) -> ModelVersion:
        package = self.sagemaker.describe_model_package(ModelPackageName=arn)
        containers = package.get("InferenceSpecification", {}).get("Containers", [{}])
        metrics = package.get("ModelMetrics", {})
        metadata = package.get("MetadataProperties", {})
        created = package.get("CreationTime")
        return ModelVersion(
            arn=arn,
            version=int(package.get("ModelPackageVersion") or arn.rsplit("/", 1)[-1]),
            status=package.get("ModelApprovalStatus", PENDING),
            created_at=created.timestamp() if hasattr(created, "timestamp") else 0.0,
            description=package.get("ModelPackageDescription"),
            approval_description=package.get("ApprovalDescription"),
            execution_arn=metadata.get("GeneratedBy"),
            commit=metadata.get("CommitId"),
            image=containers[0].get("Image", ""),
            model_data_url=containers[0].get("ModelDataUrl", ""),
            environment=dict(containers[0].get("Environment", {})),
            report_uri=metrics.get("ModelQuality", {}).get("Statistics", {}).get("S3Uri"),
            baseline_uri=metrics.get("ModelDataQuality", {}).get("Statistics", {}).get("S3Uri"),
            drift_baselines=drift_baseline_kinds(package.get("DriftCheckBaselines") or {}),
            customer_metadata=dict(package.get("CustomerMetadataProperties") or {}),
        )

    # --- what a version's reports say ---------------------------------------------------------

    def _read_json(self, uri: str) -> Any:
        bucket, key = parse_s3_uri(uri)
        try:
            body = self.connection.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise api_error(f"Reading {uri}", error) from error
        return json.loads(body)

    def metrics(self, version: ModelVersion, part: str = "value") -> dict[str, float]:
        """``{"r2": 0.87, "rmse": 2.97, ...}`` from the version's evaluation report;
        ``part="standard_deviation"``: each metric's ± where the report has one."""
        if not version.report_uri:
            return {}
        try:
            report = self._read_json(version.report_uri)
        except MlopsError:
            return {}
        suffix = f".{part}"
        return {
            path.removesuffix(suffix).rsplit(".", 1)[-1]: value
            for path, value in numeric_leaves(report)
            if path.endswith(suffix)
        }

    def features(self, version: ModelVersion) -> tuple[list[str], str]:
        """The feature columns (in model order) and the target: from the evaluation report's
        metadata, or, for versions registered before the quality checks, the data baseline
        preprocess wrote (both carry ``features`` and ``target``)."""
        for uri in (version.report_uri, version.baseline_uri):
            if not uri:
                continue
            document = self._read_json(uri)
            described = document.get("metadata", document)
            if "features" in described and "target" in described:
                return list(described["features"]), str(described["target"])
        raise MlopsError(f"Model version {version.version} has no feature list registered.")


_DRIFT_KINDS = {"ModelDataQuality": "data", "Bias": "bias", "ModelQuality": "model"}


def drift_baseline_kinds(drift: dict[str, Any]) -> tuple[str, ...]:
    """The kinds of drift-check baseline a model package records, in a fixed order."""
    return tuple(kind for key, kind in _DRIFT_KINDS.items() if drift.get(key))


def require_approved(version: ModelVersion) -> None:
    if version.status != APPROVED:
        raise MlopsError(
            f"Model version {version.version} is {version.status}; only Approved versions can "
            "be deployed. Approve it first with "
            f"`invoke model-approve --version {version.version}`."
        )


# Which way a metric improves: errors shrink, R² grows (the evaluation report's metrics).
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse"})
HIGHER_IS_BETTER = frozenset({"r2"})


@dataclass(frozen=True)
class MetricDelta:
    name: str
    value: float
    champion: float

    @property
    def delta(self) -> float:
        return self.value - self.champion

    @property
    def verdict(self) -> str:
        """better, worse or same, as the metric's direction says."""
        if self.delta == 0:
            return "same"
        higher = self.delta > 0
        return "better" if higher == (self.name in HIGHER_IS_BETTER) else "worse"


def compare_metrics(metrics: dict[str, float], champion: dict[str, float]) -> list[MetricDelta]:
    """Each metric both have whose direction is known, in the order of ``metrics``."""
    known = LOWER_IS_BETTER | HIGHER_IS_BETTER
    return [
        MetricDelta(name, value, champion[name])
        for name, value in metrics.items()
        if name in known and name in champion
    ]


def champion_of(registry: Registry, excluding: int | None = None) -> ModelVersion | None:
    """The Approved version a new one is measured against: the newest Approved, other
    than ``excluding`` (the new one itself, once approved)."""
    approved = [
        v for v in registry.versions(APPROVED) if v.status == APPROVED and v.version != excluding
    ]
    return approved[0] if approved else None
