"""Stage the input data in the artifact bucket, versioned, and record which version ran."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.errors import MlopsError
from pipelines.executor.s3io import parse_s3_uri
from pipelines.infra_config import InfraConfig
from pipelines.settings import PROJECT_ROOT
from pipelines.targets import AwsConnection

SAMPLE_DATA = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
SAMPLE_KEY = "datasets/sample/boston_housing.csv"


@dataclass(frozen=True)
class StagedDataset:
    uri: str
    version_id: str | None
    etag: str
    source: str
    uploaded: bool


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_dataset(
    connection: AwsConnection, config: InfraConfig, data: str | None = None
) -> StagedDataset:
    """Upload a local file (default: the sample data) or point at an S3 object.

    A local file goes to ``datasets/<name>`` (the sample to ``datasets/sample/``);
    an unchanged file is not uploaded again, so its version id stays the same.
    """
    s3 = connection.client("s3")
    try:
        if data is not None and data.startswith("s3://"):
            bucket, key = parse_s3_uri(data)
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
            except ClientError as error:
                raise MlopsError(f"No object at {data}: {error}") from error
            return StagedDataset(data, head.get("VersionId"), head["ETag"].strip('"'), data, False)

        path = Path(data) if data is not None else SAMPLE_DATA
        if not path.is_file():
            raise MlopsError(f"Data file {path} does not exist (or is not a file).")
        key = SAMPLE_KEY if data is None else f"datasets/{path.name}"
        checksum = _sha256(path)
        uploaded = False
        try:
            head = s3.head_object(Bucket=config.bucket_name, Key=key)
            current = head.get("Metadata", {}).get("sha256")
        except ClientError:
            current = None
        if current != checksum:
            s3.upload_file(
                str(path), config.bucket_name, key, ExtraArgs={"Metadata": {"sha256": checksum}}
            )
            uploaded = True
            head = s3.head_object(Bucket=config.bucket_name, Key=key)
        return StagedDataset(
            uri=f"s3://{config.bucket_name}/{key}",
            version_id=head.get("VersionId"),
            etag=head["ETag"].strip('"'),
            source=str(path),
            uploaded=uploaded,
        )
    except (ClientError, BotoCoreError) as error:
        raise MlopsError(f"Could not stage the input data: {error}") from error
