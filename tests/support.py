"""Helpers shared by the test packages."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from pipelines.settings import PROJECT_ROOT


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
