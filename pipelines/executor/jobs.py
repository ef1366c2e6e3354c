"""Run one job as a local process in its sandbox: the container contract, without a container.

Container paths (``/opt/ml/...``) are remapped into the job's sandbox folder in the
entrypoint, the arguments and the environment, so a job needs no root, no Docker
and no user namespaces. Output goes to the job's log file, the local CloudWatch.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CONTAINER_ROOT = "/opt/ml"
_CONTAINER_PATH = re.compile(r"(?<![\w.~-])/opt/ml(?=/|$|[^\w.-])")
_PYTHON = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")
_KILL_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Sandbox:
    """A job's private copy of the container filesystem below ``root``."""

    root: Path

    def path(self, container_path: str) -> Path:
        if not container_path.startswith(CONTAINER_ROOT):
            raise ValueError(f"{container_path!r} is not below {CONTAINER_ROOT}")
        return self.root / container_path.lstrip("/")

    def remap(self, text: str) -> str:
        return _CONTAINER_PATH.sub(str(self.root / CONTAINER_ROOT.lstrip("/")), text)

    def unmap(self, text: str) -> str:
        """The inverse of remap, for messages: sandbox paths back to container paths."""
        return text.replace(str(self.root / CONTAINER_ROOT.lstrip("/")), CONTAINER_ROOT)


def local_python(entrypoint: str, interpreter: str = sys.executable) -> str | None:
    """The job's interpreter (its runtime profile's, see pipelines.containers) for a
    container's ``python``/``python3`` entrypoint; None for any other entrypoint."""
    return interpreter if _PYTHON.match(entrypoint) else None


@dataclass(frozen=True)
class JobResult:
    exit_code: int
    seconds: float
    peak_memory_bytes: int | None
    stopped: bool = False
    timed_out: bool = False


def run_job(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    stop: threading.Event,
    max_seconds: float | None = None,
) -> JobResult:
    """Run ``command`` to completion (or until ``stop`` is set, or the time limit)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own process group: stopping the job stops everything it started.
            start_new_session=True,
        )
    stopped = timed_out = False
    reaped = threading.Event()
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            reaped.set()
            break
        if stop.is_set() and not stopped:
            stopped = True
            _terminate_group(process.pid, reaped)
        if max_seconds is not None and not timed_out and time.monotonic() - started > max_seconds:
            timed_out = True
            _terminate_group(process.pid, reaped)
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return JobResult(
        exit_code=process.returncode,
        seconds=time.monotonic() - started,
        peak_memory_bytes=peak or None,
        stopped=stopped,
        timed_out=timed_out,
    )


def _terminate_group(pid: int, reaped: threading.Event) -> None:
    """SIGTERM the job's process group, then SIGKILL it if it outlives a grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)

    def kill_later() -> None:
        if reaped.wait(_KILL_GRACE_SECONDS):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    threading.Thread(target=kill_later, daemon=True).start()


def log_tail(log_path: Path, lines: int = 15) -> list[str]:
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:]


def failure_line(log_path: Path) -> str | None:
    """The most telling line of a failed job: its last ERROR line, else its last line."""
    tail = log_tail(log_path, 200)
    for line in reversed(tail):
        if "ERROR" in line or "Error" in line:
            return line.strip()
    return tail[-1].strip() if tail else None
