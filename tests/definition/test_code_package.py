"""The training code bundle: deterministic bytes, content-addressed upload."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import time

import pytest

from pipelines.config.settings import PROJECT_ROOT
from pipelines.core.errors import MlopsError
from pipelines.definition.code_package import SOURCEDIR, package_code, upload_code

TRAINING = PROJECT_ROOT / "training"


def test_bundle_holds_only_the_scripts_in_sorted_order():
    bundle = package_code(TRAINING)
    assert bundle.names() == [
        "analyzer.py",
        "evaluate.py",
        "inference.py",
        "preprocess.py",
        "train.py",
    ]
    with tarfile.open(fileobj=io.BytesIO(bundle.tarball), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == bundle.names()
    assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(0, 0, 0, 0o644)}


def test_same_content_gives_the_same_bytes_whatever_the_file_times(tmp_path):
    copy = tmp_path / "training"
    shutil.copytree(TRAINING, copy)
    time.sleep(0.01)
    for path in copy.glob("*.py"):
        path.touch()
    assert package_code(copy).tarball == package_code(TRAINING).tarball
    assert gzip.decompress(package_code(copy).tarball)  # a valid gzip stream


def test_missing_or_empty_code_directory_is_a_clear_error(tmp_path):
    with pytest.raises(MlopsError, match="does not exist"):
        package_code(tmp_path / "nowhere")
    with pytest.raises(MlopsError, match="No Python scripts"):
        package_code(tmp_path)


def test_uris_name_only_files_of_the_bundle():
    bundle = package_code(TRAINING)
    assert bundle.s3_uri("b", "p") == f"s3://b/p/code/{bundle.sha256}/{SOURCEDIR}"
    with pytest.raises(MlopsError, match="not part of the training code"):
        bundle.s3_uri("b", "p", "secrets.py")


def test_upload_is_idempotent(emulator_connection):
    s3 = emulator_connection.client("s3")
    s3.create_bucket(Bucket="code-upload")
    bundle = package_code(TRAINING)
    assert upload_code(bundle, s3, "code-upload", "pipe") == len(bundle.objects())
    assert upload_code(bundle, s3, "code-upload", "pipe") == 0
    body = s3.get_object(Bucket="code-upload", Key=f"pipe/code/{bundle.sha256}/{SOURCEDIR}")
    assert body["Body"].read() == bundle.tarball


def test_an_existing_key_that_lost_its_bytes_is_uploaded_again(emulator_connection, caplog):
    """A content-addressed key is trusted only when its bytes hash to the digest it names:
    a planted sourcedir.tar.gz is overwritten with the code the key names (issue 27)."""
    s3 = emulator_connection.client("s3")
    s3.create_bucket(Bucket="code-tampered")
    bundle = package_code(TRAINING)
    key = f"pipe/code/{bundle.sha256}/{SOURCEDIR}"
    upload_code(bundle, s3, "code-tampered", "pipe")
    s3.put_object(Bucket="code-tampered", Key=key, Body=b"planted")
    assert upload_code(bundle, s3, "code-tampered", "pipe") == 1
    assert s3.get_object(Bucket="code-tampered", Key=key)["Body"].read() == bundle.tarball
    assert "does not hold the code its key names" in caplog.text
