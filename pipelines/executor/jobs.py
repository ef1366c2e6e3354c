"""Run one job as a local process in its sandbox: the container contract, without a container.

Container paths (``/opt/ml/...``) are remapped into the job's sandbox folder in the
entrypoint, the arguments and the environment. Scripts that spell ``/opt/ml`` themselves
(AWS's template scripts write ``/opt/ml/processing/train``) need the path itself to be the
sandbox: where Linux lets an unprivileged process have its own mount namespace, the job
runs in one in which ``/opt/ml`` is its sandbox, as root of its user namespace (a
SageMaker container's user); elsewhere such a script fails on ``/opt/ml`` (not writable),
and nothing reaches the host's. Output goes to the job's log file, the local CloudWatch.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
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


# Run by ``sh`` inside the job's user and mount namespaces, before the job's own command:
# /opt becomes a private tmpfs holding the host's /opt entries (bound back, so runtimes
# and tools under /opt stay where they are) and ``ml``, bound to the job's sandbox.
_CONTAINER_MOUNTS = r"""
set -e
ml="$1"; host="$2"; shift 2
mount --rbind /opt "$host"
mount -t tmpfs -o mode=755 mlops-opt /opt
for entry in "$host"/* "$host"/.[!.]* "$host"/..?*; do
  if [ ! -e "$entry" ] && [ ! -L "$entry" ]; then continue; fi
  name=${entry##*/}
  if [ "$name" = ml ]; then continue; fi
  if [ -L "$entry" ]; then cp -P "$entry" "/opt/$name"
  elif [ -d "$entry" ]; then mkdir "/opt/$name"; mount --rbind "$entry" "/opt/$name"
  else : > "/opt/$name"; mount --bind "$entry" "/opt/$name"; fi
done
mkdir /opt/ml
mount --bind "$ml" /opt/ml
exec "$@"
"""


@functools.cache
def private_container_path() -> bool:
    """Whether jobs can see their sandbox at /opt/ml: an unprivileged user and mount
    namespace (util-linux ``unshare``), probed once."""
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None or not Path("/opt").is_dir():
        return False
    try:
        probe = subprocess.run(
            [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private",
             "sh", "-c", "mount -t tmpfs mlops-probe /opt"],
            capture_output=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def in_container_view(command: Sequence[str], sandbox: Sandbox) -> list[str]:
    """``command`` with /opt/ml as ``sandbox``'s, where the kernel allows (same process:
    unshare and sh exec into the job, so its pid, group and usage stay the job's)."""
    if not private_container_path():
        return list(command)
    ml = sandbox.path(CONTAINER_ROOT)
    ml.mkdir(parents=True, exist_ok=True)
    host = sandbox.root.parent / ".host-opt"  # a mount point, seen by the job only
    host.mkdir(exist_ok=True)
    return [
        str(shutil.which("unshare")),
        *("--user", "--map-root-user", "--mount", "--propagation", "private"),
        *("sh", "-c", _CONTAINER_MOUNTS, "mlops-job", str(ml), str(host), *command),
    ]


def run_job(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    stop: threading.Event,
    max_seconds: float | None = None,
    sandbox: Sandbox | None = None,
) -> JobResult:
    """Run ``command`` to completion (or until ``stop`` is set, or the time limit);
    with ``sandbox``, in its container view (:func:`in_container_view`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if sandbox is not None:
        command = in_container_view(command, sandbox)
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
