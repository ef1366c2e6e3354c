"""Stage the input data in the artifact bucket, immutably, and record which version ran.

A local file is uploaded to a content-addressed key, ``datasets/<sha256>/<name>``,
and the run reads that key: nothing else is ever written there, so what a job reads
is what lineage records, however many runs stage files of the same name at once.
A plain S3 URI is an ordinary key that anyone may overwrite, so it is first copied
to its content-addressed key as well (``etag`` names the bytes copied). The friendly
``datasets/<name>`` key still receives every upload, as a versioned alias whose
history lists what ran; lineage records the alias version that holds these bytes.
The definition's ``InputDataUrl`` is a plain S3 URI either way, valid on SageMaker.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import PROJECT_ROOT
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.core.s3io import parse_s3_uri

SAMPLE_DATA = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
DATASET_PREFIX = "datasets/"
SAMPLE_KEY = f"{DATASET_PREFIX}sample/boston_housing.csv"
# Where new data starts a retraining run: infra/variables.tf's automation.dataset_prefix
# default (tests/infra/test_automation_plan.py checks they agree). The applied rule's own
# pattern is read when there is one; this is the prefix without automation.
NEW_DATA_PREFIX = f"{DATASET_PREFIX}incoming/"
# What the builds accept after the prefix (infra/modules/delivery's DATA_URI check).
_NEW_DATA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class StagedDataset:
    uri: str  # the versioned alias: s3://bucket/datasets/<name>
    version_id: str | None  # the alias version that holds exactly these bytes
    etag: str
    source: str
    uploaded: bool
    read_uri: str = ""  # what the run reads: the content-addressed, never-rewritten key
    sha256: str = ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_key(sha256: str, name: str) -> str:
    """Where a body with this digest lives; the name keeps the file's extension."""
    return f"{DATASET_PREFIX}{sha256}/{name}"


def check_data_argument(data: str | None) -> None:
    """Fail before any work (infra-up takes minutes) when a local --data file is missing."""
    if data is None or data.startswith("s3://"):
        if data is not None:
            parse_s3_uri(data)
        return
    path = Path(data)
    if not path.is_file():
        raise MlopsError(f"Data file {path} does not exist (or is not a file).")


def stage_dataset(
    connection: AwsConnection, config: InfraConfig, data: str | None = None
) -> StagedDataset:
    """Upload a local file (default: the sample data) or pin an S3 object's bytes.

    An unchanged file is not uploaded again: its content-addressed key exists.
    """
    s3 = connection.client("s3")
    try:
        if data is not None and data.startswith("s3://"):
            return _pin_s3_object(s3, config, data)
        path = Path(data) if data is not None else SAMPLE_DATA
        if not path.is_file():
            raise MlopsError(f"Data file {path} does not exist (or is not a file).")
        checksum = _sha256(path)
        bucket = config.bucket_name
        immutable = content_key(checksum, path.name)
        alias = SAMPLE_KEY if data is None else f"{DATASET_PREFIX}{path.name}"
        uploaded = False
        head = _head(s3, bucket, immutable)
        if head is None:
            s3.upload_file(
                str(path), bucket, immutable, ExtraArgs={"Metadata": {"sha256": checksum}}
            )
            head = s3.head_object(Bucket=bucket, Key=immutable)
            uploaded = True
        version_id = _alias_version(s3, bucket, alias, immutable, checksum)
        return StagedDataset(
            uri=f"s3://{bucket}/{alias}",
            version_id=version_id,
            etag=head["ETag"].strip('"'),
            source=str(path),
            uploaded=uploaded,
            read_uri=f"s3://{bucket}/{immutable}",
            sha256=checksum,
        )
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Could not stage the input data: {error}") from error


def _head(s3: BaseClient, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _alias_version(
    s3: BaseClient, bucket: str, alias: str, source: str, checksum: str
) -> str | None:
    """The alias version holding ``checksum``: the current one if it already does,
    else a new one copied from the content-addressed key (server side, no upload)."""
    current = _head(s3, bucket, alias)
    if current is not None and current.get("Metadata", {}).get("sha256") == checksum:
        return current.get("VersionId")
    copied = s3.copy_object(
        Bucket=bucket,
        Key=alias,
        CopySource={"Bucket": bucket, "Key": source},
        MetadataDirective="COPY",
    )
    return copied.get("VersionId")


def _pin_s3_object(s3: BaseClient, config: InfraConfig, uri: str) -> StagedDataset:
    """An S3 object can be overwritten while a run reads it: read a pinned copy."""
    bucket, key = parse_s3_uri(uri)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        raise MlopsError(f"No object at {uri}: {error}") from error
    version_id = head.get("VersionId")
    etag = head["ETag"].strip('"')
    name = key.rsplit("/", 1)[-1] or "data"
    source: dict[str, str] = {"Bucket": bucket, "Key": key}
    if version_id and version_id != "null":
        source["VersionId"] = version_id
    # The ETag of a single-part upload is its MD5; either way it names these bytes.
    immutable = content_key(f"etag-{etag.replace('-', '_')}", name)
    if _head(s3, config.bucket_name, immutable) is None:
        # A managed copy: objects over 5 GB need a multipart copy.
        s3.copy(source, config.bucket_name, immutable)
    return StagedDataset(
        uri=uri,
        version_id=version_id,
        etag=etag,
        source=uri,
        uploaded=False,
        read_uri=f"s3://{config.bucket_name}/{immutable}",
    )


@dataclass(frozen=True)
class NewDataRule:
    """The automation rule that starts a run on new data, as applied."""

    name: str | None  # None: automation is off, no rule
    prefix: str
    enabled: bool = False
    targets: tuple[str, ...] = ()  # what EventBridge delivers the event to


def new_data_rule(connection: AwsConnection, rule: str | None) -> NewDataRule:
    """The rule's key prefix, state and targets, read from EventBridge (its pattern is
    ``detail.object.key: [{"prefix": ...}]``)."""
    if not rule:
        return NewDataRule(None, NEW_DATA_PREFIX)
    events = connection.client("events")
    try:
        described = events.describe_rule(Name=rule)
        targets = events.list_targets_by_rule(Rule=rule).get("Targets", [])
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Could not read the EventBridge rule {rule}: {error}") from error
    pattern = json.loads(described.get("EventPattern") or "{}")
    keys = pattern.get("detail", {}).get("object", {}).get("key", [])
    prefix = next((k["prefix"] for k in keys if isinstance(k, dict) and "prefix" in k), None)
    if not prefix:
        raise MlopsError(f"The EventBridge rule {rule} matches no key prefix: re-run infra-up.")
    enabled = described.get("State") == "ENABLED"
    return NewDataRule(rule, prefix, enabled, tuple(t["Arn"] for t in targets))


def check_new_data_file(path: Path) -> Path:
    if not path.is_file():
        raise MlopsError(f"Data file {path} does not exist (or is not a file).")
    if not _NEW_DATA_NAME.match(path.name):
        raise MlopsError(
            f"Data file {path.name!r} must be named with letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit), as the builds accept it: rename it."
        )
    return path


def upload_new_data(
    connection: AwsConnection, bucket: str, prefix: str, path: Path
) -> tuple[str, str | None]:
    """Put the file under the prefix (the bucket is versioned: an upload of the same name
    is a new version); (its URI, its version id)."""
    key = f"{prefix}{path.name}"
    s3 = connection.client("s3")
    try:
        s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": _sha256(path)}})
        version = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Could not upload {path} to s3://{bucket}/{key}: {error}") from error
    return f"s3://{bucket}/{key}", version
