"""The monitoring page: runs measured by the analyzer the monitoring job runs, kept in the
stage's history as `invoke monitor` keeps them; the page draws one SVG line per feature,
lists the latest violations and alarms, and frames the drift report, which is served with
its own policy (its scripts run there only) and exported beside the pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import requests

from pipelines.console.export import export
from pipelines.executor import checks
from pipelines.monitoring import drift
from pipelines.monitoring.capture_reader import Window
from pipelines.monitoring.execution import MonitoringResult
from pipelines.monitoring.results import History
from tests.console.serving import console_server

# A real console server (uvicorn) per test: the server tier, not the fast one.
pytestmark = pytest.mark.server
FEATURES = ("crim", "rm")


def keep_runs(console_stack, shifts: list[float]) -> str:
    """One monitoring run per shift of ``rm`` against a baseline of the same sizes, kept
    in the staging endpoint's history; returns the endpoint."""
    analyzer = checks.load_analyzer()
    rng = np.random.default_rng(3)

    def frame(shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {"crim": rng.exponential(3.0, 400), "rm": rng.normal(6 + shift, 0.7, 400)}
        )

    baseline = analyzer.data_statistics(frame(0.0))
    constraints = analyzer.suggest_constraints(baseline)
    endpoint = console_stack.config.endpoint_name("staging")
    history = History(console_stack.source.settings.state_dir, endpoint)
    started = datetime(2026, 3, 4, 5, tzinfo=UTC)
    for index, shift in enumerate(shifts):
        current = analyzer.data_statistics(frame(shift))
        violations = analyzer.violations_document(
            analyzer.check_data_quality(current, baseline, constraints)
        )["violations"]
        when = started + timedelta(hours=index)
        drifts = drift.feature_drifts(analyzer, current, baseline, constraints, violations)
        result = MonitoringResult(
            endpoint, f"{endpoint}-data-quality", 1, when, Window(when - timedelta(hours=1), when),
            records=400, drifts=drifts, violations=violations,
            alarms={"staging data drift": "ALARM" if violations else "OK"},
        )  # fmt: skip
        history.add(result.to_record())
    return endpoint


def test_one_line_per_feature_the_latest_violations_and_alarms(console_stack):
    endpoint = keep_runs(console_stack, [0.0, 0.1, 1.5])
    quiet = datetime(2026, 3, 4, 9, tzinfo=UTC)
    History(console_stack.source.settings.state_dir, endpoint).add(
        MonitoringResult(
            endpoint, "s", 1, quiet, Window(quiet - timedelta(hours=1), quiet)
        ).to_record()
    )  # no captured rows: counted as an empty window, drawn nowhere
    with console_server(console_stack.source) as running:
        page = running.session().get(f"{running.base}/monitoring?stage=staging").text
    assert endpoint in page
    chart = page.split('<svg id="drift-chart"')[1].split("</svg>")[0]
    lines = dict(re.findall(r'data-feature="([^"]+)">.*?<polyline points="([^"]+)"', chart, re.S))
    assert set(lines) == set(FEATURES)
    for points in lines.values():
        assert len(points.split()) == 3  # one point per run
    # SVG y grows downwards: rm's last point (the shifted run) is above its first.
    first, *_, last = (float(p.split(",")[1]) for p in lines["rm"].split())
    assert last < first
    assert 'class="threshold"' in chart
    violations = page.split('id="violations"')[1].split("</ul>")[0]
    assert "rm: baseline_drift_check" in violations
    assert "crim" not in violations
    assert re.search(r"staging data drift</td><td class=\"bad\">ALARM", page)
    runs = page.split('<table id="runs">')[1]
    assert "1 empty window from 2026-03-04 09:00:00Z" in runs
    assert runs.index("empty window") < runs.index("2026-03-04 07:00:00Z")  # newest first


def test_the_report_is_framed_sandboxed_and_served_with_its_own_policy(console_stack):
    keep_runs(console_stack, [0.0, 1.5])
    with console_server(console_stack.source) as running:
        session = running.session()
        page = session.get(f"{running.base}/monitoring?stage=staging")
        report = session.get(f"{running.base}/monitoring/report?stage=staging")
        fresh = requests.get(f"{running.base}/monitoring/report?stage=staging", timeout=10)
    frame = re.search(r"<iframe[^>]*>", page.text).group(0)
    assert 'sandbox="allow-scripts"' in frame
    assert 'src="/monitoring/report?stage=staging"' in frame
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert report.status_code == 200
    assert "script-src 'unsafe-inline'" in report.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in report.headers["Content-Security-Policy"]
    assert "Drift distance per feature across monitoring runs" in report.text
    assert fresh.status_code == 403  # the report is behind the token like every page


def test_a_stage_without_runs_says_how_to_get_some_and_the_export_copies_the_report(
    console_stack, tmp_path
):
    keep_runs(console_stack, [0.0])
    with console_server(console_stack.source) as running:
        session = running.session()
        prod = session.get(f"{running.base}/monitoring?stage=prod").text
        unknown = session.get(f"{running.base}/monitoring?stage=qa")
    assert "invoke monitor --stage prod" in prod
    assert "<iframe" not in prod
    assert unknown.status_code == 404
    assert "Unknown stage &#39;qa&#39;" in unknown.text
    written = {p.name for p in export(console_stack.source, tmp_path)}
    assert {
        "monitoring.html",
        "monitoring-staging.html",
        "monitoring_report-staging.html",
    } <= written
    assert "monitoring_report-prod.html" not in written  # no run with data to report on
    staging = (tmp_path / "monitoring-staging.html").read_text()
    assert 'src="monitoring_report-staging.html"' in staging
