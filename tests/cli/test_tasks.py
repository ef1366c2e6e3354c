"""The invoke tasks as a user runs them: exit codes and messages, in a separate process."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pipelines.config.settings import PROJECT_ROOT
from pipelines.emulator import Emulator
from tests.support import free_port, invoke_task

# Each test starts `invoke` in a process of its own (and some start the emulator).
pytestmark = pytest.mark.server


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state", free_port()


def test_emulator_status_exits_non_zero_when_stopped(state):
    state_dir, port = state
    result = invoke_task("emulator-status", state_dir=state_dir, port=port)
    assert result.returncode == 3
    assert "not running" in result.stdout


def test_emulator_up_status_down_round_trip(state):
    state_dir, port = state
    try:
        up = invoke_task("emulator-up", state_dir=state_dir, port=port)
        assert up.returncode == 0, up.stderr
        assert f"https://127.0.0.1:{port}" in up.stdout
        status = invoke_task("emulator-status", state_dir=state_dir, port=port)
        assert status.returncode == 0
        assert "running (pid" in status.stdout
    finally:
        down = invoke_task("emulator-down", state_dir=state_dir, port=port)
    assert "Emulator stopped." in down.stdout


def test_infra_outputs_without_a_running_emulator_says_how_to_start_it(state):
    state_dir, port = state
    result = invoke_task("infra-outputs", "--json", state_dir=state_dir, port=port)
    assert result.returncode == 1
    assert "emulator is not running" in result.stderr
    assert "invoke emulator-up" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "task",
    [
        ["infra-up"],
        ["pipeline-run", "--param", "NEstimators=10"],
        ["executions"],
        ["pipeline-retry"],
    ],
)
def test_aws_target_without_credentials_fails_before_touching_anything(state, task):
    state_dir, _ = state
    credentials = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    env_without = {k: v for k, v in os.environ.items() if k not in credentials}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", *task, "--target", "aws", "--env", "dev"],
        cwd=PROJECT_ROOT,
        env={**env_without, "MLOPS_STATE_DIR": str(state_dir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 1
    assert "No AWS credentials found for --target aws" in result.stderr
    assert not (state_dir / "terraform" / "aws-dev").exists()


def test_unknown_target_is_rejected(state):
    state_dir, port = state
    result = invoke_task("plan", "--target", "gcp", state_dir=state_dir, port=port)
    assert result.returncode == 1
    assert "Unknown target 'gcp'" in result.stderr


def test_destroy_asks_for_confirmation_and_changes_nothing_without_it(state):
    state_dir, port = state
    emulator = Emulator(state_dir / "emulator", port)
    info, _ = emulator.start()
    try:
        result = invoke_task("destroy", state_dir=state_dir, port=port)
        assert result.returncode == 1
        assert "pass --yes" in result.stderr
        assert emulator.status().running
        assert emulator.read_info().pid == info.pid
    finally:
        emulator.stop()


def test_destroy_with_the_emulator_down_only_clears_stale_state(state):
    state_dir, port = state
    stale = state_dir / "terraform" / "local" / "terraform.tfstate"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    result = invoke_task("destroy", "--yes", state_dir=state_dir, port=port)
    assert result.returncode == 0
    assert "already gone; local state cleared" in result.stdout
    assert not stale.exists()


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (["executions", "--limit", "abc"], "--limit must be a whole number, got 'abc'"),
        (["model-approve", "--version", "abc"], "--version must be a whole number, got 'abc'"),
        (["deploy", "--version", "x1"], "--version must be a whole number, got 'x1'"),
        (["pipeline-run", "--param", "MinTestR2=nan"], "MinTestR2=nan must be a finite R²"),
        (["pipeline-run", "--data", "no/such/file.csv"], "no/such/file.csv does not exist"),
    ],
)
def test_bad_input_is_refused_before_any_work_without_a_traceback(state, task, message):
    state_dir, port = state
    result = invoke_task(*task, state_dir=state_dir, port=port)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing was started or applied: the checks come first.
    assert not (state_dir / "emulator" / "emulator.json").exists()
    assert not (state_dir / "terraform").exists()


def test_executions_are_readable_while_the_emulator_is_down(state):
    import time

    from pipelines.core.records import Execution
    from pipelines.executor.store import ExecutionStore

    state_dir, port = state
    store = ExecutionStore(state_dir / "executor.db")
    store.insert_execution(
        Execution(
            execution_id="offline12345",
            execution_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/offline12345",
            pipeline_name="p",
            status="Succeeded",
            created_at=time.time() - 60,
            ended_at=time.time(),
        )
    )
    store.close()
    listed = invoke_task("executions", state_dir=state_dir, port=port)
    assert listed.returncode == 0, listed.stderr
    assert "offline12345" in listed.stdout
    shown = invoke_task(
        "execution-show", "--execution", "offline12345", state_dir=state_dir, port=port
    )
    assert shown.returncode == 0, shown.stderr
    assert "Succeeded" in shown.stdout
    assert not (state_dir / "emulator" / "emulator.json").exists()


def test_state_usage_lists_the_parts_of_the_state_folder(state):
    state_dir, port = state
    (state_dir / "executions" / "x").mkdir(parents=True)
    (state_dir / "executions" / "x" / "big.bin").write_bytes(b"0" * 2_000_000)
    result = invoke_task("state-usage", state_dir=state_dir, port=port)
    assert result.returncode == 0, result.stderr
    assert "executions" in result.stdout
    assert "2.0 MB" in result.stdout


def recorded_run(state_dir, status="Failed"):
    """An execution and its steps, as the local executor records them, with a job log."""
    import json
    import time

    from pipelines.core.records import Execution, StepRun
    from pipelines.executor.store import ExecutionStore

    log = state_dir / "executions" / "logged123456" / "steps" / "TrainModel" / "attempt-1"
    log.mkdir(parents=True)
    (log / "job.log").write_text("loading data\nn_estimators=250\nValueError: Input has NaN\n")
    definition = {
        "Parameters": [{"Name": "NEstimators", "Type": "Integer", "DefaultValue": 100}],
        "Steps": [{"Name": "TrainModel", "Type": "Training", "Arguments": {}}],
    }
    store = ExecutionStore(state_dir / "executor.db")
    store.insert_execution(
        Execution(
            execution_id="logged123456",
            execution_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/logged123456",
            pipeline_name="p",
            status=status,
            created_at=time.time() - 60,
            ended_at=time.time(),
            display_name="new-data-0123abcd-20260304-050607",
            failure_reason="Step TrainModel failed: AlgorithmError: ValueError: Input has NaN",
            parameters={"NEstimators": 250},
            definition=json.dumps(definition),
            lineage={
                "trigger": "new-data",
                "input_data": {"uri": "s3://b/datasets/incoming/houses.csv", "version_id": "v7x"},
            },
        )
    )
    store.upsert_step(
        "logged123456",
        StepRun("TrainModel", "Training", status, time.time() - 50, time.time(),
                log_path=str(log / "job.log")),
    )  # fmt: skip
    store.close()


def test_logs_prints_a_steps_job_log_and_execution_show_its_parameters(state):
    state_dir, port = state
    recorded_run(state_dir)
    logged = invoke_task("logs", "--step", "TrainModel", state_dir=state_dir, port=port)
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout == "loading data n_estimators=250 ValueError: Input has NaN"
    assert "Log of TrainModel in logged123456:" in logged.stderr
    # Without --step: the failed one.
    assert invoke_task("logs", state_dir=state_dir, port=port).stdout == logged.stdout
    missing = invoke_task("logs", "--step", "Train", state_dir=state_dir, port=port)
    assert missing.returncode == 1
    assert "Execution logged123456 has run no step named 'Train' (steps: TrainModel)" in (
        missing.stderr
    )
    listed = " ".join(re.sub("[\u2500-\u257f]", " ", invoke_task(
        "executions", state_dir=state_dir, port=port
    ).stdout).split())  # fmt: skip
    assert "logged123456 Failed" in listed
    assert "new-data houses.csv version v7x" in listed
    shown = invoke_task("execution-show", state_dir=state_dir, port=port)
    assert shown.returncode == 0, shown.stderr
    assert "Parameters (1 of 1 not the default): NEstimators 250 (default 100)" in shown.stdout
    assert "invoke logs --execution logged123456 --step TrainModel" in shown.stdout
    assert not (state_dir / "emulator" / "emulator.json").exists()  # records only
