"""Time local `infra-up` (cold and no-change) and `destroy` against a fresh emulator.

    python benchmarks/infra_up.py [--repeat N]

Runs on a temporary copy of infra/ with its own state directory and port, so the
checkout's emulator and state are untouched. Prints the median of N runs.
Goals (issue #2): cold < 30 s, no-change < 10 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipelines import targets
from pipelines.config.deployment import Deployment
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.stack import stacks as infra


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_COMPLETE = re.compile(r"^(?P<address>\S+): Creation complete after (?P<time>(\d+m)?\d+s)")


def seconds(text: str) -> float:
    minutes, _, rest = text.rpartition("m")
    return float(minutes or 0) * 60 + float(rest.rstrip("s"))


def one_run(workdir: Path) -> dict[str, float]:
    root = workdir / "project"
    shutil.copytree(
        PROJECT_ROOT / "infra",
        root / "infra",
        ignore=shutil.ignore_patterns(".terraform", "backend_override.tf.json", "*.tfstate*"),
    )
    settings = Settings.load(
        None,
        root=root,
        environ={
            **os.environ,
            "MLOPS_STATE_DIR": str(root / ".mlops"),
            "MLOPS_EMULATOR_PORT": str(free_port()),
        },
    )
    deployment = Deployment.parse("local")
    figures: dict[str, float] = {}
    created: dict[str, float] = {}

    def record(line: str) -> None:
        match = _COMPLETE.match(line.strip())
        if match:
            created[match["address"]] = seconds(match["time"])

    started = time.perf_counter()
    stack = targets.open_stack(settings, deployment, start_emulator=True, on_output=record)
    figures["emulator start"] = time.perf_counter() - started
    try:
        cold = infra.infra_up(stack)
        figures["cold infra-up (total)"] = time.perf_counter() - started
        figures["  init"] = cold.seconds["init"]
        figures["  plan"] = cold.seconds["plan"]
        figures["  apply"] = cold.seconds["apply"]
        slowest = max(created, key=created.__getitem__)
        figures[f"  slowest resource: {slowest.rsplit('.', 1)[0]}"] = created[slowest]

        started = time.perf_counter()
        warm = infra.infra_up(targets.open_stack(settings, deployment))
        figures["no-change infra-up"] = time.perf_counter() - started
        if warm.changed:
            raise SystemExit("the second infra-up planned changes: not idempotent")

        started = time.perf_counter()
        targets.destroy_stack(targets.open_stack(settings, deployment))
        figures["destroy"] = time.perf_counter() - started
    finally:
        stack.emulator.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    runs = []
    for index in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-infra-") as workdir:
            runs.append(one_run(Path(workdir)))
            print(f"run {index + 1}/{args.repeat} done", file=sys.stderr)

    table = Table(title=f"Local infra benchmark (median of {args.repeat})")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    for name in runs[0]:
        table.add_row(name, f"{statistics.median(r[name] for r in runs):.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
