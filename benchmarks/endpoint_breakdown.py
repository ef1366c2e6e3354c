"""Where a single-row request's time goes on the local endpoint, hop by hop.

    python benchmarks/endpoint_breakdown.py [--seconds S] [--clients N]

One real endpoint per stage of the same stack (same model version): ``staging`` with
data capture off, ``prod`` with capture at 100 %. Single-row CSV requests are timed:

1. in process, in the model server's own runtime, each part alone: ``input_fn``
   (parsing), ``predict_fn`` (the model), ``output_fn``, and writing one capture record
   to the spool (what capture adds to a worker);
2. straight to the model server's own Unix socket (its HTTP layer on top of 1);
3. the endpoint's public port with capture off: the same single hop, so it should
   match 2 (before issue 18 a router added a second hop here);
4. the public port with capture at 100 % (capture on top of 3);
5. the public port during a 50/50 split with another server (the prod endpoint's):
   half the requests are forwarded to its socket (the canary path).

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

from _support import approved_version, in_process, throwaway_settings
from endpoint import feature_rows, load, percentile_ms
from rich.console import Console
from rich.table import Table

from pipelines.serving import deploy
from pipelines.serving.model_runtime import PACKAGE_ROOT, model_server_runtime
from pipelines.targets import ensure_local_stack

console = Console()


STAGES = """
import json, sys, time, importlib.util
from pathlib import Path
from pipelines.serving.capture import CaptureSpool
code, program, model_dir, spool = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows, seconds = json.loads(sys.argv[5]), float(sys.argv[6])
sys.path.insert(0, code)
spec = importlib.util.spec_from_file_location("inference", code + "/" + program)
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
model = module.model_fn(model_dir)
capture = CaptureSpool(Path(spool), 100)
times = {"input_fn": [], "predict_fn": [], "output_fn": [], "capture record": []}
i, deadline = 0, time.perf_counter() + seconds
while time.perf_counter() < deadline:
    row = rows[i % len(rows)].encode(); i += 1
    t0 = time.perf_counter(); data = module.input_fn(row, "text/csv")
    t1 = time.perf_counter(); prediction = module.predict_fn(data, model)
    t2 = time.perf_counter(); body, kind = module.output_fn(prediction, "text/csv")
    t3 = time.perf_counter(); capture.record(row, "text/csv", body.encode(), kind)
    t4 = time.perf_counter()
    for name, spent in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
        times[name].append(spent)
capture.close_file()
print(json.dumps(times))
"""


def stages(
    release: Path, python: str, rows: list[str], seconds: float, program: str
) -> dict[str, list[float]]:
    """Seconds of each part of a single-row request in the model's runtime, measured alone."""
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as spool:
        result = subprocess.run(
            [python, "-c", STAGES, str(release / "code"), program, str(release / "model"),
             spool, json.dumps(rows[:200]), str(seconds)],
            capture_output=True, text=True, check=True,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(PACKAGE_ROOT)},
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
            parts = stages(Path(state["release"]), runtime.python, rows, args.seconds, program)
            other = json.loads(captured.state_file.read_text())["upstream"]
            # A 50/50 split between the staging server and the prod one (same version):
            # the canary path, on the capture-off endpoint while its other figures rest.
            # Socket paths are relative to the endpoint's folder, where its servers run.
            canary = {
                **state,
                "variants": [
                    {"address": state["upstream"], "version": version.version, "weight": 0.5},
                    {
                        "address": os.path.relpath(captured.dir / other, plain.dir),
                        "version": version.version,
                        "weight": 0.5,
                    },
                ],
            }
            paths = {
                "2. model server's own socket": (str(plain.dir / state["upstream"]), state),
                "3. public port, capture off (one hop)": (plain.port, state),
                "4. public port, capture 100 %": (captured.port, state),
                "5. public port, 50/50 split (half forwarded)": (plain.port, canary),
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
    for name, times in parts.items():
        table.add_row(
            f"   {name}", f"{percentile_ms(times, 50):.3f}", f"{percentile_ms(times, 99):.3f}",
            "", "",
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
