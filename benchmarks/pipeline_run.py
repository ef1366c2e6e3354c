"""Benchmark the local executor against running the three scripts by hand.

    python benchmarks/pipeline_run.py [--repeat N] [--skip-large]

Figures (issue #4 and #11 goals in brackets):
- first use of the scikit-learn 1.2-1 runtime: building its environment with uv,
  from a warm package cache                                               [<= 30 s]
- local execution wall time / the same work done directly: the three scripts in
  sequence in the same runtime environment (Python 3.9, the container's pins), then
  the check steps' analyses (data quality, bias, model quality) in one host
  process, as the executor runs them                                     [<= 1.25x]
- cached re-run / cold run                                                [<= 0.10x]
- 100k and 1M generated rows in the sample's schema: completion, the peak
  memory of the largest job [< 2 GiB], and time(1M) / time(100k)          [<= 12x]

Runs against its own emulator and state directory; the checkout is untouched.
The large runs use NEstimators=20 and MaxDepth=12, the same for both sizes, so
the ratio measures the pipeline's scaling rather than unbounded tree growth.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from rich.console import Console
from rich.table import Table

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.containers.environments import EnvironmentCache
from pipelines.containers.profiles import profiles
from pipelines.core.records import Execution
from pipelines.definition.parameters import check_arguments
from pipelines.launch import prepare as run
from pipelines.targets import ensure_local_stack

SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
TRAINING = PROJECT_ROOT / "training"
console = Console()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The check steps' own work: the executor's analyses, in one host process.
CHECKS = """
import json, sys
from pathlib import Path
from pipelines.executor.checks import analyze_bias, analyze_quality, load_analyzer
splits, predictions = Path(sys.argv[1]), Path(sys.argv[2])
analyzer = load_analyzer()
csv = {"dataset_format": json.dumps({"csv": {"header": True}})}
analyze_quality(analyzer, {"Environment": csv}, splits / "train")
analyze_bias(analyzer, splits / "baseline", splits / "train")
model = {**csv, "analysis_type": "MODEL_QUALITY", "problem_type": "Regression",
         "inference_attribute": "prediction", "ground_truth_attribute": "label"}
analyze_quality(analyzer, {"Environment": model}, predictions)
"""


def direct_scripts(workdir: Path, python: str) -> float:
    """preprocess, train and evaluate run directly with ``python``, one after the other,
    then the check steps' analyses."""
    out, model, evaluation = workdir / "out", workdir / "model", workdir / "eval"
    commands = [
        [
            python,
            str(TRAINING / "preprocess.py"),
            f"--input-dir={SAMPLE.parent}",
            f"--input-file={SAMPLE.name}",
            f"--output-dir={out}",
            "--target-column=medv",
            # As the definition passes them: the bias check's analysis config too.
            "--bias-facet=chas",
            "--bias-facet-threshold=0.5",
            "--bias-label-threshold=",
        ],
        [
            python,
            str(TRAINING / "train.py"),
            f"--train={out / 'train'}",
            f"--validation={out / 'validation'}",
            f"--model-dir={model}",
            f"--output-data-dir={workdir / 'output'}",
        ],
        [
            python,
            str(TRAINING / "evaluate.py"),
            f"--model-dir={model}",
            f"--test-dir={out / 'test'}",
            f"--output-dir={evaluation}",
            f"--predictions-dir={workdir / 'predictions'}",
        ],
        [sys.executable, "-c", CHECKS, str(out), str(workdir / "predictions")],
    ]
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def timed_run(
    backend: LocalBackend, prepare: Callable[[], run.PreparedRun]
) -> tuple[float, float, Execution]:
    """(execution seconds, seconds as the user waits, final execution), started as
    pipeline-run starts it: the worker spawns while ``prepare`` builds the definition and
    stages code and data, so the user's wait includes both."""
    started = time.perf_counter()
    with backend.launching() as launch:
        execution = launch(prepare())
    finished = backend.wait(execution.execution_id, poll=0.05, timeout=3600)
    if finished.status != "Succeeded":
        raise SystemExit(
            f"execution {finished.execution_id} {finished.status}: {finished.failure_reason}"
        )
    return finished.duration, time.perf_counter() - started, finished


def generate(rows: int, path: Path, seed: int = 0) -> Path:
    """Rows resampled from the sample data with a little noise, in its schema."""
    frame = pd.read_csv(SAMPLE)
    rng = np.random.default_rng(seed)
    big = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
    big = big + rng.normal(0, 0.01, size=big.shape) * frame.std().to_numpy()
    big.to_csv(path, index=False, float_format="%.6g")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as temp:
        workdir = Path(temp)
        # First use of the runtime: a new cache folder, uv's package cache as it is.
        runtime_cache = workdir / "runtimes"
        started = time.perf_counter()
        runtime = EnvironmentCache(runtime_cache).ensure(profiles()["sklearn-1.2-1"])
        build_seconds = time.perf_counter() - started
        settings = Settings.load(
            None,
            environ={
                **os.environ,
                "MLOPS_STATE_DIR": str(workdir / "state"),
                "MLOPS_EMULATOR_PORT": str(free_port()),
                "MLOPS_RUNTIME_CACHE": str(runtime_cache),
                "MLOPS_RUNTIME_HOST": "false",
            },
        )
        started = time.perf_counter()
        ready = ensure_local_stack(settings)
        stack, config = ready.stack, ready.config
        infra_seconds = time.perf_counter() - started
        backend = LocalBackend(settings, stack.connection)
        try:
            figures = measure(args, workdir, stack, config, backend, runtime.python)
            emulator_rss = psutil.Process(stack.emulator.read_info().pid).memory_info().rss
        finally:
            stack.emulator.stop()

    table = Table(title="Local pipeline benchmark")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    table.add_row(
        f"first use: build the {runtime.label} runtime (s)", f"{build_seconds:.1f}", "<= 30"
    )
    table.add_row("infra-up for the benchmark's own emulator (s)", f"{infra_seconds:.1f}", "")
    for name, value, goal in figures:
        table.add_row(name, value, goal)
    table.add_row("emulator resident memory at the end (MiB)", f"{emulator_rss / 2**20:.0f}", "")
    console.print(table)


def measure(args, workdir, stack, config, backend, python) -> list[tuple[str, str, str]]:
    figures: list[tuple[str, str, str]] = []
    direct: list[float] = []
    host: list[float] = []
    cold, cold_total, cached, cached_total = [], [], [], []
    for i in range(args.repeat):
        # Interleaved with the pipeline runs, so a busy machine slows both alike.
        direct.append(direct_scripts(workdir / f"direct-{i}", python))
        host.append(direct_scripts(workdir / f"host-{i}", sys.executable))
        # A fresh emulator and a RandomState no earlier run used: every step misses the cache.
        overrides = check_arguments([f"RandomState={1000 + i}"], None)

        def prepare(overrides=overrides) -> run.PreparedRun:
            return run.prepare_run(stack.connection, config, overrides, None)

        seconds, waited, _ = timed_run(backend, prepare)
        cold.append(seconds)
        cold_total.append(waited)
        # The same command again: the definition is rebuilt, code and data are unchanged.
        seconds, waited, finished = timed_run(backend, prepare)
        hits = [s.name for s in backend.steps(finished.execution_id) if s.cache_hit_of]
        if len(hits) != 6:
            raise SystemExit(f"expected six cache hits (jobs and checks) on the re-run, got {hits}")
        cached.append(seconds)
        cached_total.append(waited)

    direct_s, cold_s, cached_s = (statistics.median(x) for x in (direct, cold, cached))
    cold_wait, cached_wait = statistics.median(cold_total), statistics.median(cached_total)
    figures += [
        ("the same work run directly: scripts, then checks (s)", f"{direct_s:.2f}", ""),
        ("  the same on the host interpreter (s)", f"{statistics.median(host):.2f}", ""),
        ("local execution, cold (s)", f"{cold_s:.2f}", ""),
        ("  as pipeline-run waits: with definition build, staging (s)", f"{cold_wait:.2f}", ""),
        ("local cold / direct", f"{cold_s / direct_s:.2f}x", "<= 1.25x"),
        ("local execution, all cached (s)", f"{cached_s:.2f}", ""),
        ("  as pipeline-run waits (s)", f"{cached_wait:.2f}", ""),
        ("cached / cold", f"{cached_s / cold_s:.2f}x", "<= 0.10x"),
    ]
    if args.skip_large:
        return figures

    large: dict[int, tuple[float, int]] = {}
    for rows in (100_000, 1_000_000):
        data = generate(rows, workdir / f"generated_{rows}.csv")
        overrides = check_arguments(["NEstimators=20", "MaxDepth=12"], str(data))
        seconds, _, finished = timed_run(
            backend,
            lambda overrides=overrides, data=data: run.prepare_run(
                stack.connection, config, overrides, str(data)
            ),
        )
        steps = backend.steps(finished.execution_id)
        peak = max(s.peak_memory_bytes or 0 for s in steps)
        large[rows] = (seconds, peak)
        for step in steps:
            if step.duration and step.type in ("Processing", "Training"):
                figures.append((f"  {rows:,} rows: {step.name} (s)", f"{step.duration:.1f}", ""))
        figures += [
            (f"{rows:,} rows: execution (s)", f"{seconds:.1f}", ""),
            (f"{rows:,} rows: peak job memory (MiB)", f"{peak / 2**20:.0f}", "< 2048"),
        ]
    ratio = large[1_000_000][0] / large[100_000][0]
    figures.append(("time(1M) / time(100k)", f"{ratio:.1f}x", "<= 12x"))
    return figures


if __name__ == "__main__":
    main()
