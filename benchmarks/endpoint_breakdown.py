"""Where a single-row request's time goes on the local endpoint, hop by hop.

    python benchmarks/endpoint_breakdown.py [--seconds S] [--clients N]

One real endpoint per stage of the same stack (same model version): ``staging`` with
data capture off, ``prod`` with capture at 100 %. Single-row CSV requests are timed:

1. in process: ``input_fn -> predict_fn -> output_fn`` in the model server's own
   runtime (the model work alone);
2. straight to the model server's port (its HTTP server on top of 1);
3. through the router without capture (the second hop on top of 2);
4. through the router with capture at 100 % (capture on top of 3);
5. through the router during a 50/50 canary split (weighted routing on top of 3).

Each HTTP figure is one keep-alive client (latency) and N clients (throughput), run
from separate processes, in alternating rounds (one figure per round). Printed,
never asserted: the figures for issue 18.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from endpoint import feature_rows, free_port, load, percentile_ms
from rich.console import Console
from rich.table import Table

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.registry import APPROVED, Registry
from pipelines.runs import prepare as run
from pipelines.serving import deploy
from pipelines.serving.runtime import model_server_runtime

console = Console()

IN_PROCESS = """
import json, sys, time, importlib.util
code, model_dir = sys.argv[1], sys.argv[2]
rows, seconds = json.loads(sys.argv[3]), float(sys.argv[4])
sys.path.insert(0, code)
spec = importlib.util.spec_from_file_location("inference", code + "/inference.py")
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
model = module.model_fn(model_dir)
times, i, deadline = [], 0, time.perf_counter() + seconds
while time.perf_counter() < deadline:
    started = time.perf_counter()
    data = module.input_fn(rows[i % len(rows)], "text/csv")
    module.output_fn(module.predict_fn(data, model), "text/csv")
    times.append(time.perf_counter() - started); i += 1
print(json.dumps(times))
"""


def in_process(release: Path, python: str, rows: list[str], seconds: float) -> list[float]:
    result = subprocess.run(
        [python, "-c", IN_PROCESS, str(release / "code"), str(release / "model"),
         json.dumps(rows[:200]), str(seconds)],
        capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    return json.loads(result.stdout)


def http_figures(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict:
    load(port, bodies, 1, 1.0)  # warm-up
    single, errors = load(port, bodies, 1, seconds)
    many, more = load(port, bodies, clients, seconds)
    return {
        "p50": percentile_ms(single, 50),
        "p99": percentile_ms(single, 99),
        "rps": len(many) / seconds,
        "errors": errors + more,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=4, help="for the throughput figures")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-breakdown-") as temp:
        settings = Settings.load(
            None,
            environ={
                **os.environ,
                "MLOPS_STATE_DIR": str(Path(temp) / "state"),
                "MLOPS_EMULATOR_PORT": str(free_port()),
                "MLOPS_ENDPOINT_PORT": str(free_port()),
            },
        )
        console.print("Setting up: infra-up, pipeline run, approve, deploy to two stages ...")
        stack, config, _ = run.ensure_local_stack(settings)
        endpoints = []
        try:
            prepared = run.prepare_run(stack.connection, config, {}, None)
            backend = LocalBackend(settings, stack.connection)
            execution = backend.wait(backend.start(prepared).execution_id, timeout=600)
            if execution.status != "Succeeded":
                raise SystemExit(f"the pipeline run {execution.status}: {execution.failure_reason}")
            registry = Registry(stack.connection, config.model_package_group_name)
            version = registry.set_status(None, APPROVED, "benchmark", "benchmark")
            plain = deploy.local_endpoint(
                settings, stack.connection, config, deploy.DeploySettings(capture_percent=0),
                "staging",
            )  # fmt: skip
            captured = deploy.local_endpoint(
                settings, stack.connection, config, deploy.DeploySettings(capture_percent=100),
                "prod",
            )  # fmt: skip
            endpoints = [plain, captured]
            for endpoint in endpoints:
                endpoint.deploy(version)
            rows = feature_rows()
            bodies = [row.encode() for row in rows]
            state = json.loads(plain.state_file.read_text())
            runtime = model_server_runtime(version.image, settings.runtime_cache)
            work = in_process(Path(state["release"]), runtime.python, rows, args.seconds)
            # A 50/50 split between two servers of the same version (the router's canary
            # path), on the capture-off endpoint while its plain figures are not measured.
            canary = {
                **state,
                "variants": [
                    {"port": state["upstream_port"], "version": version.version, "weight": 0.5},
                    {"port": state["upstream_port"], "version": version.version, "weight": 0.5},
                ],
            }
            paths = {
                "2. model server direct": (state["upstream_port"], state),
                "3. router, capture off": (plain.port, state),
                "4. router, capture 100 %": (captured.port, state),
                "5. router, 50/50 canary split": (plain.port, canary),
            }
            figures: dict[str, list[dict]] = {name: [] for name in paths}
            # Rounds alternate the paths (A B C D A B C D): the machine is shared.
            for _ in range(args.rounds):
                for name, (port, routed) in paths.items():
                    plain.state_file.write_text(json.dumps(routed))
                    time.sleep(0.3)
                    figures[name].append(http_figures(port, bodies, args.clients, args.seconds))
        finally:
            for endpoint in endpoints:
                endpoint.down()
            stack.emulator.stop()

    table = Table(title="Single-row text/csv request, hop by hop")
    for column in ("path", "p50 ms (1 client)", "p99 ms (1 client)",
                   f"req/s ({args.clients} clients)", "failed"):  # fmt: skip
        table.add_column(column, justify="right" if column != "path" else "left")
    table.add_row(
        "1. in process: input_fn, predict_fn, output_fn",
        f"{percentile_ms(work, 50):.3f}", f"{percentile_ms(work, 99):.3f}",
        f"{len(work) / args.seconds:.0f} (1 thread)", "-",
    )  # fmt: skip
    for name, rounds in figures.items():
        table.add_row(
            name,
            " / ".join(f"{f['p50']:.2f}" for f in rounds),
            " / ".join(f"{f['p99']:.2f}" for f in rounds),
            " / ".join(f"{f['rps']:.0f}" for f in rounds),
            str(sum(f["errors"] for f in rounds)),
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
