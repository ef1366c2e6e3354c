"""Benchmark the local endpoint against the SageMaker scikit-learn container's serving stack.

    python benchmarks/endpoint.py [--seconds S] [--clients N] [--rounds R]

Both serve the same deployed release (model and code) to the same load generator:
(A) the local endpoint's public port: model server workers accepting from it, data
    capture at 100 %;
(B) the peer, ``benchmarks/container_peer.py``: the 1.2-1 container's gunicorn + gevent +
    Flask stack (2 workers, no nginx) in the container's runtime, calling the same
    ``inference.py`` handlers.

Figures (issue #18 goals in brackets), printed, never asserted:
- throughput of N keep-alive clients posting single CSV rows, A B A B in R rounds, and
  the ratio local / peer per round and overall (sum / sum) [>= 1.5];
- single-row latency, one client at a time, p50 and p99, both sides, from two clients:
  a minimal one on a raw socket (a prepared request, the response read by its
  Content-Length: next to nothing of its own, as the bound assumes), whose local p50 is
  held against 2 x (in-process handler time + one loopback round trip) [within that
  bound]; and Python's ``http.client``, which itself costs about 0.2 ms a request here;
- the handlers' in-process time (``input_fn -> predict_fn -> output_fn`` in the model's
  runtime) and a 1-byte loopback TCP round trip, p50. Both are measured in short slices
  between the raw-socket latency slices (local, peer, handlers, round trip, repeated),
  so the bound and the latency held against it see the same load: on a shared machine
  the handlers' own time moves by half between minutes. Each slice's p50 is also held
  against its own slice's bound. On a VM a round trip between two CPUs costs several
  times one within a CPU (waking the other vCPU), and the scheduler places the client,
  the worker and the echo process as it likes; so the local figures are also taken with
  the placement held (``sched_setaffinity``): all on one core, and client and server
  on two, each against a round trip placed the same way;
- latency of one 1,000-row CSV request.

The endpoint is the real one: its own emulator and state directory, infra-up, a
pipeline run with the default parameters (a 100-tree forest), approval, `deploy`.
The load generator runs in separate processes so its own CPU use does not share a
GIL with the clients it measures; they share the machine's cores with the servers,
as a client on the same host would. Sides alternate because the machine is shared.
"""

from __future__ import annotations

import argparse
import csv
import functools
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import time
from pathlib import Path

import numpy as np
from _support import (
    HandlerTimer,
    approved_version,
    free_port,
    hold_to_cpus,
    loopback_rtt,
    throwaway_settings,
)
from container_peer import WORKERS, peer_runtime, running_peer
from rich.console import Console
from rich.table import Table

from pipelines.config.settings import PROJECT_ROOT
from pipelines.serving import deploy
from pipelines.serving.local_endpoint import UnixHTTPConnection
from pipelines.serving.model_runtime import model_server_runtime
from pipelines.targets import ensure_local_stack

SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
RATIO_GOAL = 1.5
console = Console()


def feature_rows(target: str = "medv") -> list[str]:
    with SAMPLE.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return [",".join(v for k, v in row.items() if k != target) for row in reader]


def client_loop(
    port: int | str, bodies: list[bytes], seconds: float, results: multiprocessing.Queue
):
    """One keep-alive connection sending requests back to back for ``seconds``; ``port``
    a TCP port on 127.0.0.1, or the path of a model server's Unix socket."""
    connection = (
        UnixHTTPConnection(Path(port), 30)
        if isinstance(port, str)
        else http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    )
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


def raw_client_loop(
    port: int,
    bodies: list[bytes],
    seconds: float,
    results: multiprocessing.Queue,
    cpus: set[int] | None = None,
) -> None:
    """As :func:`client_loop`, with the least client work there is: requests prepared
    up front, written to a socket, each response read up to its Content-Length; run on
    ``cpus`` only, when given."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    requests = [
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        b"Accept: text/csv\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in bodies
    ]
    latencies: list[float] = []
    errors = 0
    pending = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.perf_counter() + seconds
        index = 0
        while time.perf_counter() < deadline:
            request = requests[index % len(requests)]
            index += 1
            started = time.perf_counter()
            sock.sendall(request)
            status = _read_response(sock, pending)
            latencies.append(time.perf_counter() - started)
            errors += status != 200
    results.put((latencies, errors))


def _read_response(sock: socket.socket, pending: bytearray) -> int:
    """Read one response with a Content-Length body; its status code. ``pending`` holds
    what was received past it, for the next call."""
    while b"\r\n\r\n" not in pending:
        _receive(sock, pending, "mid-response")
    end = pending.index(b"\r\n\r\n") + 4
    lines = pending[: end - 4].decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in lines[1:])
    length = int(next(v for k, v in fields.items() if k.strip().lower() == "content-length"))
    while len(pending) < end + length:
        _receive(sock, pending, "mid-body")
    del pending[: end + length]
    return int(lines[0].split()[1])


def _receive(sock: socket.socket, pending: bytearray, where: str) -> None:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError(f"the server closed the connection {where}")
    pending += chunk


def load(
    port: int | str, bodies: list[bytes], clients: int, seconds: float, client=client_loop
) -> tuple[list[float], int]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=client, args=(port, bodies, seconds, results))
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
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=4, help="for the throughput figures")
    parser.add_argument("--rounds", type=int, default=2, help="alternating A B rounds")
    parser.add_argument(
        "--slices", type=int, default=8, help="interleaved single-row latency slices"
    )
    args = parser.parse_args()

    with throwaway_settings("bench-endpoint-") as (settings, temp):
        console.print("Setting up: infra-up, pipeline run, approve, deploy, the peer ...")
        ready = ensure_local_stack(settings)
        stack, config = ready.stack, ready.config
        endpoint = None
        try:
            version = approved_version(settings, stack, config)
            capture = deploy.DeploySettings.from_settings(settings, capture_percent=100)
            endpoint = deploy.local_endpoint(settings, stack.connection, config, capture)
            started = time.perf_counter()
            endpoint.deploy(version)
            deploy_seconds = time.perf_counter() - started
            release = Path(json.loads(endpoint.state_file.read_text())["release"])
            program = version.environment.get("SAGEMAKER_PROGRAM", "inference.py")
            peer = peer_runtime(version.image, settings.runtime_cache, console.print)
            log = temp / "peer.log"
            model = model_server_runtime(version.image, settings.runtime_cache)
            server = json.loads(endpoint.state_file.read_text())["model_server_pid"]
            with (
                running_peer(release, program, peer.python, free_port(), log) as port,
                HandlerTimer(release, model.python, feature_rows(), program) as timer,
            ):
                try:
                    figures = measure(settings.endpoint_port, port, timer, args, server)
                finally:
                    hold_to_cpus([server, timer.process.pid], None)
        finally:
            if endpoint is not None:
                endpoint.down()
            stack.emulator.stop()
    report(figures, deploy_seconds, args)


def placements() -> dict[str, tuple[set[int] | None, set[int] | None]]:
    """Where the latency client and the server side (model server workers, handler timer,
    echo) may run: as the scheduler likes, and, given two CPUs, held to one or to two."""
    free: dict[str, tuple[set[int] | None, set[int] | None]] = {"as scheduled": (None, None)}
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return free
    return {**free, "one core": ({cpus[0]}, {cpus[0]}), "two cores": ({cpus[0]}, {cpus[1]})}


def measure(
    local: int, peer: int, timer: HandlerTimer, args: argparse.Namespace, server: int
) -> dict:
    """Every figure of both sides; throughput rounds alternate A B A B, and single-row
    latency slices alternate with the handlers' in-process time and a round trip, in
    each placement (``server``: the model server's pid)."""
    rows = feature_rows()
    singles = [row.encode() for row in rows]
    sides = {"local": local, "peer": peer}
    for port in sides.values():  # warm-up: imports, first predictions, every worker's model
        load(port, singles, args.clients, 2.0)
    figures: dict = {side: {"rounds": [], "many": [], "errors": 0} for side in sides}
    for _ in range(args.rounds):
        for side, port in sides.items():
            latencies, errors = load(port, singles, args.clients, args.seconds)
            figures[side]["rounds"].append(len(latencies) / args.seconds)
            figures[side]["many"] += latencies
            figures[side]["errors"] += errors
    figures["peer"]["single"] = []
    held = placements()
    placed = figures["placed"] = {
        name: {"single": [], "work": [], "rtt": [], "slices": []} for name in held
    }
    seconds = max(0.5, args.seconds / args.slices)
    for _ in range(args.slices):
        single, errors = load(peer, singles, 1, seconds, raw_client_loop)
        figures["peer"]["single"] += single
        figures["peer"]["errors"] += errors
        for name, (client_cpus, server_cpus) in held.items():
            hold_to_cpus([server, timer.process.pid], server_cpus)
            client = functools.partial(raw_client_loop, cpus=client_cpus)
            single, errors = load(local, singles, 1, seconds, client)
            work = timer.measure(seconds)
            rtt = loopback_rtt(1000, client_cpus, server_cpus)
            figures["local"]["errors"] += errors
            for key, values in (("single", single), ("work", work), ("rtt", rtt)):
                placed[name][key] += values
            placed[name]["slices"].append((percentile_ms(single, 50), bound_ms(work, rtt)))
    figures["local"]["single"] = placed["as scheduled"]["single"]
    batch = ("\n".join((rows * 2)[:1000]) + "\n").encode()
    for side, port in sides.items():
        python_client, late = load(port, singles, 1, args.seconds)
        batches, more = load(port, [batch], 1, max(2.0, args.seconds / 2))
        figures[side].update(python_client=python_client, batch=batches)
        figures[side]["errors"] += late + more
    return figures


def bound_ms(work: list[float], rtt: list[float]) -> float:
    """Issue 18's single-row latency bound: 2 x (handlers' p50 + round trip's p50)."""
    return 2 * (percentile_ms(work, 50) + percentile_ms(rtt, 50))


def report(figures: dict, deploy_seconds: float, args: argparse.Namespace) -> None:
    local, peer = figures["local"], figures["peer"]
    scheduled = figures["placed"]["as scheduled"]
    work = percentile_ms(scheduled["work"], 50)
    rtt = percentile_ms(scheduled["rtt"], 50)
    bound = bound_ms(scheduled["work"], scheduled["rtt"])
    table = Table(
        title=(
            "Local endpoint (one hop to the model server workers, capture 100 %) vs the "
            "SageMaker scikit-learn "
            f"1.2-1 container's stack (gunicorn + gevent + Flask, {WORKERS} workers): "
            "single-row text/csv unless stated"
        )
    )
    for column in ("figure", "local endpoint", "container peer", "local / peer", "goal"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for number, (a, b) in enumerate(zip(local["rounds"], peer["rounds"], strict=True), 1):
        table.add_row(
            f"round {number}: {args.clients} clients, req/s",
            f"{a:.0f}", f"{b:.0f}", f"{a / b:.2f}", f"ratio >= {RATIO_GOAL}",
        )  # fmt: skip
    total_a, total_b = sum(local["rounds"]), sum(peer["rounds"])
    table.add_row(
        f"all rounds: {args.clients} clients, req/s (mean; ratio = sum / sum)",
        f"{total_a / args.rounds:.0f}", f"{total_b / args.rounds:.0f}",
        f"{total_a / total_b:.2f}", f"ratio >= {RATIO_GOAL}",
    )  # fmt: skip
    for name, key in (
        (f"{args.clients} clients", "many"),
        ("1 client (raw socket)", "single"),
        ("1 client (http.client)", "python_client"),
    ):
        for q in (50, 99):
            table.add_row(
                f"{name}: p{q} latency (ms)",
                f"{percentile_ms(local[key], q):.2f}", f"{percentile_ms(peer[key], q):.2f}",
                "", f"<= {bound:.2f} (the bound below)" if (key, q) == ("single", 50) else "",
            )  # fmt: skip
    table.add_row(
        "1,000-row request: median latency (ms)",
        f"{statistics.median(local['batch']) * 1000:.1f}",
        f"{statistics.median(peer['batch']) * 1000:.1f}", "", "",
    )  # fmt: skip
    table.add_row("failed requests", str(local["errors"]), str(peer["errors"]), "", "0")
    table.add_row("deploy: model server up, health-checked, switched (s)",
                  f"{deploy_seconds:.2f}", "", "", "")  # fmt: skip
    table.add_row(
        "in process: input_fn -> predict_fn -> output_fn, p50 (ms)", f"{work:.3f}", "", "", ""
    )
    table.add_row("loopback TCP round trip, 1 byte, p50 (ms)", f"{rtt:.3f}", "", "", "")
    console.print(table)
    bounds = Table(
        title=(
            f"Single-row p50 (raw-socket client) vs the bound 2 x (handlers in process + "
            f"loopback round trip), all three measured in the same {args.slices} "
            "interleaved slices per placement"
        )
    )
    for column in ("placement", "p50 ms", "handlers ms", "round trip ms", "bound ms",
                   "p50 within?", "slices within their own bound"):  # fmt: skip
        bounds.add_column(column, justify="left" if column == "placement" else "right")
    for name, placed in figures["placed"].items():
        single = percentile_ms(placed["single"], 50)
        limit = bound_ms(placed["work"], placed["rtt"])
        within = sum(p50 <= own for p50, own in placed["slices"])
        bounds.add_row(
            name,
            f"{single:.2f}",
            f"{percentile_ms(placed['work'], 50):.3f}",
            f"{percentile_ms(placed['rtt'], 50):.3f}",
            f"{limit:.2f}",
            "yes" if single <= limit else "NO",
            f"{within} of {len(placed['slices'])}",
        )
    console.print(bounds)


if __name__ == "__main__":
    main()
