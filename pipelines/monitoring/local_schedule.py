"""The local monitoring schedule: a background process that runs a monitoring execution every
interval while the endpoint runs.

``python -m pipelines.monitoring.local_schedule --settings FILE --every SECONDS [--stage S]``

Like the endpoint's servers, it records its pid in ``<state>/monitoring/<endpoint>/schedule.json``
and holds ``schedule.lock`` (flock) while it lives, so there is never a second one and a
killed one leaves no stale lock. It makes no network listener at all. ``monitor-schedule
--off``, ``endpoint-down`` and ``destroy`` stop it. Each execution's result goes to the
history (the newest N kept) and its log line to ``schedule.log``.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipelines.config.pipeline_catalog import PipelineCatalog
from pipelines.config.settings import Settings
from pipelines.core import processes
from pipelines.core.errors import MlopsError
from pipelines.core.files import write_json_atomically
from pipelines.monitoring.results import monitoring_dir

_MODULE = "pipelines.monitoring.local_schedule"


def settings_document(settings: Settings) -> dict[str, Any]:
    return {
        f.name: (
            str(v)
            if isinstance(v, Path)
            else v.to_document()
            if isinstance(v, PipelineCatalog)
            else v
        )
        for f in dataclasses.fields(settings)
        for v in [getattr(settings, f.name)]
    }


def settings_from_document(document: dict[str, Any]) -> Settings:
    paths = {"root", "state_dir", "provider_mirror", "runtime_cache_dir"}
    values = {k: Path(v) if k in paths and v else v for k, v in document.items()}
    values["pipelines"] = PipelineCatalog.from_document(document["pipelines"], values["root"])
    return Settings(**values)


class LocalSchedule:
    def __init__(self, state_dir: Path, endpoint: str) -> None:
        self.endpoint = endpoint
        self.dir = monitoring_dir(state_dir, endpoint)
        self.record = self.dir / "schedule.json"
        self.lock = self.dir / "schedule.lock"
        self.log = self.dir / "schedule.log"

    def status(self) -> dict[str, Any] | None:
        """The running schedule's record, or None."""
        try:
            record = json.loads(self.record.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return record if processes.is_ours(record.get("pid"), _MODULE, str(self.dir)) else None

    def start(
        self,
        settings: Settings,
        every: timedelta,
        stage: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Start it (replacing a running one, so a new interval takes effect); ``stage``:
        the stage whose endpoint it watches (None: the environment's own)."""
        self.stop()
        self.dir.mkdir(parents=True, exist_ok=True)
        settings_file = self.dir / "schedule-settings.json"
        settings_file.write_text(json.dumps(settings_document(settings)))
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    _MODULE,
                    "--settings",
                    str(settings_file),
                    "--every",
                    str(int(every.total_seconds())),
                    "--dir",
                    str(self.dir),
                    *(["--stage", stage] if stage else []),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=settings.root,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status and status["pid"] == process.pid:
                return status
            if process.poll() is not None:
                raise MlopsError(f"The monitoring schedule exited at once; see {self.log}.")
            time.sleep(0.05)
        processes.terminate(process.pid)
        raise MlopsError(f"The monitoring schedule did not start within {timeout:.0f} s.")

    def stop(self) -> bool:
        status = self.status()
        if status:
            processes.terminate(status["pid"])
        self.record.unlink(missing_ok=True)
        return status is not None


def stop_schedules(state_dir: Path) -> int:
    """Stop every local monitoring schedule under a state folder; how many were running."""
    root = state_dir / "monitoring"
    if not root.is_dir():
        return 0
    return sum(
        LocalSchedule(state_dir, p.name).stop() for p in sorted(root.iterdir()) if p.is_dir()
    )


def endpoint_running(endpoint_dir: Path) -> bool:
    """The local endpoint is up (its pid file names a front of this endpoint)."""
    from pipelines.serving.local_endpoint import front_running

    return front_running(endpoint_dir)


def _run_once(settings: Settings, every: timedelta, stage: str | None) -> str:
    from pipelines.config.deployment import Deployment
    from pipelines.monitoring.execution import run_monitoring
    from pipelines.stack import stacks as infra

    # A local schedule watches the local endpoint: the emulator's stack.
    stack = infra.open_emulator_stack(settings, Deployment.parse("local"))
    config = infra.read_infra_config(stack)
    result = run_monitoring(settings, stack.connection, config, since=every, stage=stage)
    return (
        f"{result.records} rows, {len(result.all_violations)} violation(s), "
        f"{len(result.notifications)} alarm(s) raised, exit {result.exit_code}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=_MODULE)
    parser.add_argument("--settings", type=Path, required=True)
    parser.add_argument("--every", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--stage", default=None)
    args = parser.parse_args(argv)
    settings = settings_from_document(json.loads(args.settings.read_text()))
    every = timedelta(seconds=args.every)
    args.dir.mkdir(parents=True, exist_ok=True)
    handle = (args.dir / "schedule.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another monitoring schedule runs for this endpoint", flush=True)
        sys.exit(75)
    write_json_atomically(
        args.dir / "schedule.json",
        {
            "pid": os.getpid(),
            "every_seconds": args.every,
            "started": time.time(),
            "stage": args.stage,
        },
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    endpoint_dir = settings.state_dir / "endpoints" / args.dir.name
    while not stopping.wait(args.every):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if not endpoint_running(endpoint_dir):
            # Whoever took the endpoint down (or killed it) did not stop us: stop here.
            print(f"{stamp} the endpoint is not running: schedule ends", flush=True)
            break
        try:
            print(f"{stamp} monitoring: {_run_once(settings, every, args.stage)}", flush=True)
        except MlopsError as error:
            print(f"{stamp} monitoring failed: {error}", flush=True)
        except Exception:  # a schedule outlives one bad run; the log has the traceback
            print(f"{stamp} monitoring crashed:\n{traceback.format_exc()}", flush=True)


if __name__ == "__main__":
    main()
