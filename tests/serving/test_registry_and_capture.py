"""Approval workflow in the registry, and the data capture format and sampling."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from pipelines.core.errors import MlopsError
from pipelines.registry import APPROVED, REJECTED, Registry
from pipelines.serving.capture import CaptureSettings, CaptureSpool, closed_spool_files
from pipelines.serving.capture_upload import CaptureUploader
from tests.serving.conftest import CONFIG, read_jsonl


@pytest.fixture
def registry(emulator_connection) -> Registry:
    return Registry(emulator_connection, CONFIG.model_package_group_name)


def test_versions_are_listed_newest_first_with_metrics_and_lineage(register_version, registry):
    older, newer = register_version(10, approve=False), register_version(11, approve=False)
    versions = registry.versions()
    numbers = [v.version for v in versions]
    assert numbers == sorted(numbers, reverse=True)
    assert numbers.index(newer.version) < numbers.index(older.version)
    listed = next(v for v in versions if v.version == newer.version)
    assert listed.execution_id == "exec11"
    assert listed.commit == "0123456789abcdef"
    metrics = registry.metrics(listed)
    assert set(metrics) == {"mse", "rmse", "mae", "r2"}
    assert metrics["r2"] > 0.7
    features, target = registry.features(listed)
    assert target == "medv"
    assert features[:2] == ["crim", "zn"]


def test_approve_and_reject_record_who_and_why(register_version, registry):
    version = register_version(10, approve=False)
    approved = registry.set_status(version.version, APPROVED, "good R2", "alice")
    assert approved.status == APPROVED
    assert approved.approval_description.startswith("approved by alice at ")
    assert approved.approval_description.endswith(": good R2")
    rejected = registry.set_status(version.version, REJECTED, "drifted", "bob")
    assert rejected.status == REJECTED
    assert "rejected by bob" in rejected.approval_description
    assert [v.version for v in registry.versions(REJECTED)].count(version.version) == 1


def test_latest_is_the_default_version(register_version, registry):
    newest = register_version(13, approve=False)
    assert registry.get().version == newest.version


def test_unknown_versions_and_statuses_are_reported(registry, register_version):
    register_version(10, approve=False)
    with pytest.raises(MlopsError, match="Model version 999 does not exist"):
        registry.get(999)
    with pytest.raises(MlopsError, match="Unknown approval status 'Maybe'"):
        registry.versions("Maybe")


def test_an_empty_group_says_what_to_run(emulator_connection):
    sagemaker = emulator_connection.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="empty-group")
    with pytest.raises(MlopsError, match="has no versions yet: run `invoke pipeline-run`"):
        Registry(emulator_connection, "empty-group").get()
    with pytest.raises(MlopsError, match="No Approved version in empty-group"):
        Registry(emulator_connection, "empty-group").latest_approved()


def test_capture_samples_by_percentage(tmp_path):
    for percent, low, high in ((0, 0, 0), (100, 200, 200), (25, 30, 70)):
        # Seeded so the sampled share is reproducible; not used for anything secret.
        spool = CaptureSpool(tmp_path / str(percent), percent, sample=random.Random(7))  # noqa: S311
        kept = sum(
            spool.record(b"1,2", "text/csv", b'{"predictions": [1]}', "application/json")
            for _ in range(200)
        )
        spool.close_file()
        assert low <= kept <= high, (percent, kept)
        lines = sum(len(p.read_text().splitlines()) for p in closed_spool_files(spool.directory))
        assert lines == kept


def test_capture_ships_sagemaker_json_lines_under_dated_keys(
    emulator_connection, register_version, tmp_path
):
    register_version(10, approve=False)
    spool = CaptureSpool(tmp_path / "spool", 100)
    spool.record(b"1,2", "text/csv", b'{"predictions": [3.5]}', "application/json")
    spool.record(b"\x00\x01", "application/octet-stream", b"2.0", "text/csv")
    s3 = emulator_connection.client("s3")
    settings = CaptureSettings(f"s3://{CONFIG.bucket_name}/format", 100, "ep")
    uploader = CaptureUploader(settings, spool.directory, s3)
    assert uploader.ship() == 0  # the open file is not complete yet
    spool.close_file()
    assert uploader.ship() == 1
    assert closed_spool_files(spool.directory) == []  # shipped files are removed
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=CONFIG.bucket_name, Prefix="format/")["Contents"]
    ]
    assert len(keys) == 1
    assert keys[0].startswith(f"format/ep/AllTraffic/{datetime.now(UTC):%Y/%m/%d/%H}/")
    assert keys[0].endswith(".jsonl")
    first, second = read_jsonl(s3, CONFIG.bucket_name, "format/")
    assert first["captureData"]["endpointInput"]["encoding"] == "CSV"
    assert first["captureData"]["endpointOutput"] == {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": '{"predictions": [3.5]}',
        "encoding": "JSON",
    }
    assert second["captureData"]["endpointInput"] == {
        "observedContentType": "application/octet-stream",
        "mode": "INPUT",
        "data": "AAE=",
        "encoding": "BASE64",
    }
    assert first["eventMetadata"]["inferenceTime"].endswith("Z")


def test_a_failed_upload_keeps_the_spool_file_for_the_next_try(tmp_path, emulator_connection):
    spool = CaptureSpool(tmp_path / "spool", 100)
    spool.record(b"1", "text/csv", b"2", "text/csv")
    spool.close_file()
    settings = CaptureSettings("s3://no-such-bucket-here/capture", 100, "ep")
    uploader = CaptureUploader(settings, spool.directory, emulator_connection.client("s3"))
    assert uploader.ship() == 0
    assert uploader.errors == 1
    assert len(closed_spool_files(spool.directory)) == 1
