"""Background processes the project starts (emulator, executor workers, endpoint
servers, schedulers): spawn, recognise, stop; and loopback port checks. One copy."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

LOOPBACK = "127.0.0.1"


def spawn(
    command: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` detached: its own session (Ctrl-C in a task must not reach
    it), no stdin, stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        return subprocess.Popen(
            list(command),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )


def is_ours(pid: int | None, *markers: str) -> bool:
    """True when ``pid`` is a live process whose command line holds every marker: a
    recorded pid may have been reused by an unrelated program since."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        command = " ".join(process.cmdline())
        alive = process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return alive and all(marker in command for marker in markers)


def find_ours(*markers: str) -> list[int]:
    """Every process whose command line holds every marker."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info.get("cmdline") or [])
        if command and all(marker in command for marker in markers):
            found.append(process.info["pid"])
    return found


def terminate(pid: int | None, timeout: float = 10.0) -> None:
    """SIGTERM (so it can finish what is pending), then SIGKILL after ``timeout``.

    A process that has exited counts as stopped even before its parent reaps it: the
    endpoint's servers are often children of another command (the deploy that started
    them), and waiting for that parent to reap would wait for nothing."""
    if not pid:
        return
    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return
    if _ended(process, timeout):
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        process.kill()
    _ended(process, timeout)


def _ended(process: psutil.Process, timeout: float) -> bool:
    """Wait until ``process`` is gone or a zombie (reaping it if it is our child)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(psutil.Error, ChildProcessError):
                    process.wait(timeout=0)  # reaps it when it is our own child
                return True
            process.wait(timeout=0.1)
            return True
        except psutil.NoSuchProcess:
            return True
        except psutil.TimeoutExpired:
            if time.monotonic() >= deadline:
                return False


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
