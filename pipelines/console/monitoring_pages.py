"""The monitoring page of a stage (``?stage=``): each feature's drift distance across the
kept runs as an inline SVG chart (one line per feature, its threshold dashed), the runs as
`monitor-history` lists them, the latest run's violations and alarms, and the drift report
`monitor --report` writes, served by itself and framed in a sandbox."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipelines.console.page import Document, Page
from pipelines.core.errors import MlopsError

if TYPE_CHECKING:
    from pipelines.console.source import Source

STAGES = ("default", "staging", "prod")
# Tableau 10: distinguishable lines for up to ten features; more repeat the colours.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 12, 34  # room for the axes' labels

# The report's own policy: plotly's inline scripts run, nothing is fetched, and only the
# console may frame it (its page frames it sandboxed, so the script sees no cookie).
REPORT_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


@dataclass
class Series:
    feature: str
    colour: str
    points: str  # "x,y x,y ..." for <polyline>
    dots: list[tuple[float, float, str]]  # x, y, the tooltip
    threshold_y: float | None
    drifting: bool  # in the latest run


@dataclass
class Chart:
    width: int
    height: int
    series: list[Series]
    y_ticks: list[tuple[float, str]]  # y, label
    x_labels: list[tuple[float, str]]
    thresholds: list[tuple[float, str]] = field(default_factory=list)


def _seconds(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def drift_chart(records: list[dict[str, Any]]) -> Chart | None:
    """One line per feature of the newest run, across the runs that measured data (oldest
    first); None when no run did."""
    measured = [r for r in records if r.get("features")]
    if not measured:
        return None
    times = [_seconds(r["started"]) for r in measured]
    names = [f["name"] for f in measured[-1]["features"]]
    values = {
        name: [
            next((f.get("distance") for f in r["features"] if f["name"] == name), None)
            for r in measured
        ]
        for name in names
    }
    thresholds = {f["name"]: f.get("threshold") for f in measured[-1]["features"]}
    top = max([v for vs in values.values() for v in vs if v is not None] +
              [t for t in thresholds.values() if t is not None] + [1e-9]) * 1.1  # fmt: skip
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    first, span = times[0], (times[-1] - times[0]) or 1.0

    def x(t: float) -> float:
        return round(LEFT + (inner_w / 2 if len(times) == 1 else (t - first) / span * inner_w), 1)

    def y(v: float) -> float:
        return round(TOP + inner_h - v / top * inner_h, 1)

    series = []
    latest = {f["name"]: f for f in measured[-1]["features"]}
    for index, name in enumerate(names):
        dots = [
            (x(t), y(v), f"{name} {v:.4g} at {stamp.replace('T', ' ')}")
            for t, v, stamp in zip(
                times, values[name], (r["started"] for r in measured), strict=True
            )
            if v is not None
        ]
        threshold = thresholds.get(name)
        series.append(
            Series(
                name,
                PALETTE[index % len(PALETTE)],
                " ".join(f"{dx},{dy}" for dx, dy, _ in dots),
                dots,
                y(threshold) if threshold is not None else None,
                bool(latest[name].get("violations")),
            )
        )
    ticks = [(y(top * i / 4), f"{top * i / 4:.3g}") for i in range(5)]
    labelled = [0] if len(times) == 1 else [0, len(times) - 1]
    x_labels = [(x(times[i]), measured[i]["started"].replace("T", " ")) for i in labelled]
    lines = sorted({(y(t), f"threshold {t:g}") for t in thresholds.values() if t is not None})
    return Chart(WIDTH, HEIGHT, series, ticks, x_labels, lines)


@dataclass
class RunRow:
    started: str
    version: Any
    rows: int
    violations: int
    drifting: list[str]
    rmse: float | None
    empty: str = ""  # for a group of windows without traffic


def run_rows(history: Any) -> list[RunRow]:
    """`monitor-history`'s rows, newest first: the runs, and the empty windows per hour."""
    rows = []
    for record in history.records:
        quality = record.get("model_quality") or {}
        rows.append(
            RunRow(
                record["started"].replace("T", " "),
                record["version"],
                record["records"],
                len(record.get("violations", [])) + len(quality.get("violations", [])),
                [f["name"] for f in record.get("features", []) if f.get("violations")],
                quality.get("metrics", {}).get("rmse"),
            )
        )
    for windows in history.empty:
        plural = "window" if windows.count == 1 else "windows"
        rows.append(
            RunRow(windows.last.replace("T", " "), windows.version, 0, 0, [], None,
                   f"{windows.count} empty {plural} from {windows.first.replace('T', ' ')} to "
                   f"{windows.last.replace('T', ' ')}: "
                   "no captured traffic")
        )  # fmt: skip
    return sorted(rows, key=lambda row: row.started, reverse=True)


def _stage(query: Mapping[str, str], stage: str | None = None) -> str:
    """The stage asked for: ``?stage=`` when served, an argument when exported."""
    stage = stage or query.get("stage") or "default"
    if stage not in STAGES:
        raise MlopsError(f"Unknown stage {stage!r}: choose one of {', '.join(STAGES)}.")
    return stage


def monitoring(source: Source, query: Mapping[str, str], stage: str | None = None) -> Page:
    from pipelines.executor.checks import describe_violation

    stage = _stage(query, stage)
    history = source.monitoring_history(stage)
    measured = [r for r in history.records if r.get("features")]
    latest = history.records[-1] if history.records else None
    violations = []
    if latest:
        quality = latest.get("model_quality") or {}
        violations = [
            describe_violation(v)
            for v in latest.get("violations", []) + quality.get("violations", [])
        ]
    return Page(
        f"Monitoring · {stage}",
        "monitoring.html",
        {
            "stage": stage,
            "stages": STAGES,
            "endpoint": history.endpoint,
            "chart": drift_chart(history.records),
            "runs": run_rows(history),
            "latest": latest,
            "violations": violations,
            "alarms": sorted((latest or {}).get("alarms", {}).items()),
            "has_report": bool(measured),
        },
        section="monitoring",
    )


def report(source: Source, query: Mapping[str, str], stage: str | None = None) -> Document:
    """The drift report of the kept runs, as `monitor --report FILE` writes it."""
    from pipelines.monitoring import drift_report  # plotly: only when a report is asked for

    history = source.monitoring_history(_stage(query, stage))
    return Document(drift_report.render_report(history.records), REPORT_POLICY)


def exported(source: Source) -> Iterable[tuple[str, dict[str, str]]]:
    """The default stage's page is ``monitoring.html`` (the navigation's link); a report
    the export cannot write (no run with data yet) is left out, and its page says so."""
    for stage in STAGES:
        yield "monitoring", {} if stage == "default" else {"stage": stage}
        yield "monitoring_report", {"stage": stage}
