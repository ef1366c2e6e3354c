"""How fast the command line answers, against invoke itself.

    python benchmarks/startup.py [--repeat N]

Times, as median wall seconds over N runs (each a new process, as a user types them):
- ``invoke --list`` of a bare one-task collection: what invoke alone costs;
- ``invoke --list`` and ``invoke <task> --help`` of this project     [within 4x of the bare]
- ``invoke executions`` on an empty state folder (it reads the local records) [< 1.5 s]

Runs with its own empty state folder; the checkout is untouched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
INVOKE = str(Path(sys.executable).with_name("invoke"))
BARE = '''from invoke import task


@task
def hello(c):
    """Say hello."""
    print("hello")
'''


def timed(command: list[str], cwd: Path, env: dict[str, str], repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as temp:
        bare = Path(temp) / "bare"
        bare.mkdir()
        (bare / "tasks.py").write_text(BARE)
        env = {**os.environ, "MLOPS_STATE_DIR": str(Path(temp) / "state")}
        base = timed([INVOKE, "--list"], bare, env, args.repeat)
        rows = [("bare collection: invoke --list", base, None)]
        for label, command, goal in [
            ("invoke --list", [INVOKE, "--list"], 4 * base),
            ("invoke pipeline-run --help", [INVOKE, "pipeline-run", "--help"], 4 * base),
            ("invoke predict --help", [INVOKE, "predict", "--help"], 4 * base),
            ("invoke promote --help", [INVOKE, "promote", "--help"], 4 * base),
            ("invoke executions", [INVOKE, "executions"], 1.5),
        ]:
            rows.append((label, timed(command, ROOT, env, args.repeat), goal))

    table = Table(title=f"Command start-up, median of {args.repeat} (s)")
    for column in ("command", "seconds", "x bare", "goal"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for label, seconds, goal in rows:
        goal_text = "" if goal is None else f"<= {goal:.2f}"
        table.add_row(label, f"{seconds:.3f}", f"{seconds / base:.1f}x", goal_text)
    Console().print(table)


if __name__ == "__main__":
    main()
