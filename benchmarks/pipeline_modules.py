"""Benchmark a pipeline module on the local target: the abalone pipeline (XGBoost image,
built-in algorithm, batch transform), as `invoke pipeline-run --pipeline abalone` runs it.

    python benchmarks/pipeline_modules.py [--repeat N]

Prints:
- build: importing the module and building its definition in-process through the
  AWS-hosts proxy (its own boto3 and SageMaker sessions, the SDK's code uploads);
- run: the execution's wall time, cold (the first run in a fresh state folder: the
  XGBoost and scikit-learn runtimes are built from uv's warm cache) and then warm, with
  the steps that take longest, the transform's among them;
- cached: the same run again, every cacheable step a cache hit.

Runs against its own emulator and state folder (invoke.yaml's pipelines applied); the
checkout is untouched, and everything it started is stopped.
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml
from _support import throwaway_settings  # type: ignore[import-not-found]
from rich.console import Console
from rich.table import Table

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.definition.modules import sdk_environment
from pipelines.launch.prepare import prepare_module_run
from pipelines.stack.stacks import emulator_for
from pipelines.targets import ensure_local_stack

PIPELINE = "abalone"


def run_once(
    settings: Settings, stack, config, params: dict[str, str]
) -> tuple[float, float, dict]:
    """(build seconds, execution seconds, step seconds by name) of one run."""
    entry = settings.pipelines.chosen
    started = time.perf_counter()
    prepared = prepare_module_run(
        stack.connection,
        config,
        entry,
        params,
        None,
        {},
        root=settings.root,
        environment=lambda: sdk_environment(stack.connection),
    )
    built = time.perf_counter() - started
    backend = LocalBackend(settings, stack.connection)
    execution = backend.wait(backend.start(prepared).execution_id, timeout=900)
    if execution.status != "Succeeded":
        raise SystemExit(f"the run {execution.status}: {execution.failure_reason}")
    steps = {s.name: s.duration for s in backend.steps(execution.execution_id) if s.duration}
    return built, execution.duration, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm runs to take the median of")
    args = parser.parse_args()
    config_file = yaml.safe_load((PROJECT_ROOT / "invoke.yaml").read_text())["mlops"]
    with throwaway_settings("mlops-bench-pipelines-") as (base, _):
        settings = Settings.load(
            config_file,
            environ={
                "MLOPS_STATE_DIR": str(base.state_dir),
                "MLOPS_EMULATOR_PORT": str(base.emulator_port),
                "MLOPS_ENDPOINT_PORT": str(base.endpoint_port),
            },
        ).with_pipeline(PIPELINE)
        try:
            ready = ensure_local_stack(settings)
            stack, config = ready.stack, ready.config.for_pipeline(PIPELINE)
            cold = run_once(settings, stack, config, {})
            # The same input again: every cacheable step is a cache hit (the transform,
            # uncached in the definition, runs again).
            warm = [run_once(settings, stack, config, {}) for _ in range(args.repeat)]
        finally:
            emulator_for(settings).stop()
    table = Table(title=f"`pipeline-run --pipeline {PIPELINE}`, local")
    table.add_column("figure")
    table.add_column("seconds", justify="right")
    table.add_row("build the definition (module + proxy + code uploads), cold", f"{cold[0]:.2f}")
    table.add_row("build, warm (median)", f"{statistics.median(w[0] for w in warm):.2f}")
    table.add_row("execution, cold (runtimes built)", f"{cold[1]:.1f}")
    table.add_row(
        "execution, cached re-run (median)", f"{statistics.median(w[1] for w in warm):.1f}"
    )
    for name, seconds in sorted(cold[2].items(), key=lambda item: -item[1])[:5]:
        table.add_row(f"  cold step {name}", f"{seconds:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
