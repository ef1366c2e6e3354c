"""Start, find, health-check and stop the local AWS emulator process.

The emulator is moto's server (with pipelines.emulator.compat applied) running in
the background on 127.0.0.1 over HTTPS. Its pid and port live in a small JSON file
in the state directory, so every task finds the same process and only the code
that started it (``emulator-down``/``destroy``) stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from pipelines.emulator.server import LOOPBACK
from pipelines.emulator.tls import TlsFiles, ensure_certificates
from pipelines.errors import MlopsError

_SERVER_MODULE = "pipelines.emulator.server"


class EmulatorError(MlopsError):
    """The emulator cannot be started, reached or stopped."""


@dataclass(frozen=True)
class EmulatorInfo:
    """What the pid/port file records about a running emulator."""

    pid: int
    port: int
    started_at: float

    @property
    def endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"


@dataclass(frozen=True)
class EmulatorStatus:
    running: bool
    info: EmulatorInfo | None
    detail: str


@dataclass(frozen=True)
class Emulator:
    """The emulator of one project checkout: its state directory and port."""

    state_dir: Path
    port: int

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "emulator.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "emulator.log"

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles.in_dir(self.state_dir / "tls")

    @property
    def endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    # --- queries ---------------------------------------------------------------

    def read_info(self) -> EmulatorInfo | None:
        try:
            return EmulatorInfo(**json.loads(self.pid_file.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def status(self) -> EmulatorStatus:
        info = self.read_info()
        if info is None:
            return EmulatorStatus(False, None, "not running")
        if not _is_our_server(info.pid):
            return EmulatorStatus(False, info, f"stale pid file (process {info.pid} is gone)")
        if not self.is_healthy(info.port):
            return EmulatorStatus(False, info, f"process {info.pid} is not answering")
        return EmulatorStatus(True, info, f"running (pid {info.pid}) at {info.endpoint}")

    def is_healthy(self, port: int | None = None, timeout: float = 2.0) -> bool:
        """True when our emulator answers over TLS signed by our own CA."""
        if not self.tls.exist():
            return False
        context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        url = f"https://{LOOPBACK}:{port or self.port}/moto-api/"
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def require_running(self) -> EmulatorInfo:
        """The running emulator, or a clear error telling the user how to start it."""
        status = self.status()
        if not status.running or status.info is None:
            raise EmulatorError(
                f"The local AWS emulator is not running ({status.detail}). "
                "Start it with `invoke emulator-up` (or `invoke infra-up`)."
            )
        return status.info

    # --- lifecycle -------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> tuple[EmulatorInfo, bool]:
        """Start the emulator unless ours is already running.

        Returns the emulator info and whether a new process was started; a new
        process is empty, since moto keeps everything in memory.
        """
        status = self.status()
        if status.running and status.info is not None:
            if status.info.port != self.port:
                raise EmulatorError(
                    f"The emulator is already running on port {status.info.port}, "
                    f"not {self.port}. Stop it first with `invoke emulator-down`."
                )
            return status.info, False
        if status.info is not None and _is_our_server(status.info.pid):
            # Alive but not answering: a hung server is no use to anyone.
            _terminate(status.info.pid)
        self.pid_file.unlink(missing_ok=True)

        if _port_in_use(self.port):
            raise EmulatorError(
                f"Port {self.port} on {LOOPBACK} is already in use by another program, "
                "not this project's emulator. Free it, or choose another port with "
                "MLOPS_EMULATOR_PORT=<port> (or mlops.emulator.port in invoke.yaml)."
            )

        self.state_dir.mkdir(parents=True, exist_ok=True)
        ensure_certificates(self.tls)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    _SERVER_MODULE,
                    "--port",
                    str(self.port),
                    "--ssl-cert",
                    str(self.tls.server_cert),
                    "--ssl-key",
                    str(self.tls.server_key),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: Ctrl-C in a task must not kill the shared emulator.
                start_new_session=True,
                env=_server_environment(),
            )
        info = EmulatorInfo(pid=process.pid, port=self.port, started_at=time.time())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmulatorError(
                    f"The emulator exited with code {process.returncode} while starting.\n"
                    f"Last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            if self.is_healthy(self.port, timeout=1.0):
                self.pid_file.write_text(json.dumps(asdict(info)))
                return info, True
            time.sleep(0.1)
        _terminate(process.pid)
        raise EmulatorError(
            f"The emulator did not answer on {self.endpoint} within {timeout:.0f} s.\n"
            f"Last lines of {self.log_file}:\n{_tail(self.log_file)}"
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop our emulator if it runs; True when a process was stopped."""
        info = self.read_info()
        stopped = False
        if info is not None and _is_our_server(info.pid):
            _terminate(info.pid, timeout=timeout)
            stopped = True
        self.pid_file.unlink(missing_ok=True)
        return stopped


def _server_environment() -> dict[str, str]:
    env = dict(os.environ)
    # The emulator needs no credentials and must not inherit any.
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _is_our_server(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return _SERVER_MODULE in " ".join(process.cmdline()) and process.is_running()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _terminate(pid: int, timeout: float = 10.0) -> None:
    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
            process.wait(timeout=timeout)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
