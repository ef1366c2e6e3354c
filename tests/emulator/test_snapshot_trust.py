"""Snapshots: only this checkout's are unpickled (issue 27, item 6), and a damaged one
falls back to the generation before it (issue 28, item 4).

Each test runs real emulator processes on one state folder: the folder is changed
between a stop and a start the way a fault or an attacker would change it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from pipelines.core.aws import AwsConnection
from pipelines.emulator import Emulator, EmulatorError
from tests.support import free_port, invoke_task

BUCKET = "trusted-bucket"


class _RunsACommand:
    """What an attacker plants: unpickling it runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def emulator(tmp_path):
    instance = Emulator(tmp_path / "emulator", free_port())
    yield instance
    instance.stop()


def _s3(emulator: Emulator):
    info = emulator.require_running()
    return AwsConnection.for_emulator(info.endpoint, emulator.tls.ca_cert, "us-east-1").client("s3")


def _two_writes(emulator: Emulator) -> Path:
    """A bucket with one object, then a second object; returns the S3 snapshot."""
    emulator.start()
    s3 = _s3(emulator)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="first.csv", Body=b"first")
    s3.put_object(Bucket=BUCKET, Key="second.csv", Body=b"second")
    emulator.stop()
    return emulator.data_dir / "snapshots" / "s3.pickle"


def _keys(emulator: Emulator) -> list[str]:
    listed = _s3(emulator).list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return [item["Key"] for item in listed]


def test_a_planted_snapshot_never_runs(emulator, tmp_path):
    snapshot = _two_writes(emulator)
    ran = tmp_path / "planted-code-ran"
    planted = pickle.dumps({"123456789012": _RunsACommand(f"id > {ran}")})
    (snapshot.parent / "evil.pickle").write_bytes(planted)
    snapshot.write_bytes(planted)  # the attacker also replaces a real one

    info, started = emulator.start()
    assert started is True
    assert not ran.exists()
    assert len(info.recovered) == 2
    assert all("not a snapshot signed by this checkout" in note for note in info.recovered)
    # The replaced S3 snapshot fell back to the generation before it.
    assert _keys(emulator) == ["first.csv"]
    assert not (snapshot.parent / "evil.pickle").exists()


def test_a_snapshot_others_may_write_is_not_loaded(emulator):
    snapshot = _two_writes(emulator)
    snapshot.chmod(0o666)
    info, _ = emulator.start()
    (note,) = info.recovered
    assert "writable by other users" in note
    assert _keys(emulator) == ["first.csv"]


def test_a_truncated_snapshot_restores_the_previous_one_and_says_what_was_lost(emulator):
    snapshot = _two_writes(emulator)
    data = snapshot.read_bytes()
    snapshot.write_bytes(data[: len(data) // 2])

    up = invoke_task("emulator-up", state_dir=emulator.state_dir.parent, port=emulator.port)
    assert up.returncode == 0, up.stderr
    assert "exited with code" not in up.stdout + up.stderr
    assert str(snapshot) in up.stdout
    assert "the previous snapshot" in up.stdout
    assert "writes to s3 acknowledged after then are lost" in up.stdout
    # Kept for inspection, and the previous generation serves, bodies included.
    assert len(list(snapshot.parent.glob("s3.pickle.damaged-*"))) == 1
    assert _keys(emulator) == ["first.csv"]
    assert _s3(emulator).get_object(Bucket=BUCKET, Key="first.csv")["Body"].read() == b"first"


def test_with_no_good_generation_the_service_starts_empty_and_says_so(emulator):
    snapshot = _two_writes(emulator)
    snapshot.write_bytes(b"")
    previous = snapshot.with_name("s3.pickle.previous")
    previous.write_bytes(previous.read_bytes()[:100])

    info, _ = emulator.start()
    (note,) = info.recovered
    assert str(snapshot) in note
    assert "s3 starts empty" in note
    assert _s3(emulator).list_buckets()["Buckets"] == []


@pytest.mark.server  # starts emulators itself, not through a fixture
def test_what_the_tasks_and_their_servers_write_is_private(tmp_path):
    """Started from a shell whose umask lets others read (022), as most are."""
    state_dir, port = tmp_path / "state", free_port()
    emulator = Emulator(state_dir / "emulator", port)
    old = os.umask(0o022)
    try:
        up = invoke_task("emulator-up", state_dir=state_dir, port=port)
        assert up.returncode == 0, up.stderr
        s3 = _s3(emulator)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="datasets/train.csv", Body=b"private")
        listed = invoke_task("executions", state_dir=state_dir, port=port)
        assert listed.returncode == 0, listed.stderr
    finally:
        invoke_task("emulator-down", state_dir=state_dir, port=port)
        os.umask(old)
    written = [state_dir, *state_dir.rglob("*")]
    names = {path.name for path in written}
    assert {"executor.db", "s3.pickle", "snapshot.key", "credentials.json"} <= names
    assert {"server-key.pem", "emulator.log"} <= names
    assert [path for path in written if path.stat().st_mode & 0o077] == []


def test_a_snapshot_key_others_may_write_stops_the_start(emulator):
    _two_writes(emulator)
    key = emulator.data_dir / "snapshot.key"
    key.chmod(0o666)
    with pytest.raises(
        EmulatorError, match=f"refusing to serve: the snapshot key {key} is writable"
    ):
        emulator.start()
