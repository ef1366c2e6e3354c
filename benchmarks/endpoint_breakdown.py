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
import sys
import time
from pathlib import Path

from _support import approved_version, in_process, throwaway_settings
from endpoint import feature_rows, load, percentile_ms
from rich.console import Console
from rich.table import Table

from pipelines.serving import deploy
from pipelines.serving.runtime import model_server_runtime
from pipelines.targets import ensure_local_stack

console = Console()


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

    with throwaway_settings("bench-breakdown-") as (settings, _):
        console.print("Setting up: infra-up, pipeline run, approve, deploy to two stages ...")
        ready = ensure_local_stack(settings)
        stack, config = ready.stack, ready.config
        endpoints = []
        try:
            version = approved_version(settings, stack, config)
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
            program = version.environment.get("SAGEMAKER_PROGRAM", "inference.py")
            work = in_process(Path(state["release"]), runtime.python, rows, args.seconds, program)
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
