"""The local automation agent: acts on what the automation rules deliver to its queue.

A background process like the emulator and the endpoint: it binds no port (it only
calls the emulator on 127.0.0.1), holds ``agent.lock`` while it runs and writes its
pid to ``agent.json`` after taking it, so the file always names the process that
really runs. Each message on the queue is ``{"rule": NAME, "event": <AWS's event>}``
(the rules' input transformer); the agent runs the mapped invoke task
(pipelines.automation.rule_actions), logs the action with its event and outcome
(pipelines.automation.log), and only then deletes the message: a message that
arrives while the agent is down waits in the queue, and one whose action was cut
short by a kill is received again after the visibility timeout.

Schedule rules are evaluated here from their own ``rate()``/``cron()`` expressions
(moto stores schedules but never fires them), with the parameters of their
SageMaker pipeline target.

Differences from AWS, said in the log as well: on AWS the rules start the SageMaker
pipeline, a CodeBuild project or the CodePipeline themselves; the emulator cannot run
those targets, so each rule also has this agent's SQS queue as a target, and the agent
runs the task the build would run.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.automation import schedule_expressions as schedule
from pipelines.automation.log import ActionLog, ActionRecord
from pipelines.automation.rule_actions import command_for, purpose_of
from pipelines.config.settings import Settings
from pipelines.core import processes
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.core.files import write_json_atomically

_MODULE = "pipelines.automation.agent"
EXIT_LOCKED = 75
LOCAL_DIFFERENCE = (
    "local: the emulator does not run SageMaker/CodeBuild/CodePipeline targets; the agent "
    "runs the same invoke task from the rule's SQS copy"
)
_OUTPUT_TAIL = 4000


class AgentError(MlopsError):
    """The agent cannot be started, found or stopped."""


def automation_dir(settings: Settings) -> Path:
    return settings.state_dir / "automation"


@dataclass(frozen=True)
class AgentStatus:
    running: bool
    pid: int | None
    detail: str


@dataclass(frozen=True)
class AgentProcess:
    """The agent of one state folder."""

    settings: Settings

    @property
    def directory(self) -> Path:
        return automation_dir(self.settings)

    @property
    def pid_file(self) -> Path:
        return self.directory / "agent.json"

    @property
    def lock_file(self) -> Path:
        return self.directory / "agent.lock"

    @property
    def log_file(self) -> Path:
        return self.directory / "agent.log"

    def _info(self) -> dict[str, Any]:
        try:
            return json.loads(self.pid_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def status(self) -> AgentStatus:
        info = self._info()
        pid = info.get("pid")
        if not pid:
            return AgentStatus(False, None, "not running")
        if not processes.is_ours(pid, _MODULE, str(self.directory)):
            return AgentStatus(False, pid, f"stale pid file (process {pid} is gone)")
        return AgentStatus(True, pid, f"running (pid {pid}), reading {info.get('queue_url', '?')}")

    def start(self, timeout: float = 60.0) -> tuple[AgentStatus, bool]:
        current = self.status()
        if current.running:
            return current, False
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        # Its own session: Ctrl-C in a task must not stop the agent.
        process = processes.spawn(
            [
                sys.executable,
                "-m",
                _MODULE,
                "--root",
                str(self.settings.root),
                "--dir",
                str(self.directory),
            ],
            self.log_file,
            env=agent_environment(self.settings),
            cwd=self.settings.root,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                if process.returncode == EXIT_LOCKED:
                    raise AgentError(
                        f"Another agent holds {self.lock_file}; stop it with "
                        "`invoke automation-down`."
                    )
                raise AgentError(
                    f"The agent exited with code {process.returncode} while starting.\n"
                    f"Last lines of {self.log_file}:\n{processes.log_tail(self.log_file)}"
                )
            if self._info().get("pid") == process.pid:
                return self.status(), True
            time.sleep(0.1)
        processes.terminate(process.pid)
        raise AgentError(
            f"The agent did not start within {timeout:.0f} s.\n"
            f"Last lines of {self.log_file}:\n{processes.log_tail(self.log_file)}"
        )

    def stop(self) -> bool:
        current = self.status()
        stopped = False
        if current.running:
            # SIGTERM: the agent finishes the action it is running, then exits.
            processes.terminate(current.pid, timeout=600)
            stopped = True
        self.pid_file.unlink(missing_ok=True)
        return stopped


def agent_environment(settings: Settings) -> dict[str, str]:
    """The agent, and the tasks it runs, use this checkout's settings."""
    env = dict(os.environ)
    env.update(
        {
            "MLOPS_STATE_DIR": str(settings.state_dir),
            "MLOPS_EMULATOR_PORT": str(settings.emulator_port),
            "MLOPS_ENDPOINT_PORT": str(settings.endpoint_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.provider_mirror is not None:
        env["MLOPS_TF_PROVIDER_MIRROR"] = str(settings.provider_mirror)
    if settings.runtime_host:
        env["MLOPS_RUNTIME_HOST"] = "true"
    return env


def invoke_command() -> list[str]:
    """The project's own invoke, as a person runs it."""
    beside = Path(sys.executable).with_name("invoke")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "invoke"]


# --- the agent's work (plain functions, called by tests without a process) ---------------


@dataclass
class Agent:
    connection: AwsConnection
    queue_url: str
    rule_prefix: str  # "<name_prefix>-<env>-"
    root: Path
    log: ActionLog
    schedule_state: Path
    run_task: Callable[[list[str]], tuple[int, str]] | None = None
    say: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self.sqs = self.connection.client("sqs")
        self.events = self.connection.client("events")
        if self.run_task is None:
            self.run_task = self._run_invoke

    def _run_invoke(self, arguments: list[str]) -> tuple[int, str]:
        completed = subprocess.run(
            [*invoke_command(), *arguments],
            cwd=self.root,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return completed.returncode, (completed.stdout + completed.stderr)[-_OUTPUT_TAIL:]

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receive and handle what the queue holds; returns how many messages."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        messages = answer.get("Messages", [])
        for message in messages:
            self.handle(message)
        return len(messages)

    def handle(self, message: dict[str, Any]) -> ActionRecord:
        try:
            body = json.loads(message["Body"])
            rule, event = body["rule"], body["event"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            record = self._record(
                "?",
                "?",
                "unreadable message",
                [],
                "skipped",
                None,
                0.0,
                {},
                note=f"not a rule delivery: {error}",
            )
        else:
            record = self.act(rule, as_aws_emits(event))
        # Deleted only once its action is logged: a kill before this re-delivers it.
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return record

    def act(
        self,
        rule: str,
        event: dict[str, Any],
        parameters: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> ActionRecord:
        try:
            purpose = purpose_of(rule)
            arguments, why = command_for(purpose, event, parameters, extra)
        except MlopsError as error:
            return self._record(
                rule, "?", "no action", [], "skipped", None, 0.0, event, note=str(error)
            )
        self.say(f"{rule}: {why} -> invoke {' '.join(arguments)}")
        started = time.monotonic()
        assert self.run_task is not None
        code, output = self.run_task(arguments)
        outcome = "succeeded" if code == 0 else "failed"
        record = self._record(
            rule,
            purpose,
            why,
            ["invoke", *arguments],
            outcome,
            code,
            time.monotonic() - started,
            event,
            output,
            LOCAL_DIFFERENCE,
        )
        self.say(f"{rule}: {outcome} (exit {code}) in {record.seconds:.1f} s")
        return record

    def _record(
        self,
        rule: str,
        purpose: str,
        why: str,
        command: list[str],
        outcome: str,
        code: int | None,
        seconds: float,
        event: dict[str, Any],
        output: str = "",
        note: str = "",
    ) -> ActionRecord:
        record = ActionRecord(
            time.time(),
            rule,
            purpose,
            why,
            command,
            outcome,
            code,
            round(seconds, 3),
            event,
            output,
            note,
        )
        self.log.append(record)
        return record

    # --- schedules ----------------------------------------------------------------

    def schedules(self) -> list[dict[str, Any]]:
        pages = self.events.get_paginator("list_rules").paginate(NamePrefix=self.rule_prefix)
        return [
            rule
            for page in pages
            for rule in page["Rules"]
            if rule.get("ScheduleExpression") and rule.get("State") == "ENABLED"
        ]

    def pipeline_parameters(self, rule: str) -> dict[str, str]:
        targets = self.events.list_targets_by_rule(Rule=rule)["Targets"]
        for target in targets:
            listed = (target.get("SageMakerPipelineParameters") or {}).get(
                "PipelineParameterList", []
            )
            if ":pipeline/" in target["Arn"]:
                return {p["Name"]: p["Value"] for p in listed}
        return {}

    def check_schedules(self, now: datetime | None = None) -> list[ActionRecord]:
        """Run each schedule rule whose expression has fired since it was last run."""
        now = now or datetime.now(UTC)
        state = _read_json(self.schedule_state)
        done = []
        for rule in self.schedules():
            name, expression = rule["Name"], rule["ScheduleExpression"]
            seen = state.get(name)
            if seen is None or seen.get("expression") != expression:
                # A new (or changed) schedule starts counting now, as EventBridge does.
                state[name] = {"expression": expression, "last": now.timestamp()}
                continue
            last = datetime.fromtimestamp(seen["last"], UTC)
            try:
                if not schedule.due(expression, last, now):
                    continue
            except schedule.ScheduleError as error:
                self.say(f"{name}: {error}")
                continue
            state[name] = {"expression": expression, "last": now.timestamp()}
            write_json_atomically(self.schedule_state, state)  # never twice for one firing
            event = scheduled_event(rule["Arn"], now)
            done.append(
                self.act(
                    name,
                    event,
                    self.pipeline_parameters(name),
                    {"expression": expression, "rule": name},
                )
            )
        write_json_atomically(self.schedule_state, state)
        return done


def as_aws_emits(event: dict[str, Any]) -> dict[str, Any]:
    """The emulator's copy of an event carries its time as epoch seconds and its ingestion
    time; EventBridge's ``<aws.events.event.json>`` has the ISO time and no ingestion time."""
    from pipelines.events.shapes import timestamp

    cleaned = {key: value for key, value in event.items() if key != "ingestion-time"}
    if "time" in cleaned:
        cleaned["time"] = timestamp(cleaned["time"])
    return cleaned


def scheduled_event(rule_arn: str, when: datetime) -> dict[str, Any]:
    """The event a schedule rule sends its targets (``Scheduled Event``)."""
    from pipelines.events.shapes import envelope

    parts = rule_arn.split(":")
    return envelope(
        "Scheduled Event",
        "aws.events",
        account=parts[4],
        region=parts[3],
        resources=[rule_arn],
        detail={},
        time=when,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


# --- the process ----------------------------------------------------------------------------


def connect(settings: Settings) -> tuple[AwsConnection, Any]:
    """The emulator connection and the applied outputs (the queue URL among them)."""
    from pipelines.config.deployment import Deployment
    from pipelines.stack import stacks as infra

    deployment = Deployment.parse("local")
    emulator = infra.emulator_for(settings)
    info = emulator.require_running()
    region = infra.tfvars_region(settings, deployment)
    connection = AwsConnection.for_emulator(info.endpoint, emulator.tls.ca_cert, region)
    config = infra.read_outputs_from_state(settings, deployment, local_state=True)
    if not config.automation_queue_url:
        raise AgentError(
            "The applied stack has no automation queue: set enable_automation = true and "
            "automation = { local_agent = true } (infra/envs/local.tfvars), then `invoke infra-up`."
        )
    return connection, config


def load_settings(root: Path) -> Settings:
    from invoke import Config

    config = Config(project_location=str(root))
    config.load_project()
    return Settings.load(config.get("mlops"), root=root)


def serve(root: Path, directory: Path, poll_seconds: int = 1) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    handle = (directory / "agent.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("Another agent runs for this state folder.", file=sys.stderr)
        return EXIT_LOCKED
    stopping = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    settings = load_settings(root)
    try:
        connection, config = connect(settings)
    except MlopsError as error:
        print(error, flush=True)  # the starting task shows this line
        return 2
    agent = Agent(
        connection=connection,
        queue_url=config.automation_queue_url,
        rule_prefix=f"{config.name}-",
        root=root,
        log=ActionLog(directory),
        schedule_state=directory / "schedules.json",
    )
    write_json_atomically(
        directory / "agent.json",
        {"pid": os.getpid(), "queue_url": config.automation_queue_url, "started_at": time.time()},
    )
    print(
        f"Agent pid {os.getpid()} reading {config.automation_queue_url}; {LOCAL_DIFFERENCE}.",
        flush=True,
    )
    while not stopping:
        try:
            agent.check_schedules()
            agent.poll_once(poll_seconds)
        except (ClientError, BotoCoreError) as error:
            # The emulator restarting is normal: wait for it, keep the queue's messages.
            print(f"emulator unreachable ({error}); retrying", flush=True)
            time.sleep(2)
    print("Agent stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=_MODULE)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    return serve(args.root, args.dir)


if __name__ == "__main__":
    sys.exit(main())
