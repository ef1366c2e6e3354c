"""Benchmark a monitoring execution over captured records.

    python benchmarks/monitor.py [--sizes 100000,1000000] [--repeat 1]

Figures (issue #15 goals in brackets):
- records per second of a data-quality monitoring execution over 1M captured records
  [>= 50,000 records/s];
- peak memory (the process's maximum RSS, interpreter and libraries included) [< 1 GiB];
- time at 1M records over 10x the time at 100k [within 1.2x of linear, i.e. ratio <= 12].

The records are SageMaker data-capture JSON lines, one single-row CSV request each (the
costliest shape per row), in the sample's 13 features with their column types, written in
capture files of 10,000 records in the ``<endpoint>/AllTraffic/yyyy/mm/dd/hh`` layout of a
local folder; the baseline is the analyzer's statistics and constraints of the sample data.
Each size runs in a fresh process, so its peak RSS is its own. What is timed is what
``invoke monitor`` does after the S3 listing: read the files one by one, parse, compute the
statistics, check them against the baseline and compute each feature's distance. Reading
from the emulator's S3 instead adds the transfer of ~0.5 GB, which this does not measure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from pipelines.config.settings import PROJECT_ROOT  # noqa: E402
from pipelines.executor.checks import load_analyzer  # noqa: E402
from pipelines.monitoring import capture_reader as capture  # noqa: E402
from pipelines.monitoring import drift  # noqa: E402
from pipelines.monitoring.execution import analyze_window  # noqa: E402

SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
ENDPOINT = "bench-endpoint"
TARGET = "medv"
FILE_RECORDS = 10_000
console = Console()


def generate(root: Path, records: int, when: datetime) -> list[str]:
    """Capture files of single-row requests resampled from the sample (so nothing drifts), in
    the sample's formatting; returns the feature names."""
    sample = pd.read_csv(SAMPLE)
    features = [c for c in sample.columns if c != TARGET]
    rng = np.random.default_rng(0)
    folder = root / ENDPOINT / capture.VARIANT / when.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for start in range(0, records, FILE_RECORDS):
        count = min(FILE_RECORDS, records - start)
        rows = sample[features].iloc[rng.integers(0, len(sample), count)]
        bodies = rows.to_csv(header=False, index=False).splitlines()
        with (folder / f"{start:09d}.jsonl").open("w") as handle:
            for number, body in enumerate(bodies):
                handle.write(
                    json.dumps(
                        {
                            "captureData": {
                                "endpointInput": {
                                    "observedContentType": "text/csv",
                                    "mode": "INPUT",
                                    "data": body + "\n",
                                    "encoding": "CSV",
                                },
                                "endpointOutput": {
                                    "observedContentType": "application/json",
                                    "mode": "OUTPUT",
                                    "data": '{"predictions": [22.5]}',
                                    "encoding": "JSON",
                                },
                            },
                            "eventMetadata": {
                                "eventId": f"{start + number:036d}",
                                "inferenceTime": stamp,
                            },
                            "eventVersion": "0",
                        },
                        separators=(",", ":"),
                    )
                    + "\n"
                )
    return features


def execution(root: Path, features: list[str], when: datetime) -> dict[str, float]:
    """One monitoring execution in this process; its figures."""
    analyzer = load_analyzer()
    baseline_frame = analyzer.read_csv(SAMPLE)
    base_statistics = analyzer.data_statistics(baseline_frame)
    base_constraints = analyzer.suggest_constraints(base_statistics)
    # The captured requests here carry no responses: compare the feature columns only.
    keep = set(features)
    base_statistics = {
        **base_statistics,
        "features": [f for f in base_statistics["features"] if f["name"] in keep],
    }
    base_constraints = {
        **base_constraints,
        "features": [f for f in base_constraints["features"] if f["name"] in keep],
    }
    window = capture.Window(when - timedelta(minutes=30), when + timedelta(minutes=30))
    started = time.perf_counter()
    dataset, _, _ = analyze_window(
        analyzer, capture.FolderCaptureSource(root), ENDPOINT, window, features
    )
    statistics = dataset.statistics()
    violations, drifts = drift.check(analyzer, statistics, base_statistics, base_constraints)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "records": dataset.rows,
        "seconds": seconds,
        "peak_bytes": peak,
        "violations": len(violations),
        "max_distance": max(d.distance or 0 for d in drifts),
    }


def measure(records: int, repeat: int) -> dict[str, float]:
    when = datetime(2026, 1, 1, 12, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="mlops-monitor-bench-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        features = generate(root, records, when)
        console.print(f"  generated {records:,} records in {time.perf_counter() - began:.1f} s")
        runs = []
        for _ in range(repeat):
            done = subprocess.run(
                [sys.executable, __file__, "--run", str(root), "--features", ",".join(features)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: r["seconds"])
    return runs[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--features", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        when = datetime(2026, 1, 1, 12, tzinfo=UTC)
        print(json.dumps(execution(args.run, args.features.split(","), when)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for size in sizes:
        console.print(f"[bold]{size:,} records[/]")
        results[size] = measure(size, args.repeat)
    table = Table(title="Monitoring execution (data quality, streamed capture files)")
    for column in ("records", "seconds", "records/s", "peak RSS", "violations", "max distance"):
        table.add_column(column, justify="right")
    for r in results.values():
        table.add_row(
            f"{r['records']:,}",
            f"{r['seconds']:.2f}",
            f"{r['records'] / r['seconds']:,.0f}",
            f"{r['peak_bytes'] / 2**20:,.0f} MiB",
            str(r["violations"]),
            f"{r['max_distance']:.4f}",
        )
    console.print(table)
    if len(sizes) >= 2:
        small, large = results[sizes[0]], results[sizes[-1]]
        factor = sizes[-1] / sizes[0]
        ratio = large["seconds"] / small["seconds"]
        console.print(
            f"time x{ratio:.2f} for x{factor:g} records: {ratio / factor:.2f} of linear "
            f"(goal <= 1.2)"
        )


if __name__ == "__main__":
    main()
