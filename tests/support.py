"""Helpers shared by the test packages."""

from __future__ import annotations

import http.client
import io
import os
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from pipelines.config.settings import PROJECT_ROOT


def project_mlops_config() -> dict:
    """invoke.yaml's ``mlops`` section: what the tasks a test starts read too."""
    import yaml

    return yaml.safe_load((PROJECT_ROOT / "invoke.yaml").read_text())["mlops"]


def free_port() -> int:
    """A free port for a server a test starts later, below the kernel's ephemeral range:
    a port from that range (what binding port 0 gives) can be taken meanwhile as the
    local port of one of the suite's many client connections, and the server's bind
    then fails with "Address already in use"."""
    low = _ephemeral_range()[0]
    for _ in range(100):
        port = random.randrange(20000, low)  # noqa: S311 - spreading tests, not security
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


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


BOSTON_ROW = "0.00632,18.0,2.31,0.0,0.538,6.575,65.2,4.09,1.0,296.0,15.3,396.9,4.98"


class ClientLoop:
    """Client threads posting one CSV row to an endpoint over HTTP until stopped; each
    result is ``(monotonic time, status, X-Mlops-Model-Version or the error)``.
    Bounded: they stop on exit from the ``with`` block, or after ``limit`` seconds."""

    def __init__(self, port: int, clients: int = 3, limit: float = 300.0) -> None:
        self.port, self.limit = port, limit
        self.results: list[tuple[float, int, str | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop) for _ in range(clients)]

    def _loop(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self.stop.is_set() and time.monotonic() < deadline:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                connection.request(
                    "POST", "/invocations", BOSTON_ROW.encode(), {"Content-Type": "text/csv"}
                )
                response = connection.getresponse()
                response.read()
                version = response.getheader("X-Mlops-Model-Version")
                self.results.append((time.monotonic(), response.status, version))
            except OSError as error:
                self.results.append((time.monotonic(), 0, str(error)))
            finally:
                connection.close()

    def failures(self) -> list[tuple[float, int, str | None]]:
        return [result for result in self.results if result[1] != 200]

    def versions(self) -> list[str | None]:
        return [version for _, _, version in self.results]

    def __enter__(self) -> ClientLoop:
        for thread in self.threads:
            thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.3)
        self.stop.set()
        for thread in self.threads:
            thread.join()


def terraform_named(config, **changes):
    """``config`` (with ``changes``) as Terraform's outputs give it: the ``name``, endpoint
    and monitoring schedule names derived from the prefix and the environment the way
    infra/main.tf spells them (tests/infra's plan test checks that spelling)."""
    import dataclasses

    config = dataclasses.replace(config, **changes)
    name = f"{config.name_prefix}-{config.environment}"
    endpoints = {"default": f"{name}-endpoint"} | {
        stage: f"{name}-{stage}-endpoint" for stage in ("staging", "prod")
    }
    return dataclasses.replace(
        config,
        name=name,
        endpoint_names=endpoints,
        monitoring_schedule_names={k: f"{v}-data-quality" for k, v in endpoints.items()},
    )
