"""The state folder's writers: private (issue 27, item 6) and atomic."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipelines.config.settings import PROJECT_ROOT
from pipelines.core.files import write_atomically


def test_loading_the_settings_makes_the_state_folder_and_what_follows_private(tmp_path):
    """An older checkout left .mlops 0755; any process that loads the settings (every
    task, the agent, the git hook) closes it and writes 0600 from then on."""
    state = tmp_path / ".mlops"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from pipelines.config.settings import Settings\n"
        "Settings.load(None, environ={'MLOPS_STATE_DIR': sys.argv[1]})\n"
        "Path(sys.argv[1], 'datasets').mkdir()\n"
        "Path(sys.argv[1], 'datasets', 'train.csv').write_text('x')\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(state)],
        cwd=PROJECT_ROOT,
        check=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    modes = {p.name: p.stat().st_mode & 0o777 for p in (state, *state.rglob("*"))}
    assert modes == {".mlops": 0o700, "datasets": 0o700, "train.csv": 0o600}


def test_an_atomic_write_is_private_from_its_first_byte(tmp_path):
    old = os.umask(0)  # the widest a caller could leave it
    try:
        write_atomically(tmp_path / "server-key.pem", b"key")
    finally:
        os.umask(old)
    assert (tmp_path / "server-key.pem").stat().st_mode & 0o777 == 0o600


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "emulator.json"
    write_atomically(target, b"old")

    def disk_full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, b"new")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]
