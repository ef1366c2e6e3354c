"""Immutable data staging (issue 12, item 2): a run reads exactly the bytes its
lineage records, however many runs stage a file of the same name at the same time."""

from __future__ import annotations

import contextlib
import dataclasses
import threading

import pytest

from pipelines.core.s3io import parse_s3_uri
from pipelines.launch.datasets import StagedDataset, stage_dataset
from tests.definition.conftest import CONFIG

BUCKET = "staging-tests"


@pytest.fixture
def config(emulator_connection):
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return dataclasses.replace(CONFIG, bucket_name=BUCKET)


def _read(s3, uri: str, version_id: str | None = None) -> bytes:
    bucket, key = parse_s3_uri(uri)
    extra = {"VersionId": version_id} if version_id else {}
    return s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()


def test_concurrent_runs_of_same_named_files_each_read_their_own_bytes(
    tmp_path, config, emulator_connection
):
    files = []
    for index in range(6):
        folder = tmp_path / f"user{index}"
        folder.mkdir()
        path = folder / "housing#1?.csv"
        path.write_text("x,y\n" + "".join(f"{index},{row}\n" for row in range(100 + index)))
        files.append(path)
    staged: dict[int, StagedDataset] = {}
    barrier = threading.Barrier(len(files))

    def stage(index: int) -> None:
        barrier.wait()
        staged[index] = stage_dataset(emulator_connection, config, str(files[index]))

    threads = [threading.Thread(target=stage, args=(i,)) for i in range(len(files))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    s3 = emulator_connection.client("s3")
    assert len(staged) == len(files)
    for index, dataset in staged.items():
        expected = files[index].read_bytes()
        # What the job reads (InputDataUrl) ...
        assert _read(s3, dataset.read_uri) == expected
        assert dataset.read_uri.endswith(f"/{dataset.sha256}/housing#1?.csv")
        # ... is what lineage names: the alias version that holds these bytes.
        assert dataset.uri == f"s3://{BUCKET}/datasets/housing#1?.csv"
        assert _read(s3, dataset.uri, dataset.version_id) == expected
    assert len({d.version_id for d in staged.values()}) == len(files)


def test_restaging_an_unchanged_file_uploads_nothing(tmp_path, config, emulator_connection):
    path = tmp_path / "same.csv"
    path.write_text("x,y\n1,2\n")
    first = stage_dataset(emulator_connection, config, str(path))
    again = stage_dataset(emulator_connection, config, str(path))
    assert first.uploaded is True
    assert again.uploaded is False
    assert again.read_uri == first.read_uri
    assert again.version_id == first.version_id


def test_an_s3_input_is_pinned_to_a_copy_a_later_overwrite_cannot_change(
    config, emulator_connection
):
    s3 = emulator_connection.client("s3")
    s3.put_object(Bucket=BUCKET, Key="incoming/data.csv", Body=b"x,y\n1,2\n")
    staged = stage_dataset(emulator_connection, config, f"s3://{BUCKET}/incoming/data.csv")
    s3.put_object(Bucket=BUCKET, Key="incoming/data.csv", Body=b"x,y\n9,9\n")
    assert _read(s3, staged.read_uri) == b"x,y\n1,2\n"
    assert _read(s3, staged.uri, staged.version_id) == b"x,y\n1,2\n"
