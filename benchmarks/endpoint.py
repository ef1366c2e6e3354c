"""Benchmark the local endpoint with single-row CSV requests from a load generator on loopback.

    python benchmarks/endpoint.py [--seconds S] [--clients N]

Figures (issue #6 goals in brackets):
- latency of single-row CSV requests, one client at a time: p50 [< 5 ms], p99 [< 20 ms]
- throughput with N concurrent keep-alive clients [>= 500 req/s on 2 cores]
- latency of one 1,000-row CSV request

The endpoint is the real one: its own emulator and state directory, infra-up, a
pipeline run with the default parameters (a 100-tree forest), approval, `deploy`.
The load generator runs in separate processes so its own CPU use does not share a
GIL with the clients it measures; they share the machine's cores with the endpoint,
as a client on the same host would.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.registry import APPROVED, Registry
from pipelines.runs import prepare as run
from pipelines.serving import deploy
from pipelines.targets import ensure_local_stack

SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
console = Console()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def feature_rows(target: str = "medv") -> list[str]:
    with SAMPLE.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return [",".join(v for k, v in row.items() if k != target) for row in reader]


def client_loop(port: int, bodies: list[bytes], seconds: float, results: multiprocessing.Queue):
    """One keep-alive connection sending requests back to back for ``seconds``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    index = 0
    while time.perf_counter() < deadline:
        body = bodies[index % len(bodies)]
        index += 1
        started = time.perf_counter()
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        errors += response.status != 200
    connection.close()
    results.put((latencies, errors))


def load(port: int, bodies: list[bytes], clients: int, seconds: float) -> tuple[list[float], int]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=client_loop, args=(port, bodies, seconds, results))
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    collected = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join()
    latencies = [value for batch, _ in collected for value in batch]
    return latencies, sum(errors for _, errors in collected)


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=4, help="for the throughput figure")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as temp:
        settings = Settings.load(
            None,
            environ={
                **os.environ,
                "MLOPS_STATE_DIR": str(Path(temp) / "state"),
                "MLOPS_EMULATOR_PORT": str(free_port()),
                "MLOPS_ENDPOINT_PORT": str(free_port()),
            },
        )
        console.print("Setting up: infra-up, pipeline run, approve, deploy ...")
        ready = ensure_local_stack(settings)
        stack, config = ready.stack, ready.config
        endpoint = None
        try:
            prepared = run.prepare_run(stack.connection, config, {}, None)
            backend = LocalBackend(settings, stack.connection)
            execution = backend.wait(backend.start(prepared).execution_id, timeout=600)
            if execution.status != "Succeeded":
                raise SystemExit(f"the pipeline run {execution.status}: {execution.failure_reason}")
            registry = Registry(stack.connection, config.model_package_group_name)
            version = registry.set_status(None, APPROVED, "benchmark", "benchmark")
            endpoint = deploy.local_endpoint(
                settings, stack.connection, config, deploy.DeploySettings.from_settings(settings)
            )
            started = time.perf_counter()
            endpoint.deploy(version)
            deploy_seconds = time.perf_counter() - started
            figures = measure(settings.endpoint_port, args)
        finally:
            if endpoint is not None:
                endpoint.down()
            stack.emulator.stop()

    table = Table(title="Local endpoint benchmark (single-row text/csv unless stated)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    table.add_row(
        "deploy: model server up, health-checked, switched (s)", f"{deploy_seconds:.2f}", ""
    )
    for name, value, goal in figures:
        table.add_row(name, value, goal)
    console.print(table)


def measure(port: int, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    rows = feature_rows()
    singles = [row.encode() for row in rows]
    load(port, singles, 1, 1.0)  # warm-up: imports, first predictions

    latencies, errors = load(port, singles, 1, args.seconds)
    figures = [
        ("one client: requests", f"{len(latencies)}", ""),
        ("one client: p50 latency (ms)", f"{percentile_ms(latencies, 50):.2f}", "< 5"),
        ("one client: p99 latency (ms)", f"{percentile_ms(latencies, 99):.2f}", "< 20"),
    ]
    latencies, more_errors = load(port, singles, args.clients, args.seconds)
    errors += more_errors
    figures += [
        (
            f"{args.clients} clients: throughput (req/s)",
            f"{len(latencies) / args.seconds:.0f}",
            ">= 500",
        ),
        (f"{args.clients} clients: p50 latency (ms)", f"{percentile_ms(latencies, 50):.2f}", ""),
        (f"{args.clients} clients: p99 latency (ms)", f"{percentile_ms(latencies, 99):.2f}", ""),
    ]
    batch = ("\n".join((rows * 2)[:1000]) + "\n").encode()
    batch_latencies, batch_errors = load(port, [batch], 1, max(2.0, args.seconds / 2))
    errors += batch_errors
    figures += [
        (
            "1,000-row request: median latency (ms)",
            f"{statistics.median(batch_latencies) * 1000:.1f}",
            "",
        ),
        ("failed requests", str(errors), "0"),
    ]
    return figures


if __name__ == "__main__":
    main()
