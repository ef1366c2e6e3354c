"""Helpers shared by the test packages."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

from pipelines.config.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_copy(destination: Path) -> Path:
    """A copy of infra/ (and invoke.yaml) to run Terraform on without touching the
    checkout: no generated override, no working data."""
    shutil.copytree(
        PROJECT_ROOT / "infra",
        destination / "infra",
        ignore=shutil.ignore_patterns(".terraform", "backend_override.tf.json", "*.tfstate*"),
    )
    return destination


def invoke_task(
    *args: str, state_dir: Path, port: int, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a task as a user would, in its own process, against the given state
    directory and emulator port."""
    env = {
        **os.environ,
        "MLOPS_STATE_DIR": str(state_dir),
        "MLOPS_EMULATOR_PORT": str(port),
        "COLUMNS": "200",
        **(extra_env or {}),
    }
    result = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    # Rich wraps long lines; tests read the text with single spaces.
    result.stdout = " ".join(result.stdout.split())
    result.stderr = " ".join(result.stderr.split())
    return result


def source_tarball(files: dict[str, str]) -> bytes:
    """A gzipped tar of text files, as SageMaker's sourcedir.tar.gz bundles are."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
