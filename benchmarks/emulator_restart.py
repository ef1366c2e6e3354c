"""Time an emulator restart with a large durable state (issue 12: goal <= 10 s).

    python benchmarks/emulator_restart.py [--gigabytes 1.0] [--versions 100] [--repeat 3]

Fills a fresh emulator (own state folder, free port, loopback only) with objects
totalling --gigabytes and --versions model package versions (half approved), then
stops it and times start-to-ready: restoring the snapshots and answering over
HTTPS. A kill -9 restart is timed too. Every restart is checked: object count,
a spot-checked body, the versions and their approvals. The temporary folder is
removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from pipelines.core.aws import AwsConnection
from pipelines.emulator import Emulator

BUCKET = "restart-benchmark"
GROUP = "restart-benchmark"
OBJECT_BYTES = 8 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connect(emulator: Emulator) -> AwsConnection:
    info = emulator.require_running()
    return AwsConnection.for_emulator(info.endpoint, emulator.tls.ca_cert, "us-east-1")


def fill(emulator: Emulator, gigabytes: float, versions: int) -> tuple[int, dict[str, str]]:
    connection = connect(emulator)
    s3 = connection.client("s3", max_pool_connections=8)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    count = max(1, int(gigabytes * 1e9 // OBJECT_BYTES))
    digests: dict[str, str] = {}

    def put(index: int) -> None:
        body = os.urandom(OBJECT_BYTES)
        key = f"objects/{index:05d}.bin"
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        digests[key] = hashlib.sha256(body).hexdigest()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(put, range(count)))

    sagemaker = connection.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    for number in range(1, versions + 1):
        arn = sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": "example/sklearn:1"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )["ModelPackageArn"]
        if number % 2 == 0:
            sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    return count, digests


def check(emulator: Emulator, count: int, digests: dict[str, str], versions: int) -> None:
    connection = connect(emulator)
    s3 = connection.client("s3")
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    assert len(keys) == count, (len(keys), count)
    key = keys[len(keys) // 2]
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digests[key], key
    sagemaker = connection.client("sagemaker")
    packages = [
        p
        for page in sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=GROUP
        )
        for p in page["ModelPackageSummaryList"]
    ]
    assert len(packages) == versions, len(packages)
    approved = sum(p["ModelApprovalStatus"] == "Approved" for p in packages)
    assert approved == versions // 2, approved


def timed_start(emulator: Emulator) -> float:
    started = time.perf_counter()
    info, fresh = emulator.start()
    elapsed = time.perf_counter() - started
    assert fresh, info
    assert info.restored, info
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="emulator-restart-"))
    emulator = Emulator(root / "emulator", free_port())
    try:
        emulator.start()
        mark = time.perf_counter()
        count, digests = fill(emulator, args.gigabytes, args.versions)
        fill_seconds = time.perf_counter() - mark
        data_bytes = sum(p.stat().st_size for p in emulator.data_dir.rglob("*") if p.is_file())

        clean: list[float] = []
        for _ in range(args.repeat):
            emulator.stop()
            clean.append(timed_start(emulator))
            check(emulator, count, digests, args.versions)

        killed: list[float] = []
        for _ in range(args.repeat):
            pid = emulator.require_running().pid
            psutil.Process(pid).kill()
            psutil.Process(pid).wait(timeout=10)
            killed.append(timed_start(emulator))
            check(emulator, count, digests, args.versions)

        print(f"objects: {count} x {OBJECT_BYTES / 1e6:.1f} MB, model versions: {args.versions}")
        print(f"durable state on disk: {data_bytes / 1e9:.2f} GB (filled in {fill_seconds:.1f} s)")
        print(f"restart after emulator-down: median {statistics.median(clean):.2f} s {clean}")
        print(f"restart after kill -9:       median {statistics.median(killed):.2f} s {killed}")
        print("goal: <= 10 s; every restart checked: objects, a body, versions, approvals")
    finally:
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
