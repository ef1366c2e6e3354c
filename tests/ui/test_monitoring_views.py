"""What `monitor` and `monitor-history` print: distances with their correction, one line per
violation, the alarms after the tables, empty windows counted, newest first."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from rich.console import Console

from pipelines.monitoring import capture_reader as capture
from pipelines.monitoring.drift import FeatureDrift
from pipelines.monitoring.execution import MonitoringResult
from pipelines.monitoring.results import EmptyWindows
from pipelines.ui.monitoring_views import history_table, result_lines

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def render(*renderables) -> str:
    console = Console(record=True, width=200, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def cells(text: str) -> str:
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def drifted_result() -> MonitoringResult:
    result = MonitoringResult("ep", "ep-dq", 3, WHEN, capture.Window(WHEN, WHEN), records=506)
    result.drifts = [
        FeatureDrift("rm", 6.3, 18.9, 0.61, 0.1, ("baseline_drift_check",), raw_distance=0.75),
        FeatureDrift("crim", 3.6, 3.6, 0.0, 0.1, (), raw_distance=0.05),
    ]
    result.violations = [
        {
            "feature_name": "rm",
            "constraint_check_type": "baseline_drift_check",
            "description": "Baseline drift distance: 0.61 exceeds threshold: 0.1.",
        }
    ]
    result.notifications = [
        {
            "AlarmName": "ep-drift-rm",
            "NewStateValue": "ALARM",
            "OldStateValue": "INSUFFICIENT_DATA",
            "NewStateReason": "Threshold Crossed: 1 datapoint [0.61] was greater than 0.1.",
            "Region": "us-east-1",
        }
    ]
    result.output_prefix = "s3://b/monitoring/ep/ep-dq/2026/03/04/05"
    return result


def test_monitor_shows_raw_and_corrected_distances_and_says_when_clamped():
    text = cells(render(*result_lines(drifted_result(), "1h")))
    assert "rm 6.3 18.9 0.75 0.61 0.1 baseline_drift_check" in text
    assert "crim 3.6 3.6 0.05 0 (clamped) 0.1 ok" in text
    assert "clamped: that noise covers the whole raw distance" in text


def test_each_violation_is_one_line_and_the_alarms_come_after_the_tables():
    lines = render(*result_lines(drifted_result(), "1h")).splitlines()
    violation = [i for i, line in enumerate(lines) if "rm: baseline_drift_check:" in line]
    alarm = [i for i, line in enumerate(lines) if line.startswith('ALARM: "ep-drift-rm"')]
    table_end = max(i for i, line in enumerate(lines) if line.startswith("└"))
    assert len(violation) == 1
    assert len(alarm) == 1
    assert table_end < violation[0] < alarm[0]
    assert "(was INSUFFICIENT_DATA): Threshold Crossed" in lines[alarm[0]]


def test_history_lists_newest_first_with_empty_windows_counted():
    records = [
        {"started": "2026-03-04T04:00:00Z", "version": 3, "records": 506, "features": []},
        {
            "started": "2026-03-04T06:30:00Z",
            "version": 3,
            "records": 20,
            "features": [{"name": "rm", "violations": ["baseline_drift_check"]}],
            "violations": [{"feature_name": "rm"}],
        },
    ]
    empty = [EmptyWindows("2026-03-04T05", 12, "2026-03-04T05:01:00Z", "2026-03-04T05:59:00Z", 3)]
    text = cells(render(history_table(records, empty)))
    newest, quiet, oldest = (
        text.index("06:30:00Z"),
        text.index("12 empty windows from 05:01Z to 05:59Z"),
        text.index("04:00:00Z"),
    )
    assert newest < quiet < oldest
    assert "2026-03-04 06:30:00Z 3 20 1 rm" in text
