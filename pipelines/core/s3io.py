"""S3 transfers for local jobs, through the emulator, as SageMaker performs them.

An ``S3Prefix`` URI names every object whose key starts with it, as S3 and SageMaker
match it; objects under ``<uri>/`` land in the local folder under their key relative
to the URI, any other match (an exact object, ``train.csv.bak`` for ``train``) under
its key relative to the URI's folder. Large files go through boto3's managed
transfers (multipart, threads); small ones through a single request, which is
several times faster for them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from botocore.client import BaseClient

from pipelines.core.errors import MlopsError

# boto3's own multipart threshold: below it a managed transfer is one request anyway.
_SINGLE_REQUEST_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class S3Object:
    key: str
    relative: str  # where it lands below the local folder
    etag: str
    size: int


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` split as S3 means it: everything after the bucket is the key,
    ``#`` and ``?`` included (urlparse would cut them off as fragment and query)."""
    scheme = "s3://"
    if not uri.startswith(scheme):
        raise MlopsError(f"Not an S3 URI: {uri!r}.")
    bucket, _, key = uri[len(scheme) :].partition("/")
    if not bucket:
        raise MlopsError(f"Not an S3 URI: {uri!r}.")
    return bucket, key


def list_objects(s3: BaseClient, uri: str) -> list[S3Object]:
    bucket, key = parse_s3_uri(uri)
    prefix = key.rstrip("/")
    parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    found: list[S3Object] = []
    paginator = s3.get_paginator("list_objects_v2")
    # The raw key is the S3 prefix: with a trailing slash it names only that folder.
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for item in page.get("Contents", []):
            name = item["Key"]
            if name.startswith(prefix + "/") or not prefix:
                relative = name[len(prefix) :].lstrip("/")
            else:
                # S3Prefix is a raw key prefix, as in S3: "data/train" also names
                # "data/train.csv.bak" and "data/train_extra/b.csv", which land under
                # their key relative to the prefix's folder.
                relative = name[len(parent) :]
            if not relative or relative.endswith("/"):
                continue  # folder markers
            found.append(S3Object(name, relative, item["ETag"].strip('"'), item["Size"]))
    return sorted(found, key=lambda o: o.key)


def download(s3: BaseClient, uri: str, destination: Path) -> list[S3Object]:
    bucket, _ = parse_s3_uri(uri)
    objects = list_objects(s3, uri)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    for obj in objects:
        target = (destination / obj.relative).resolve()
        if root not in target.parents:
            raise MlopsError(f"S3 key {obj.key!r} would land outside {destination}.")
        target.parent.mkdir(parents=True, exist_ok=True)
        if obj.size < _SINGLE_REQUEST_BYTES:
            target.write_bytes(s3.get_object(Bucket=bucket, Key=obj.key)["Body"].read())
        else:
            s3.download_file(bucket, obj.key, str(target))
    return objects


def upload_directory(s3: BaseClient, source: Path, uri: str) -> int:
    bucket, key = parse_s3_uri(uri)
    prefix = key.rstrip("/")
    count = 0
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source).as_posix()
        _put(s3, path, bucket, f"{prefix}/{relative}" if prefix else relative)
        count += 1
    return count


def upload_file(s3: BaseClient, source: Path, uri: str) -> None:
    bucket, key = parse_s3_uri(uri)
    _put(s3, source, bucket, key)


def _put(s3: BaseClient, path: Path, bucket: str, key: str) -> None:
    if path.stat().st_size < _SINGLE_REQUEST_BYTES:
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    else:
        s3.upload_file(str(path), bucket, key)


def fingerprint(s3: BaseClient, uri: str) -> str:
    """The content identity of everything a URI names: keys, ETags and sizes."""
    objects = list_objects(s3, uri)
    payload = json.dumps([(o.relative, o.etag, o.size) for o in objects])
    return hashlib.sha256(payload.encode()).hexdigest()


def exists(s3: BaseClient, uri: str) -> bool:
    return bool(list_objects(s3, uri))


def object_sha256(s3: BaseClient, uri: str) -> tuple[str, str | None]:
    """The sha256 of the object a URI names, read through, and its S3 VersionId (None when
    the bucket keeps no versions)."""
    bucket, key = parse_s3_uri(uri)
    response = s3.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    for block in response["Body"].iter_chunks(1 << 20):
        digest.update(block)
    version = response.get("VersionId")
    return digest.hexdigest(), version if version and version != "null" else None
