"""The issue's "Done when" on the local target, driven through the tasks as a user would:
deploy, send the sample rows, `monitor` exits 0; send them with one feature x3, `monitor`
exits 3 naming it in a baseline_drift_check, the alert hook and webhook receive the alarm;
the HTML report renders in headless Chromium with both runs; labels joined by inference id
give model quality; a schedule runs and stops with the endpoint."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from pipelines.config.settings import PROJECT_ROOT
from pipelines.monitoring.results import History
from pipelines.registry import APPROVED, Registry
from pipelines.serving import deploy
from tests.monitoring.browser import render
from tests.support import invoke_task

pytestmark = pytest.mark.e2e

SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
DRIFTED = "rm"


class Receiver(BaseHTTPRequestHandler):
    bodies: list = []  # noqa: RUF012 - shared by the handler instances of one server

    def do_POST(self) -> None:
        Receiver.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Receiver.bodies = []
    try:
        yield f"http://127.0.0.1:{server.server_port}/alerts", Receiver.bodies
    finally:
        server.shutdown()
        server.server_close()


def run(local_stack, tmp_path, webhook_url, *args):
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import sys, pathlib\n"
        "out = pathlib.Path(sys.argv[1])\n"
        "out.mkdir(exist_ok=True)\n"
        "(out / f'{len(list(out.iterdir()))}.json').write_bytes(sys.stdin.buffer.read())\n"
    )
    return invoke_task(
        *args,
        state_dir=local_stack.settings.state_dir,
        port=local_stack.settings.emulator_port,
        extra_env={
            "MLOPS_ENDPOINT_PORT": str(local_stack.settings.endpoint_port),
            "COLUMNS": "400",
            "MLOPS_ALERT_COMMAND": f"{sys.executable} {hook} {tmp_path / 'alerts'}",
            "MLOPS_ALERT_WEBHOOK": webhook_url,
        },
    )


def runs(history: str, version: int) -> int:
    """Rows of the monitor-history table: each starts with its run's UTC time, then version."""
    return len(re.findall(rf"\d\d:\d\d:\d\dZ │ {version} │", history))


def checked(history: History) -> int:
    """How many runs a history has seen: those that checked data, and the empty windows."""
    return len(history.records()) + sum(w.count for w in history.empty_windows())


def output(result) -> str:
    return f"{result.stdout} {result.stderr}"


@pytest.fixture
def endpoint_taken_down(local_stack):
    """Later modules expect the environment's endpoint down, even after a failure here."""
    yield
    deploy.local_endpoint(
        local_stack.settings, local_stack.stack.connection, local_stack.config
    ).down()


def test_monitoring_done_when(local_stack, tmp_path, webhook, endpoint_taken_down):
    webhook_url, received = webhook
    execution = local_stack.run()
    assert execution.status == "Succeeded"
    registry = Registry(local_stack.stack.connection, local_stack.config.model_package_group_name)
    version = registry.get()
    registry.set_status(version.version, APPROVED, "monitoring e2e", "pytest")
    deployed = run(local_stack, tmp_path, webhook_url, "deploy", "--version", str(version.version))
    assert deployed.returncode == 0, output(deployed)
    # Earlier modules send traffic to the same endpoint within the hour: every check
    # here looks only at what was captured since this deploy.
    deployed_at = time.monotonic()

    def since() -> tuple[str, str]:
        # + 2: records are stamped in whole seconds, up to a second before they were made.
        return ("--since", f"{int(time.monotonic() - deployed_at) + 2}s")

    # Nothing captured yet: said so, exit 0.
    empty = run(local_stack, tmp_path, webhook_url, "monitor", *since())
    assert empty.returncode == 0, output(empty)
    assert "No captured data" in empty.stdout

    # 1. The sample rows, with inference ids: no violation.
    frame = pd.read_csv(SAMPLE)
    frame.insert(0, "id", [f"row-{i}" for i in range(len(frame))])
    with_ids = tmp_path / "sample_with_ids.csv"
    frame.to_csv(with_ids, index=False)
    sent = run(
        local_stack, tmp_path, webhook_url,
        "predict", "--data", str(with_ids), "--inference-id-column", "id",
    )  # fmt: skip
    assert sent.returncode == 0, output(sent)
    time.sleep(3)  # workers close spool files every 1 s; the front ships them every 1 s
    report = tmp_path / "report.html"
    clean = run(local_stack, tmp_path, webhook_url, "monitor", *since(), "--report", str(report))
    assert clean.returncode == 0, output(clean)
    assert "506 captured rows" in clean.stdout
    assert "baseline_drift_check" not in clean.stdout
    assert f"monitoring/{local_stack.config.name_prefix}-local-endpoint/" in clean.stdout
    assert not (tmp_path / "alerts").exists()

    # Model quality: the labels joined by inference id.
    truth = tmp_path / "truth.csv"
    frame[["id", "medv"]].rename(columns={"id": "inferenceId"}).to_csv(truth, index=False)
    labelled = run(
        local_stack, tmp_path, webhook_url, "monitor", *since(), "--ground-truth", str(truth)
    )
    assert labelled.returncode == 0, output(labelled)
    assert "Model quality: 506 labelled predictions" in labelled.stdout
    assert "rmse" in labelled.stdout

    # 2. The same rows with one feature x3: exit 3, naming it in a baseline_drift_check.
    drifted = frame.drop(columns=["id"])
    drifted[DRIFTED] = drifted[DRIFTED] * 3
    drifted_file = tmp_path / "drifted.csv"
    drifted.to_csv(drifted_file, index=False)
    sent = run(local_stack, tmp_path, webhook_url, "predict", "--data", str(drifted_file))
    assert sent.returncode == 0, output(sent)
    time.sleep(3)
    alarmed = run(local_stack, tmp_path, webhook_url, "monitor", *since(), "--report", str(report))
    assert alarmed.returncode == 3, output(alarmed)
    assert f"{DRIFTED}: baseline_drift_check: Baseline drift distance:" in alarmed.stdout
    # The predictions move with it: Model Monitor checks them too, in the target's place.
    assert "medv: baseline_drift_check: Baseline drift distance:" in alarmed.stdout
    assert alarmed.stdout.count(": baseline_drift_check:") == 2
    # Shown as CloudWatch's alarm notification would show it.
    alarm = f"{local_stack.config.name_prefix}-local-endpoint-drift-{DRIFTED}"
    prediction_alarm = f"{local_stack.config.name_prefix}-local-endpoint-drift-medv"
    assert f'ALARM: "{alarm}" in us-east-1' in alarmed.stdout
    assert "Threshold Crossed: 1 datapoint" in alarmed.stdout

    # 4. The alert hook and the webhook received the violation.
    (delivered,) = sorted((tmp_path / "alerts").iterdir())
    payload = json.loads(delivered.read_text())
    assert sorted(a["AlarmName"] for a in payload["alarms"]) == [prediction_alarm, alarm]
    assert payload["alarms"][0]["NewStateValue"] == "ALARM"
    assert {(v["feature_name"], v["constraint_check_type"]) for v in payload["violations"]} == {
        (DRIFTED, "baseline_drift_check"),
        ("medv", "baseline_drift_check"),
    }
    assert received == [payload]

    # A second run still drifting: the alarm is already in ALARM, no new notification.
    again = run(local_stack, tmp_path, webhook_url, "monitor", *since())
    assert again.returncode == 3
    assert "ALARM:" not in again.stdout
    assert len(list((tmp_path / "alerts").iterdir())) == 1

    # 3. The report renders in headless Chromium, with both runs on its charts.
    page = render(report)
    assert page.errors == []
    assert page.svg_count >= 3
    # Distance over time: the clean run, the labelled one and the drifted one.
    assert page.trace_points["chart-1"] == 3
    assert page.trace_points["chart-2"] == 1  # model quality: the labelled run
    assert "DRIFT" in page.text
    assert "baseline_drift_check" in page.text

    history = run(local_stack, tmp_path, webhook_url, "monitor-history")
    assert history.returncode == 0, output(history)
    assert runs(history.stdout, version.version) == 5  # the empty run is recorded too

    # The schedule runs while the endpoint runs, and stops with it.
    schedule_file = (
        local_stack.settings.state_dir
        / "monitoring"
        / f"{local_stack.config.name_prefix}-local-endpoint"
        / "schedule.json"
    )
    kept = History(local_stack.settings.state_dir, schedule_file.parent.name)
    before = checked(kept)
    scheduled = run(local_stack, tmp_path, webhook_url, "monitor-schedule", "--every", "2s")
    assert scheduled.returncode == 0, output(scheduled)
    assert "every 2 seconds" in scheduled.stdout
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if checked(kept) > before:  # a quiet window is counted, not listed
            break
        time.sleep(1)
    else:
        log = schedule_file.parent / "schedule.log"
        raise AssertionError(f"the schedule never ran: {log.read_text() if log.exists() else ''}")
    pid = json.loads(schedule_file.read_text())["pid"]
    down = run(local_stack, tmp_path, webhook_url, "endpoint-down")
    assert down.returncode == 0, output(down)
    assert not schedule_file.exists()
    import psutil

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
