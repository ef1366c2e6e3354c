"""The local automation agent: acts on what the automation rules deliver to its queue.

A background process like the emulator and the endpoint: it binds no port (it only
calls the emulator on 127.0.0.1), holds ``agent.lock`` while it runs and writes its
pid to ``agent.json`` after taking it, so the file always names the process that
really runs. Each message on the queue is ``{"rule": NAME, "event": <AWS's event>}``
(the rules' input transformer); the agent runs the mapped invoke task
(pipelines.automation.rule_actions), logs the action with its event and outcome
(pipelines.automation.log), and only then deletes the message.

What it acts on, and how often:

- only this stack's rules (by exact name) and events (its model package group, its
  bucket and dataset prefix, its repository); anything else is logged as ignored;
- each delivery (rule and event id) at most once: the action is on disk before it
  starts, so a kill mid-action never leads to a second run; the next agent stops what
  the cut-short action left running and logs it as interrupted;
- an approval only while that version is the newest Approved one: a late or repeated
  approval never moves staging backwards;
- events queued before it started only with ``--replay`` (else each is logged as
  skipped);
- a message stays invisible while its action runs (renewed every minute), so it is not
  delivered again meanwhile.

Each action runs as a child in its own process group that dies with the agent; a run it
starts with ``pipeline-run --no-wait`` is followed to its end, and the log records the
execution id and the final status.

Schedule rules are evaluated here from their own ``rate()``/``cron()`` expressions
(moto stores schedules but never fires them), with the allow-listed parameters of their
SageMaker pipeline target.

Differences from AWS, said in the log as well: on AWS the rules start the SageMaker
pipeline, a CodeBuild project or the CodePipeline themselves; the emulator cannot run
those targets, so each rule also has this agent's SQS queue as a target, and the agent
runs the task the build would run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.automation import schedule_expressions as schedule
from pipelines.automation.log import ActionLog, ActionRecord
from pipelines.automation.rule_actions import (
    Ignored,
    Scope,
    check_event,
    command_for,
    purpose_of,
    rule_name,
    schedule_parameters,
)
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

    def start(self, timeout: float = 60.0, replay: bool = False) -> tuple[AgentStatus, bool]:
        """Start the agent; ``replay``: act on the events queued before it started."""
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
                *(["--replay"] if replay else []),
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
            # SIGTERM: the agent stops the action it runs (its process group), then exits.
            processes.terminate(current.pid, timeout=60)
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

# The agent's child actions carry this variable (the action's id): with the process group,
# it tells the agent's own children from anything else, after a kill too.
ACTION_MARKER = "MLOPS_AGENT_ACTION"
# While an action runs, its message is kept invisible this long, renewed every
# ``extend_every`` seconds; a kill lets it come back within this time.
VISIBILITY_SECONDS = 300
# How often a running child is looked at (the agent's stop, the visibility renewal).
_TICK = 1.0
_EXECUTION_ID = (
    re.compile(r"pipeline/[^/\s]+/execution/([a-z0-9]+)"),
    re.compile(r"--execution\s+([a-z0-9]+)"),
)
# What a run action's child is: followed to the end of the run it starts.
_RUN_TASK = "pipeline-run"

# run_task(arguments, marker, on_start(pgid), on_tick() -> keep going) -> (exit code, output)
RunTask = Callable[[list[str], str, Callable[[int], None], Callable[[], bool]], tuple[int, str]]


class Skipped(MlopsError):
    """An event for this agent that it does not act on now; the message says why."""


@dataclass
class Agent:
    connection: AwsConnection
    queue_url: str
    scope: Scope
    root: Path
    log: ActionLog
    schedule_state: Path
    run_task: RunTask | None = None
    # execution id -> (status, failure reason); None: the agent's local backend
    describe_run: Callable[[str], tuple[str, str | None]] | None = None
    # the newest Approved version of the group, None when there is none
    newest_approved: Callable[[], int | None] | None = None
    say: Callable[[str], None] = print
    replay: bool = False
    started_at: float = dataclass_field(default_factory=time.time)
    extend_every: float = 60.0
    stopping: bool = False

    def __post_init__(self) -> None:
        self.sqs = self.connection.client("sqs")
        self.events = self.connection.client("events")
        if self.run_task is None:
            self.run_task = self._run_invoke
        if self.newest_approved is None:
            self.newest_approved = self._newest_approved
        # What the log says was acted on (and is being followed): the agent's memory.
        self.handled: dict[str, ActionRecord] = {}
        self.following: dict[str, ActionRecord] = {}
        for record in self.log.read():
            if record.key:
                self.handled[record.key] = record
            if record.outcome == "running" and record.execution_id:
                self.following[record.id] = record

    # --- start-up -----------------------------------------------------------------

    def recover(self) -> list[ActionRecord]:
        """After a kill: stop what the last agent's cut-short actions left running and
        log them as interrupted (never run again); their messages come back at once and
        are then deleted as handled."""
        recovered = []
        for record in list(self.handled.values()):
            if record.outcome != "started":
                continue
            stopped = stop_action(record.pgid, record.id) if record.pgid else []
            note = "the agent stopped while this ran; it is not run again" + (
                f" (stopped its processes {stopped})" if stopped else ""
            )
            recovered.append(self._update(record, outcome="interrupted", note=note, pgid=None))
            self.say(f"{record.rule}: interrupted action of event {record.key}: {note}")
            if record.receipt:
                with contextlib.suppress(ClientError, BotoCoreError):
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url, ReceiptHandle=record.receipt, VisibilityTimeout=0
                    )
        return recovered

    def report_queued(self) -> int:
        """Say how many events were queued before the agent started, and what happens
        to them."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        waiting = int(attributes.get("ApproximateNumberOfMessages", 0))
        if waiting:
            what = (
                "acting on them (--replay)"
                if self.replay
                else "each is logged and skipped (an agent started with --replay acts on them)"
            )
            self.say(f"{waiting} event(s) were queued before the agent started: {what}.")
        return waiting

    # --- the queue ----------------------------------------------------------------

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receive and handle what the queue holds; returns how many messages."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["SentTimestamp"],
        )
        messages = answer.get("Messages", [])
        for message in messages:
            if self.stopping:  # not handled: visible again at once, for the next agent
                with contextlib.suppress(ClientError, BotoCoreError):
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=0,
                    )
                continue
            self.handle(message)
        return len(messages)

    def handle(self, message: dict[str, Any]) -> ActionRecord:
        try:
            body = json.loads(message["Body"])
            rule, event = str(body["rule"]), dict(body["event"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            record = self._record("?", "?", "unreadable message", "ignored", {}, "", str(error))
        else:
            record = self._decide(rule, event, message)
        # Deleted once its outcome is on disk: a kill before this re-delivers it, and
        # the log then knows it.
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return record

    def _decide(self, rule: str, event: dict[str, Any], message: dict[str, Any]) -> ActionRecord:
        key = f"{rule}/{event.get('id')}"
        done = self.handled.get(key)
        if done is not None:
            note = f"already handled ({done.outcome}): an event is never acted on twice"
            return self._record(rule, done.purpose, done.why, "skipped", event, "", note)
        sent = float((message.get("Attributes") or {}).get("SentTimestamp", "inf")) / 1000
        if sent < self.started_at and not self.replay:
            note = (
                "queued before the agent started; not acted on (an agent started with "
                "`invoke automation-up --replay` acts on queued events)"
            )
            return self._record(rule, "", "", "skipped", event, key, note)
        return self.act(rule, event, receipt=message["ReceiptHandle"], delivered=True)

    # --- acting -------------------------------------------------------------------

    def act(
        self,
        rule: str,
        event: dict[str, Any],
        parameters: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
        *,
        receipt: str = "",
        delivered: bool = False,
    ) -> ActionRecord:
        key = f"{rule}/{event.get('id')}"
        notes = []
        try:
            purpose = purpose_of(rule, self.scope.rule_prefix)
            if delivered and purpose == "scheduled_retraining":
                raise Ignored("Schedules are evaluated by the agent itself, never delivered.")
            check_event(purpose, event, self.scope)
            kept, dropped = schedule_parameters(parameters or {}, self.scope)
            notes += [f"dropped parameter {why}" for why in dropped]
            arguments, why = command_for(purpose, event, kept, extra)
        except MlopsError as error:  # Ignored, or an event that lacks what its action needs
            self.say(f"{rule}: ignored: {error}")
            return self._record(rule, "", "", "ignored", event, key, str(error))
        for note in notes:
            self.say(f"{rule}: {note}")
        if purpose == "approval_deploy":
            try:
                self._check_newest(int(event["detail"]["ModelPackageVersion"]))
            except Skipped as error:
                self.say(f"{rule}: skipped: {error}")
                return self._record(rule, purpose, why, "skipped", event, key, str(error))
        self.say(f"{rule}: {why} -> invoke {' '.join(arguments)}")
        # On disk before anything runs: a kill from here on never runs it twice.
        record = self.log.append(
            ActionRecord(
                time.time(),
                rule,
                purpose,
                why,
                ["invoke", *arguments],
                "started",
                None,
                0.0,
                event,
                note="; ".join([*notes, LOCAL_DIFFERENCE]),
                key=key,
                receipt=receipt,
            )
        )
        self.handled[key] = record
        return self._run(record, arguments)

    def _check_newest(self, version: int) -> None:
        """An approval deploys only the newest Approved version: an older approval (or
        one rejected since) never moves the stage backwards."""
        assert self.newest_approved is not None
        newest = self.newest_approved()
        if newest is None:
            raise Skipped(f"version {version} is no longer Approved (no version is)")
        if newest != version:
            raise Skipped(
                f"version {version} is not the newest Approved version (the newest is "
                f"{newest}): deploying it would move staging backwards"
            )

    def _run(self, record: ActionRecord, arguments: list[str]) -> ActionRecord:
        started = time.monotonic()
        extended = [started]

        def on_start(pgid: int) -> None:
            nonlocal record
            record = self._update(record, pgid=pgid)

        def on_tick() -> bool:
            if record.receipt and time.monotonic() - extended[0] >= self.extend_every:
                extended[0] = time.monotonic()
                self._extend(record.receipt)
            return not self.stopping

        assert self.run_task is not None
        code, output = self.run_task(arguments, record.id, on_start, on_tick)
        seconds = round(time.monotonic() - started, 3)
        changes: dict[str, Any] = {"exit_code": code, "seconds": seconds, "output": output}
        if self.stopping:
            changes.update(outcome="interrupted", note="the agent was stopped; so was this")
        elif code != 0:
            changes["outcome"] = "failed"
        elif arguments[0] == _RUN_TASK:
            execution_id = execution_id_in(output)
            if execution_id is None:
                changes.update(outcome="succeeded", note="no execution id in its output")
            else:
                changes.update(outcome="running", execution_id=execution_id, run_status="Executing")
        else:
            changes["outcome"] = "succeeded"
        done = self._update(record, pgid=None, **changes)
        if done.outcome == "running":
            self.following[done.id] = done
        self.say(f"{done.rule}: {done.outcome} (exit {code}) in {seconds:.1f} s")
        return done

    def _extend(self, receipt: str) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=receipt,
                VisibilityTimeout=VISIBILITY_SECONDS,
            )
        except (ClientError, BotoCoreError) as error:
            self.say(f"could not keep the message invisible: {error}")

    def _run_invoke(
        self,
        arguments: list[str],
        marker: str,
        on_start: Callable[[int], None],
        on_tick: Callable[[], bool],
    ) -> tuple[int, str]:
        """The task as a child in its own process group, which dies with the agent."""
        try:
            process = subprocess.Popen(
                [*invoke_command(), *arguments],
                cwd=self.root,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                env={**os.environ, ACTION_MARKER: marker},
                start_new_session=True,
                preexec_fn=_die_with_parent,  # safe: the agent runs no threads
            )
        except OSError as error:
            return 127, f"Could not start invoke: {error}"
        on_start(process.pid)
        while True:
            try:
                output, _ = process.communicate(timeout=_TICK)
                break
            except subprocess.TimeoutExpired:
                if not on_tick():
                    output = _stop_group(process)
                    break
        return process.returncode, (output or "")[-_OUTPUT_TAIL:]

    def _newest_approved(self) -> int | None:
        from pipelines.registry import Registry

        try:
            return Registry(self.connection, self.scope.group).latest_approved().version
        except MlopsError:
            return None

    # --- the runs it started ------------------------------------------------------

    def follow_runs(self) -> list[ActionRecord]:
        """Log the end of each run the agent started that has ended since last seen."""
        if not self.following or self.describe_run is None:
            return []
        ended = []
        for record in list(self.following.values()):
            assert record.execution_id is not None
            try:
                status, reason = self.describe_run(record.execution_id)
            except MlopsError as error:
                status, reason = "Unknown", str(error)
            if status in ("Executing", "Stopping"):
                continue
            del self.following[record.id]
            outcome = "succeeded" if status == "Succeeded" else "failed"
            note = "; ".join(filter(None, [record.note, reason and f"run: {reason}"]))
            ended.append(self._update(record, outcome=outcome, run_status=status, note=note))
            self.say(f"{record.rule}: execution {record.execution_id} {status}")
        return ended

    # --- the log ------------------------------------------------------------------

    def _record(
        self,
        rule: str,
        purpose: str,
        why: str,
        outcome: str,
        event: dict[str, Any],
        key: str,
        note: str,
    ) -> ActionRecord:
        """An event not acted on, logged with why (and, with its key, known as handled)."""
        record = self.log.append(
            ActionRecord(
                time.time(), rule, purpose, why, [], outcome, None, 0.0, event, note=note, key=key
            )
        )
        if key:
            self.handled[key] = record
        return record

    def _update(self, record: ActionRecord, **changes: Any) -> ActionRecord:
        updated = self.log.append(record.changed(**changes))
        if updated.key:
            self.handled[updated.key] = updated
        return updated

    # --- schedules ----------------------------------------------------------------

    def schedules(self) -> list[dict[str, Any]]:
        """This stack's schedule rule, when it exists and is enabled."""
        name = rule_name(self.scope.rule_prefix, "scheduled_retraining")
        pages = self.events.get_paginator("list_rules").paginate(NamePrefix=name)
        return [
            rule
            for page in pages
            for rule in page["Rules"]
            if rule["Name"] == name
            and rule.get("ScheduleExpression")
            and rule.get("State") == "ENABLED"
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


def execution_id_in(output: str) -> str | None:
    """The execution id `pipeline-run --no-wait` printed (its ARN, or its hint)."""
    for pattern in _EXECUTION_ID:
        found = pattern.search(output)
        if found:
            return found.group(1)
    return None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the agent dies, kill -9 included (Linux's
    PR_SET_PDEATHSIG; elsewhere the next agent stops it at start)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _stop_group(process: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """Stop a running child's process group (SIGTERM, then SIGKILL); its output. The
    group is surely ours: its leader is our child, not yet reaped."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            return process.communicate(timeout=timeout)[0] or ""
        except subprocess.TimeoutExpired:
            continue
    return process.communicate()[0] or ""


def stop_action(pgid: int | None, marker: str, timeout: float = 10.0) -> list[int]:
    """Stop the processes of one action: its process group's members that carry its
    marker (a recycled group id never reaches another program); SIGTERM, then SIGKILL."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.environ().get(ACTION_MARKER) == marker:
                members.append(process)
        except (OSError, psutil.Error):
            continue
    for process in members:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(members, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return sorted(process.pid for process in members)


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


def dataset_prefix(events: Any, prefix: str) -> str | None:
    """New data's key prefix, as the applied new-data rule matches it."""
    try:
        rule = events.describe_rule(Name=rule_name(prefix, "new_data_retraining"))
        pattern = json.loads(rule["EventPattern"])
        return str(pattern["detail"]["object"]["key"][0]["prefix"])
    except (ClientError, KeyError, IndexError, TypeError, json.JSONDecodeError):
        return None


def serve(root: Path, directory: Path, replay: bool = False, poll_seconds: int = 1) -> int:
    started_at = time.time()  # what the queue holds from before this is "queued before"
    directory.mkdir(parents=True, exist_ok=True)
    handle = (directory / "agent.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("Another agent runs for this state folder.", file=sys.stderr)
        return EXIT_LOCKED
    agent: Agent | None = None
    stop_asked = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop_asked
        stop_asked = True
        if agent is not None:
            agent.stopping = True  # the running action is stopped at its next look

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    settings = load_settings(root)
    try:
        connection, config = connect(settings)
    except MlopsError as error:
        print(error, flush=True)  # the starting task shows this line
        return 2
    from pipelines.backends.local import LocalBackend

    backend = LocalBackend(settings, connection)

    def describe_run(execution_id: str) -> tuple[str, str | None]:
        found = backend.describe(execution_id)
        return found.status, found.failure_reason

    prefix = f"{config.name}-"  # the rules are "<name>-<purpose>"
    agent = Agent(
        connection=connection,
        queue_url=config.automation_queue_url,
        scope=Scope(
            rule_prefix=prefix,
            group=config.model_package_group_name,
            bucket=config.bucket_name,
            dataset_prefix=dataset_prefix(connection.client("events"), prefix),
            repository=config.code_repository_name,
        ),
        root=root,
        log=ActionLog(directory),
        schedule_state=directory / "schedules.json",
        describe_run=describe_run,
        replay=replay,
        started_at=started_at,
        stopping=stop_asked,
    )
    write_json_atomically(
        directory / "agent.json",
        {"pid": os.getpid(), "queue_url": config.automation_queue_url, "started_at": started_at},
    )
    print(
        f"Agent pid {os.getpid()} reading {config.automation_queue_url}; {LOCAL_DIFFERENCE}.",
        flush=True,
    )
    agent.recover()
    agent.report_queued()
    while not agent.stopping:
        try:
            agent.check_schedules()
            agent.follow_runs()
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
    parser.add_argument("--replay", action="store_true", help="act on events queued before")
    args = parser.parse_args(argv)
    return serve(args.root, args.dir, replay=args.replay)


if __name__ == "__main__":
    sys.exit(main())
