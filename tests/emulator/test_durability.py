"""Durable emulator state and one emulator per state directory (issue 12, items 1 and 4).

Every test runs a real emulator process: writes are acknowledged over HTTPS, the
process is stopped or killed -9, a new one starts on the same state directory, and
the writes must all be there.
"""

from __future__ import annotations

import json
import threading

import psutil
import pytest

from pipelines.core.aws import AwsConnection
from pipelines.emulator import Emulator
from pipelines.emulator.durability import classify
from tests.support import free_port

BUCKET = "durable-bucket"
GROUP = "durable-group"


@pytest.fixture
def emulator(tmp_path):
    instance = Emulator(tmp_path / "emulator", free_port())
    yield instance
    instance.stop()


def _connection(emulator: Emulator) -> AwsConnection:
    info = emulator.require_running()
    return AwsConnection.for_emulator(info.endpoint, emulator.tls.ca_cert, "us-east-1")


def _write_everything(connection: AwsConnection) -> dict[str, object]:
    """One acknowledged write of each kind the project relies on."""
    s3 = connection.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=BUCKET, Key="data/a#b?.csv", Body=b"x,y\n1,2\n")["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key="data/a#b?.csv", Body=b"x,y\n3,4\n")["VersionId"]
    big = bytes(range(256)) * 40_000  # 10 MB: stored outside the snapshot
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=big)

    iam = connection.client("iam")
    iam.create_role(RoleName="durable-role", AssumeRolePolicyDocument=json.dumps({}))
    kms = connection.client("kms")
    key_id = kms.create_key(Description="durable")["KeyMetadata"]["KeyId"]
    codecommit = connection.client("codecommit")
    codecommit.create_repository(repositoryName="durable-repo")

    sagemaker = connection.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    for _ in range(2):
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": "example/sklearn:1"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )
    sagemaker.update_model_package(
        ModelPackageArn=f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/1",
        ModelApprovalStatus="Approved",
    )
    return {"versions": (first, second), "big": big, "key_id": key_id}


def _check_everything(connection: AwsConnection, written: dict[str, object]) -> None:
    s3 = connection.client("s3")
    first, second = written["versions"]  # type: ignore[misc]
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="data/")["Versions"]
    assert {v["VersionId"] for v in versions} == {first, second}
    old = s3.get_object(Bucket=BUCKET, Key="data/a#b?.csv", VersionId=first)["Body"].read()
    assert old == b"x,y\n1,2\n"
    assert s3.get_object(Bucket=BUCKET, Key="data/a#b?.csv")["Body"].read() == b"x,y\n3,4\n"
    assert s3.get_object(Bucket=BUCKET, Key="big.bin")["Body"].read() == written["big"]

    assert connection.client("iam").get_role(RoleName="durable-role")["Role"]["RoleName"]
    kms = connection.client("kms").describe_key(KeyId=written["key_id"])
    assert kms["KeyMetadata"]["Description"] == "durable"
    repo = connection.client("codecommit").get_repository(repositoryName="durable-repo")
    assert repo["repositoryMetadata"]["repositoryName"] == "durable-repo"

    packages = connection.client("sagemaker").list_model_packages(ModelPackageGroupName=GROUP)
    statuses = sorted(
        (p["ModelPackageVersion"], p["ModelApprovalStatus"])
        for p in packages["ModelPackageSummaryList"]
    )
    assert statuses == [(1, "Approved"), (2, "PendingManualApproval")]


def test_acknowledged_writes_survive_a_clean_stop(emulator):
    emulator.start()
    written = _write_everything(_connection(emulator))
    assert emulator.stop() is True

    info, started = emulator.start()
    assert started is True
    assert info.restored is True
    _check_everything(_connection(emulator), written)


def test_acknowledged_writes_survive_kill_9(emulator):
    info, _ = emulator.start()
    written = _write_everything(_connection(emulator))
    # No chance to flush anything: each write was on disk before it was acknowledged.
    psutil.Process(info.pid).kill()
    psutil.Process(info.pid).wait(timeout=10)

    again, started = emulator.start()
    assert started is True
    assert again.pid != info.pid
    assert again.restored is True
    _check_everything(_connection(emulator), written)


def test_deleted_objects_stay_deleted_and_their_bodies_are_removed(emulator):
    emulator.start()
    s3 = _connection(emulator).client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="gone", Body=b"1" * 100_000)
    blobs = emulator.data_dir / "blobs"
    (gone,) = blobs.iterdir()
    s3.delete_object(Bucket=BUCKET, Key="gone")
    # The previous snapshot still holds the object: its body stays one generation more.
    assert list(blobs.iterdir()) == [gone]
    s3.put_object(Bucket=BUCKET, Key="next", Body=b"2")
    assert gone not in list(blobs.iterdir())
    emulator.stop()

    emulator.start()
    listed = _connection(emulator).client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    assert [item["Key"] for item in listed] == ["next"]


def test_concurrent_starts_share_one_emulator_that_stop_finds(emulator):
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            info, started = emulator.start()
            results.append((info.pid, started))
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    pids = {pid for pid, _ in results}
    assert len(pids) == 1, results
    assert sorted(started for _, started in results) == [False, False, True]
    (pid,) = pids
    assert emulator.read_info().pid == pid
    assert emulator.server_pids() == [pid]
    assert emulator.status().running

    assert emulator.stop() is True
    assert emulator.server_pids() == []
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_second_server_on_the_same_state_refuses_to_serve(emulator):
    import subprocess
    import sys

    from pipelines.emulator.server import EXIT_LOCKED

    emulator.start()
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.emulator.server",
            "--port",
            str(free_port()),
            "--ssl-cert",
            str(emulator.tls.server_cert),
            "--ssl-key",
            str(emulator.tls.server_key),
            "--credentials",
            str(emulator.credentials_file),
            "--state-dir",
            str(emulator.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == EXIT_LOCKED
    assert "already serves" in second.stderr


@pytest.mark.parametrize(
    ("environ", "mutating", "service"),
    [
        ({"REQUEST_METHOD": "GET"}, False, None),
        ({"REQUEST_METHOD": "PUT", "HTTP_AUTHORIZATION": ""}, True, None),
        (
            {
                "REQUEST_METHOD": "POST",
                "HTTP_X_AMZ_TARGET": "SageMaker.DescribePipelineExecution",
                "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/"
                "sagemaker/aws4_request, SignedHeaders=host, Signature=x",
            },
            False,
            "sagemaker",
        ),
        (
            {
                "REQUEST_METHOD": "POST",
                "HTTP_X_AMZ_TARGET": "SageMaker.UpdateModelPackage",
                "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/"
                "sagemaker/aws4_request, SignedHeaders=host, Signature=x",
            },
            True,
            "sagemaker",
        ),
        (
            {"REQUEST_METHOD": "POST", "QUERY_STRING": "Action=GetRole&RoleName=r"},
            False,
            None,
        ),
    ],
)
def test_requests_are_classified_by_what_they_can_change(environ, mutating, service):
    kind = classify(environ)
    assert (kind.mutating, kind.service) == (mutating, service)
