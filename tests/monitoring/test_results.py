"""What an execution leaves and tells: output files, metrics, alarms, hooks, history, ground
truth, the report's HTML, settings (fast tier: no server)."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from pipelines.config.monitoring_settings import MonitoringSettings
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.executor.checks import load_analyzer
from pipelines.monitoring import alerts, outputs, quality
from pipelines.monitoring import drift_report as report
from pipelines.monitoring.drift import FeatureDrift
from pipelines.monitoring.results import History
from pipelines.serving.predict import predict

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
BUCKETS = [{"lower_bound": float(i), "upper_bound": float(i + 1), "count": 10} for i in range(10)]


def drift_of(name: str, distance: float, violated: bool) -> FeatureDrift:
    return FeatureDrift(
        name,
        1.0,
        2.0,
        distance,
        0.1,
        ("baseline_drift_check",) if violated else (),
        tuple(BUCKETS),
        tuple(BUCKETS),
    )


def test_outputs_use_model_monitors_folder_and_metric_names():
    assert (
        outputs.output_prefix("b", "ep", "ep-data-quality", WHEN)
        == "s3://b/monitoring/ep/ep-data-quality/2026/03/04/05"
    )
    statistics = {
        "dataset": {"item_count": 4},
        "features": [
            {
                "name": "rm",
                "numerical_statistics": {
                    "common": {"num_present": 3, "num_missing": 1},
                    "sum": 6.0,
                    "min": 1.0,
                    "max": 3.0,
                },
            }
        ],
    }
    metrics = outputs.data_metrics(statistics, [drift_of("rm", 0.5, True)], "ep", "sch", WHEN)
    by_name = {m["MetricName"]: m for m in metrics}
    assert by_name["feature_non_null_rm"]["Value"] == 0.75
    assert by_name["feature_baseline_drift_rm"]["Value"] == 0.5
    assert by_name["feature_data_rm"]["StatisticValues"] == {
        "SampleCount": 3.0,
        "Sum": 6.0,
        "Minimum": 1.0,
        "Maximum": 3.0,
    }
    # A feature's metrics carry its name as the Feature dimension, as the built-in container's
    # do (the SDK's data-quality dashboard queries Endpoint, Feature, MonitoringSchedule).
    for name in ("feature_data_rm", "feature_non_null_rm", "feature_baseline_drift_rm"):
        assert by_name[name]["Dimensions"] == [
            {"Name": "Endpoint", "Value": "ep"},
            {"Name": "Feature", "Value": "rm"},
            {"Name": "MonitoringSchedule", "Value": "sch"},
        ]
    assert by_name["feature_data_rm"]["Timestamp"] == "2026-03-04T05:06:07Z"


def test_alarms_notify_on_the_change_into_alarm_only():
    drifts = [drift_of("rm", 0.8, True), drift_of("crim", 0.0, False)]
    states, changes = alerts.evaluate_alarms("ep", "sch", drifts, [], {}, {}, WHEN)
    assert states == {"ep-drift-rm": "ALARM", "ep-drift-crim": "OK"}
    assert [(c.name, c.old, c.new) for c in changes] == [
        ("ep-drift-rm", "INSUFFICIENT_DATA", "ALARM")
    ]
    assert (
        "1 datapoint [0.8 (04/03/26 05:06:07)] was greater than the threshold (0.1)"
        in changes[0].reason
    )
    again, repeated = alerts.evaluate_alarms("ep", "sch", drifts, [], {}, states, WHEN)
    assert again == states
    assert repeated == []
    message = alerts.alarm_message(changes[0], "us-east-1", "123456789012", WHEN)
    assert message["AlarmArn"] == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ep-drift-rm"
    assert message["Trigger"]["MetricName"] == "feature_baseline_drift_rm"
    assert message["Trigger"]["Namespace"] == "aws/sagemaker/Endpoints/data-metrics"
    assert {"name": "Feature", "value": "rm"} in message["Trigger"]["Dimensions"]
    assert alerts.render(message).startswith('ALARM: "ep-drift-rm" in us-east-1')


def test_model_quality_alarms_use_the_constraints_operator():
    violation = {
        "metric_name": "r2",
        "constraint_check_type": "LessThanThreshold",
        "threshold": 0.8,
    }
    states, changes = alerts.evaluate_alarms(
        "ep", "s", [], [violation], {"r2": 0.3, "mae": 2.0}, {}, WHEN
    )
    assert states == {"ep-model-quality-r2": "ALARM", "ep-model-quality-mae": "OK"}
    assert "was less than the threshold (0.8)" in changes[0].reason


class Receiver(BaseHTTPRequestHandler):
    bodies: list = []  # noqa: RUF012

    def do_POST(self) -> None:
        Receiver.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_hooks_get_the_payload_by_command_and_webhook(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.bodies = []
    out = tmp_path / "got.json"
    command = [
        sys.executable,
        "-c",
        f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())",
    ]
    try:
        results = alerts.call_hooks(
            {"violations": [1]}, command, f"http://127.0.0.1:{server.server_port}/x"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert [r.ok for r in results] == [True, True]
    assert json.loads(out.read_text()) == {"violations": [1]}
    assert Receiver.bodies == [{"violations": [1]}]
    failing = alerts.call_hooks({}, [sys.executable, "-c", "raise SystemExit(4)"])
    assert not failing[0].ok
    assert "exit 4" in failing[0].detail


@pytest.mark.parametrize("url", ["http://8.8.8.8/hook", "ftp://127.0.0.1/x", "not a url"])
def test_webhooks_off_the_users_network_are_refused(url):
    with pytest.raises(MlopsError, match=r"alert_webhook|public address"):
        alerts.check_webhook(url)


def run_record(started: str, rows: int, **extra) -> dict:
    return {"started": started, "records": rows, "version": 3, **extra}


def test_history_keeps_the_newest_n(tmp_path):
    history = History(tmp_path, "ep", keep=3)
    for number in range(5):
        history.add(run_record(f"2026-03-04T05:0{number}:00Z", 10, n=number))
    assert [r["n"] for r in history.records()] == [2, 3, 4]
    assert history.latest()["n"] == 4


def test_empty_windows_are_counted_per_hour_and_never_push_a_run_out(tmp_path):
    history = History(tmp_path, "ep", keep=3)
    history.add(run_record("2026-03-04T04:59:00Z", 506, n="drift"))
    for minute in range(40):  # a schedule every minute over a quiet hour and more
        hour, rest = divmod(minute + 30, 60)
        history.add(run_record(f"2026-03-04T0{5 + hour}:{rest:02d}:00Z", 0))
    assert [r["n"] for r in history.records()] == ["drift"]
    assert [(w.hour, w.count, w.first, w.last) for w in history.empty_windows()] == [
        ("2026-03-04T05", 30, "2026-03-04T05:30:00Z", "2026-03-04T05:59:00Z"),
        ("2026-03-04T06", 10, "2026-03-04T06:00:00Z", "2026-03-04T06:09:00Z"),
    ]
    assert history.latest()["n"] == "drift"
    # No data since the drift run: its alarms are back to OK (notBreaching).
    assert history.quiet_since_latest()
    history.add(run_record("2026-03-04T06:10:00Z", 506, n="again"))
    assert not history.quiet_since_latest()


def test_only_the_newest_hours_of_empty_windows_are_kept(tmp_path):
    history = History(tmp_path, "ep", keep=2)
    for hour in range(5):
        history.add(run_record(f"2026-03-04T0{hour}:00:00Z", 0))
    assert [w.hour for w in history.empty_windows()] == ["2026-03-04T03", "2026-03-04T04"]


def test_ground_truth_joins_by_inference_id(tmp_path):
    csv_file = tmp_path / "truth.csv"
    pd.DataFrame({"inferenceId": ["a", "b", "zz"], "medv": [1.0, 2.0, 9.0]}).to_csv(
        csv_file, index=False
    )
    jsonl = tmp_path / "truth.jsonl"
    jsonl.write_text(
        json.dumps(
            {
                "groundTruthData": {"data": "1.0", "encoding": "CSV"},
                "eventMetadata": {"eventId": "a"},
                "eventVersion": "0",
            }
        )
        + "\n"
    )
    assert quality.read_ground_truth(jsonl, "medv") == {"a": [1.0]}
    labels = quality.read_ground_truth(csv_file, "medv")
    joined = quality.join(labels, {"a": [1.5], "b": [2.5], "c": [7.0]})
    assert (joined.labels, joined.predictions, joined.unmatched_labels) == (
        [1.0, 2.0],
        [1.5, 2.5],
        1,
    )
    analyzer = load_analyzer()
    constraints = {
        "regression_constraints": {
            "mae": {"threshold": 0.1, "comparison_operator": "GreaterThanThreshold"}
        }
    }
    result = quality.evaluate(analyzer, joined, constraints, None)
    assert result.metrics["mae"] == pytest.approx(0.5)
    assert [v["metric_name"] for v in result.violations] == ["mae"]
    with pytest.raises(MlopsError, match="needs the columns inferenceId and target"):
        quality.read_ground_truth(csv_file, "target")
    with pytest.raises(MlopsError, match="No ground truth matched"):
        quality.evaluate(analyzer, quality.join(labels, {}), constraints, None)


def record(started: str, distance: float, violated: bool, rmse: float | None = None) -> dict:
    return {
        "endpoint": "ep",
        "version": 3,
        "started": started,
        "records": 506,
        "features": [drift_of("rm", distance, violated).to_dict()],
        "violations": [
            {
                "feature_name": "rm",
                "constraint_check_type": "baseline_drift_check",
                "description": "<drift>",
            }
        ]
        if violated
        else [],
        "model_quality": {"metrics": {"rmse": rmse}, "violations": []} if rmse else None,
    }


def test_the_report_is_one_self_contained_file_with_every_run(tmp_path):
    quiet = {**record("2026-03-04T07:00:00Z", 0.0, False), "records": 0, "features": []}
    records = [
        record("2026-03-04T05:00:00Z", 0.0, False, 3.0),
        record("2026-03-04T06:00:00Z", 0.8, True),
        quiet,  # an hour without traffic: not a point on the charts
    ]
    html = report.render_report(records)
    assert html.count('id="chart-') == 3
    assert "<script src=" not in html  # plotly.js inlined: no network needed
    assert "Plotly.newPlot" in html
    assert "&lt;drift&gt;" in html  # descriptions are escaped
    assert "2026-03-04T05:00:00Z" in html
    assert "2026-03-04T06:00:00Z" in html
    assert "2026-03-04T07:00:00Z" not in html
    with pytest.raises(MlopsError, match="No monitoring results yet"):
        report.render_report([quiet])


def test_monitoring_settings_are_checked(monkeypatch):
    settings = Settings.load({"monitoring": {"keep_results": 5}}, environ={})
    assert MonitoringSettings.from_settings(settings, environ={}).keep_results == 5
    overridden = MonitoringSettings.from_settings(
        settings, environ={"MLOPS_ALERT_WEBHOOK": "http://127.0.0.1:9/x"}
    )
    assert overridden.alert_webhook == "http://127.0.0.1:9/x"
    with pytest.raises(MlopsError, match="Unknown monitoring setting"):
        MonitoringSettings.from_settings(
            Settings.load({"monitoring": {"keep": 1}}, environ={}), environ={}
        )
    with pytest.raises(MlopsError, match="keep_results"):
        MonitoringSettings(keep_results=0)


def test_predict_sends_each_row_with_its_inference_id():
    sent = []

    def invoke(body: bytes, inference_id: str | None = None) -> bytes:
        sent.append((body, inference_id))
        return json.dumps({"predictions": [float(len(sent))]}).encode()

    rows = pd.DataFrame({"a": [1, 2], "b": [3.5, 4.5]})
    assert predict(rows, invoke, inference_ids=["x", "y"]) == [1.0, 2.0]
    assert sent == [(b"1,3.5\n", "x"), (b"2,4.5\n", "y")]


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00[/bold]\xff\xfe", b"inferenceId,medv\n\xff\xfe[/]\n"],
)
def test_a_binary_ground_truth_file_is_refused_naming_it_before_any_work(tmp_path, content):
    from pipelines.actions import monitoring

    binary = tmp_path / "labels [v2].csv"
    binary.write_bytes(content)
    settings = Settings.load(None, environ={"MLOPS_STATE_DIR": str(tmp_path / "state")})
    with pytest.raises(MlopsError, match=r"labels \[v2\]\.csv is not UTF-8 text"):
        # Refused before the emulator is looked for: none runs here.
        monitoring.monitor(settings, "local", None, None, ground_truth=str(binary))
    assert not (tmp_path / "state").exists()
