"""Benchmark a newcomer's first run: clone, the README's first command, first model.

    python benchmarks/first_run.py [--cache cold|warm|both] [--keep]

The README's first command is `scripts/install && .venv/bin/invoke pipeline-run`.
For each cache state this clones the repository's committed HEAD into a temporary
folder and runs that command's two halves as the README does, printing separately:
- install: `scripts/install` (a venv, uv, then `uv sync --locked` from uv.lock);
  it is also the whole install of the README's test command;
- infra: the cold local `infra-up` inside `pipeline-run` (emulator, init, plan,
  apply), as the task reports it;
- run: the rest of `pipeline-run` (upload, definition, execution, summary).

"cold" gives uv and pip empty caches of their own (every package is downloaded);
"warm" uses the user's caches, filled by any earlier install. Goals (issue #13):
install <= 60 s warm, the whole first command <= 180 s.

Each clone runs its own emulator on a free port and is destroyed afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_APPLIED = re.compile(r"Local infrastructure applied: (?P<seconds>[0-9.]+) s")


@dataclass(frozen=True)
class Timing:
    cache: str
    install: float
    infra: float
    run: float

    @property
    def first_command(self) -> float:
        return self.install + self.infra + self.run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}); see {log}")
    return seconds, result.stdout


def first_run(cache: str, workdir: Path) -> Timing:
    clone = workdir / f"clone-{cache}"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "MLOPS_")) and key != "PYTHONPATH"
    }
    env |= {
        "MLOPS_EMULATOR_PORT": str(free_port()),
        "MLOPS_ENDPOINT_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    if "MLOPS_TF_PROVIDER_MIRROR" in os.environ:  # offline machines: as .ci/run finds it
        env["MLOPS_TF_PROVIDER_MIRROR"] = os.environ["MLOPS_TF_PROVIDER_MIRROR"]
    if cache == "cold":
        env |= {"UV_CACHE_DIR": str(workdir / "uv-cache"), "PIP_NO_CACHE_DIR": "1"}
    install, _ = timed(["scripts/install"], clone, env, workdir / f"install-{cache}.log")
    try:
        total, out = timed(
            [".venv/bin/invoke", "pipeline-run"], clone, env, workdir / f"run-{cache}.log"
        )
    finally:
        subprocess.run(
            [".venv/bin/invoke", "destroy", "--yes"],
            cwd=clone,
            env=env,
            capture_output=True,
            check=False,
        )
    match = _APPLIED.search(out)
    infra = float(match["seconds"]) if match else 0.0
    return Timing(cache, install, infra, total - infra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", choices=["cold", "warm", "both"], default="both")
    parser.add_argument("--keep", action="store_true", help="keep the clones and logs")
    args = parser.parse_args()
    caches = ["cold", "warm"] if args.cache == "both" else [args.cache]
    workdir = Path(tempfile.mkdtemp(prefix="mlops-first-run-"))
    head = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True)
    print(f"HEAD {head.strip()}; work in {workdir}")
    try:
        timings = [first_run(cache, workdir) for cache in caches]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'cache':<6} {'install':>9} {'infra':>9} {'run':>9} {'first command':>14}")
    for t in timings:
        print(
            f"{t.cache:<6} {t.install:>8.1f}s {t.infra:>8.1f}s {t.run:>8.1f}s "
            f"{t.first_command:>13.1f}s"
        )
    print("goals: install <= 60 s (warm), first command <= 180 s; the README's test")
    print("command's install is the same scripts/install.")
    sys.exit(0)


if __name__ == "__main__":
    main()
