"""Benchmark the local automation: how long from an approval to the endpoint serving it,
with nothing but the agent in between.

    python benchmarks/automation.py [--rounds N]

Figures:
- PutEvents -> the agent's queue (the emulator's rule matching and SQS delivery), median
- approval (``Registry.set_status``, which publishes the event) -> the endpoint serves
  that version, per round and median; the agent's own action time (`invoke deploy`,
  from the action log) is shown beside it

The stack is the real one: its own emulator and state directory, infra-up, two pipeline
runs (two versions), the agent as a background process. Rounds alternate the version
so every approval is a real switch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _support import throwaway_settings
from rich.console import Console
from rich.table import Table

from pipelines.automation.agent import AgentProcess, automation_dir
from pipelines.automation.log import ActionLog
from pipelines.backends.local import LocalBackend
from pipelines.definition.parameters import RunParameters
from pipelines.events.shapes import put_events_entry
from pipelines.launch import prepare as run
from pipelines.registry import APPROVED, Registry
from pipelines.serving import deploy
from pipelines.targets import ensure_local_stack
from pipelines.teardown import stop_running_executions

console = Console()


def delivery_seconds(stack, config, rounds: int) -> list[float]:
    """Seconds from PutEvents of a probe event until its rule's SQS target holds it."""
    connection = stack.connection
    sqs = connection.client("sqs")
    queue = sqs.create_queue(QueueName="bench-probe")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = connection.client("events")
    events.put_rule(Name="bench-probe", EventPattern=json.dumps({"source": ["bench.probe"]}))
    events.put_targets(Rule="bench-probe", Targets=[{"Id": "q", "Arn": arn}])
    found = []
    for _ in range(rounds):
        event = {"source": "bench.probe", "detail-type": "probe", "detail": {}, "resources": []}
        started = time.perf_counter()
        events.put_events(Entries=[put_events_entry(event)])
        while not sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages"):
            pass
        found.append(time.perf_counter() - started)
    events.remove_targets(Rule="bench-probe", Ids=["q"])
    events.delete_rule(Name="bench-probe")
    sqs.delete_queue(QueueUrl=queue)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    with throwaway_settings("bench-automation-") as (settings, _):
        console.print("Setting up: infra-up, two pipeline runs, the agent ...")
        ready = ensure_local_stack(settings)
        stack, config = ready.stack, ready.config
        agent = AgentProcess(settings)
        try:
            backend = LocalBackend(settings, stack.connection)
            for _ in range(2):
                prepared = run.prepare_run(stack.connection, config, RunParameters(), None)
                execution = backend.wait(backend.start(prepared).execution_id, timeout=900)
                if execution.status != "Succeeded":
                    raise SystemExit(f"the run {execution.status}: {execution.failure_reason}")
            delivery = delivery_seconds(stack, config, 10)
            agent.start()
            registry = Registry(stack.connection, config.model_package_group_name)
            endpoint = deploy.local_endpoint(settings, stack.connection, config, stage="staging")
            log = ActionLog(automation_dir(settings))
            rounds = []
            for index in range(args.rounds):
                version = 1 + index % 2
                logged = len(log.read())
                started = time.perf_counter()
                registry.set_status(version, APPROVED, "benchmark", "benchmark")
                while not (endpoint.status().package_arn or "").endswith(f"/{version}"):
                    time.sleep(0.05)
                served = time.perf_counter() - started
                while len(log.read()) == logged:
                    time.sleep(0.05)
                rounds.append((version, served, log.read()[-1].seconds))
        finally:
            agent.stop()
            deploy.local_endpoint(settings, stack.connection, config, stage="staging").down()
            stop_running_executions(LocalBackend(settings, stack.connection), config)
            stack.emulator.stop()

    table = Table(title="Local automation benchmark")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row(
        "PutEvents -> message in the rule's SQS target, median of 10 (s)",
        f"{statistics.median(delivery):.3f}",
    )
    for number, (version, served, action) in enumerate(rounds, 1):
        table.add_row(
            f"round {number}: approve v{version} -> endpoint serves it (s); `invoke deploy` alone",
            f"{served:.2f}; {action:.2f}",
        )
    table.add_row(
        "approval -> serving, median (s)", f"{statistics.median(r[1] for r in rounds):.2f}"
    )
    console.print(table)


if __name__ == "__main__":
    main()
