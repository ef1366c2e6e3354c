"""Stopping background processes: a process that exited is stopped, whoever its parent is."""

from __future__ import annotations

import subprocess
import sys

import psutil

from pipelines.core import processes

# A parent that starts a child and never reaps it, as a finished `invoke deploy` leaves
# the model server it started to whoever adopts it.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_terminate_counts_an_unreaped_child_of_another_process_as_stopped():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        processes.terminate(pid, timeout=5)  # used to raise TimeoutExpired after SIGKILL
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert not processes.is_ours(pid, "time.sleep(60)")
    finally:
        parent.kill()
        parent.wait()


def test_terminate_reaps_its_own_child():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    processes.terminate(child.pid, timeout=5)
    assert not psutil.pid_exists(child.pid)
    processes.terminate(child.pid)  # already gone: nothing to do
