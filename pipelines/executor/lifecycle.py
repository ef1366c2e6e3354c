"""Jobs that outlive their worker: found, stopped, and their steps failed with a reason.

Every job runs in its own process group (``start_new_session`` in jobs.run_job) with
its working directory inside the execution's work folder. When the worker dies
(kill -9, OOM), its jobs are re-parented to init and would run on unseen; this
module finds them by that working directory, so it needs nothing from the job
launcher and nothing recorded by the worker that died.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import psutil

_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class StoppedJobs:
    pids: tuple[int, ...]
    groups: tuple[int, ...]


def job_processes(work_dir: Path) -> list[psutil.Process]:
    """Live processes whose working directory lies in ``work_dir``."""
    root = str(work_dir.resolve())
    found = []
    for process in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            cwd = process.cwd()
            inside = cwd == root or cwd.startswith(root + os.sep)
            if inside and process.pid != os.getpid() and process.status() != "zombie":
                found.append(process)
    return found


def stop_jobs(work_dir: Path, grace: float = _GRACE_SECONDS) -> StoppedJobs:
    """SIGTERM every job process group in ``work_dir``; SIGKILL what outlives ``grace``."""
    processes = job_processes(work_dir)
    groups: set[int] = set()
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(process.pid))
    # Never signal our own group (a job can only share it if started without a session).
    groups.discard(os.getpgrp())
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)
    return StoppedJobs(tuple(p.pid for p in processes), tuple(sorted(groups)))
