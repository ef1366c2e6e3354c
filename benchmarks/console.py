"""How fast the console's pages answer, and its export.

    python benchmarks/console.py [--repeat N]

On its own stack (emulator, state folder, ports): infra-up, two pipeline runs, the first
version approved. Then `invoke ui` in its own process, as a user starts it, serves each
page N + 1 times to a real HTTP client: the first request (records opened, Terraform
outputs read) and the median of the rest. Then `invoke ui --export`, also a process.
Printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
from _support import approved_version, free_port, throwaway_settings
from rich.console import Console
from rich.table import Table

from pipelines.backends.local import LocalBackend
from pipelines.definition.parameters import check_arguments
from pipelines.launch import prepare as run
from pipelines.targets import ensure_local_stack

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def timed(session, url: str, repeat: int) -> tuple[float, float, int]:
    seconds = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        response = session.get(url, timeout=60)
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
    return seconds[0], statistics.median(seconds[1:]), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with throwaway_settings("bench-console-") as (settings, temp):
        console.print("Setting up: infra-up, two pipeline runs, an approval ...")
        ready = ensure_local_stack(settings)
        stack, config = ready.stack, ready.config
        try:
            approved_version(settings, stack, config)
            backend = LocalBackend(settings, stack.connection)
            prepared = run.prepare_run(
                stack.connection, config, check_arguments(["NEstimators=50"], None), None
            )
            second = backend.wait(backend.start(prepared).execution_id, timeout=900)
            first = backend.list_executions(limit=2)[-1]
            pages = {
                "runs": "/",
                "a run (graph, champion comparison)": f"/runs/{second.execution_id}",
                "a step's log": f"/runs/{second.execution_id}/logs/TrainModel",
                "compare two runs": f"/compare/{first.execution_id},{second.execution_id}",
                "registry": "/registry",
                "deployments": "/deployments",
                "monitoring": "/monitoring",
                "automation": "/automation",
            }
            table = Table(title=f"Console pages: first request, then the median of {args.repeat}")
            for column in ("page", "first ms", "then ms", "KiB"):
                table.add_column(column, justify="left" if column == "page" else "right")
            env = {
                **os.environ,
                "MLOPS_STATE_DIR": str(settings.state_dir),
                "MLOPS_EMULATOR_PORT": str(settings.emulator_port),
                "MLOPS_ENDPOINT_PORT": str(settings.endpoint_port),
                "COLUMNS": "300",
            }
            started = time.perf_counter()
            task = subprocess.Popen(
                [sys.executable, "-m", "invoke", "ui", "--port", str(free_port())],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                address = re.search(r"http://\S+", task.stdout.readline()).group(0)
                session = requests.Session()
                while True:
                    try:
                        session.get(address, timeout=60).raise_for_status()
                        break
                    except requests.ConnectionError:
                        time.sleep(0.05)
                console.print(
                    f"invoke ui answered {time.perf_counter() - started:.2f} s after start"
                )
                base = address.split("/?", 1)[0]
                for name, path in pages.items():
                    first_s, median_s, size = timed(session, base + path, args.repeat)
                    table.add_row(
                        name, f"{first_s * 1e3:.0f}", f"{median_s * 1e3:.0f}", f"{size / 1024:.0f}"
                    )
            finally:
                task.send_signal(signal.SIGINT)
                task.wait(timeout=30)
            console.print(table)

            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "invoke", "ui", "--export", str(temp / "site")],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            written = len(list((temp / "site").glob("*.html")))
            console.print(f"invoke ui --export: {written} pages in {seconds:.1f} s (a new process)")
        finally:
            assert stack.emulator is not None
            stack.emulator.stop()


if __name__ == "__main__":
    main()
