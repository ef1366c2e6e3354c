"""Start, find, health-check and stop the local AWS emulator process.

The emulator is moto's server (with pipelines.emulator.compat applied) running in
the background on 127.0.0.1 over HTTPS. Its pid and port live in a small JSON file
in the state directory, so every task finds the same process and only the code
that started it (``emulator-down``/``destroy``) stops it.

Two locks keep this true under concurrency: starters serialise on
``emulator.start.lock`` (the second one finds the first one's server and reuses it),
and the server itself holds ``emulator.lock`` while it serves and writes the pid
file, so the file always names the process that really serves. Its state is
durable (pipelines.emulator.durability) in ``<state>/data``.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines.core import processes
from pipelines.core.aws import emulator_credentials_file, ensure_emulator_credentials
from pipelines.core.errors import MlopsError
from pipelines.core.locks import exclusive
from pipelines.emulator.server import DATA_NAME, EXIT_LOCKED, LOOPBACK, lock_is_held
from pipelines.emulator.signatures import HEALTH_PATH
from pipelines.emulator.tls import TlsFiles, ensure_certificates

_SERVER_MODULE = "pipelines.emulator.server"


class EmulatorError(MlopsError):
    """The emulator cannot be started, reached or stopped."""


@dataclass(frozen=True)
class EmulatorInfo:
    """What the pid/port file records about a running emulator."""

    pid: int
    port: int
    started_at: float
    restored: bool = False  # the server loaded durable state from a previous run
    # A sentence per snapshot that was damaged: what the server did, what was lost.
    recovered: tuple[str, ...] = ()

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
    def start_lock(self) -> Path:
        return self.state_dir / "emulator.start.lock"

    @property
    def data_dir(self) -> Path:
        """Snapshots and S3 bodies: everything the emulator has acknowledged."""
        return self.state_dir / DATA_NAME

    @property
    def log_file(self) -> Path:
        return self.state_dir / "emulator.log"

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles.in_dir(self.state_dir / "tls")

    @property
    def credentials_file(self) -> Path:
        """This checkout's key for the emulator (read it with
        ``pipelines.core.aws.emulator_credentials(emulator.tls.ca_cert)``)."""
        return emulator_credentials_file(self.tls.ca_cert)

    @property
    def endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    # --- queries ---------------------------------------------------------------

    def read_info(self) -> EmulatorInfo | None:
        try:
            record = json.loads(self.pid_file.read_text())
            record["recovered"] = tuple(record.get("recovered", ()))
            return EmulatorInfo(**record)
        except (FileNotFoundError, json.JSONDecodeError, TypeError, AttributeError):
            return None

    def server_pids(self) -> list[int]:
        """Every emulator process serving this state directory (normally at most one)."""
        return processes.find_ours(_SERVER_MODULE, str(self.state_dir))

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
        url = f"https://{LOOPBACK}:{port or self.port}{HEALTH_PATH}"
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

    def start(self, timeout: float = 60.0) -> tuple[EmulatorInfo, bool]:
        """Start the emulator unless ours is already running.

        Returns the emulator info and whether a new process was started. A new
        process restores the durable state (``info.restored``). Concurrent calls,
        from any process, serialise on the start lock: one starts, the others reuse.
        """
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with exclusive(self.start_lock, what="the emulator's start lock"):
            return self._start_locked(timeout)

    def _start_locked(self, timeout: float) -> tuple[EmulatorInfo, bool]:
        status = self.status()
        if status.running and status.info is not None:
            if status.info.port != self.port:
                raise EmulatorError(
                    f"The emulator is already running on port {status.info.port}, "
                    f"not {self.port}. Stop it first with `invoke emulator-down`."
                )
            return status.info, False
        # Alive but not answering, or serving without a pid file: no use to anyone.
        for pid in self.server_pids():
            processes.terminate(pid)
        self.pid_file.unlink(missing_ok=True)

        if processes.port_in_use(self.port):
            raise EmulatorError(
                f"Port {self.port} on {LOOPBACK} is already in use by another program, "
                "not this project's emulator. Free it, or choose another port with "
                "MLOPS_EMULATOR_PORT=<port> (or mlops.emulator.port in invoke.yaml)."
            )

        ensure_certificates(self.tls)
        ensure_emulator_credentials(self.tls.ca_cert)
        # Its own session: Ctrl-C in a task must not kill the shared emulator.
        process = processes.spawn(
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
                "--credentials",
                str(self.credentials_file),
                "--state-dir",
                str(self.state_dir),
            ],
            self.log_file,
            env=_server_environment(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                if process.returncode == EXIT_LOCKED:
                    raise EmulatorError(
                        f"Another emulator already serves {self.state_dir} but does not "
                        "answer; stop it with `invoke emulator-down` and try again."
                    )
                raise EmulatorError(
                    f"The emulator exited with code {process.returncode} while starting.\n"
                    f"Last lines of {self.log_file}:\n{processes.log_tail(self.log_file)}"
                )
            info = self.read_info()
            # The server writes the pid file itself, after binding: only then is it ours.
            if (
                info is not None
                and info.pid == process.pid
                and self.is_healthy(self.port, timeout=1.0)
            ):
                return info, True
            time.sleep(0.1)
        processes.terminate(process.pid)
        raise EmulatorError(
            f"The emulator did not answer on {self.endpoint} within {timeout:.0f} s.\n"
            f"Last lines of {self.log_file}:\n{processes.log_tail(self.log_file)}"
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop our emulator if it runs; True when a process was stopped."""
        info = self.read_info()
        pids = set(self.server_pids())
        if info is not None and _is_our_server(info.pid):
            pids.add(info.pid)
        for pid in pids:
            # SIGTERM lets the server write what is pending before it exits.
            processes.terminate(pid, timeout=timeout)
        self.pid_file.unlink(missing_ok=True)
        return bool(pids)

    def serving(self) -> bool:
        """True while any process holds this state directory's serving lock."""
        return lock_is_held(self.state_dir)

    def has_data(self) -> bool:
        """True when a previous emulator left acknowledged state to restore."""
        return any((self.data_dir / "snapshots").glob("*.pickle"))

    def discard_data(self) -> None:
        """Forget every acknowledged write (destroy: nothing is left behind)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _server_environment() -> dict[str, str]:
    env = dict(os.environ)
    # The emulator needs no credentials and must not inherit any.
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _is_our_server(pid: int) -> bool:
    return processes.is_ours(pid, _SERVER_MODULE)
