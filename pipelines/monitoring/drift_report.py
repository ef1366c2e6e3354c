"""The drift report: one static HTML file, charts by plotly, plotly.js inlined (no network).

From the monitoring history (oldest first): per feature, the baseline's and the latest run's
distributions overlaid (the analyzer's 10 buckets, as shares), with the distance and the
threshold in the title; each feature's distance across runs against its threshold; and the
model-quality metrics across runs when labels arrived.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pipelines.core.errors import MlopsError

Json = dict[str, Any]
_COLUMNS = 3
_BASELINE, _CURRENT, _ALERT = "#4C78A8", "#F58518", "#E45756"


def _shares(buckets: list[Json]) -> tuple[list[float], list[float], list[float]]:
    total = sum(b["count"] for b in buckets) or 1
    middles = [(b["lower_bound"] + b["upper_bound"]) / 2 for b in buckets]
    widths = [max(b["upper_bound"] - b["lower_bound"], 1e-12) for b in buckets]
    return middles, [b["count"] / total for b in buckets], widths


def distributions_figure(latest: Json) -> go.Figure:
    features = [
        f for f in latest["features"] if f.get("baseline_buckets") and f.get("current_buckets")
    ]
    rows = max(1, math.ceil(len(features) / _COLUMNS))
    titles = []
    for feature in features:
        distance = feature.get("distance")
        flag = " DRIFT" if feature.get("violations") else ""
        titles.append(
            f"{feature['name']}: distance {distance:.3g} / threshold {feature['threshold']:g}{flag}"
            if distance is not None
            else feature["name"]
        )
    figure = make_subplots(rows=rows, cols=_COLUMNS, subplot_titles=titles or [""])
    for index, feature in enumerate(features):
        row, col = index // _COLUMNS + 1, index % _COLUMNS + 1
        for label, key, color in (
            ("baseline", "baseline_buckets", _BASELINE),
            ("current", "current_buckets", _CURRENT),
        ):
            x, y, width = _shares(feature[key])
            figure.add_trace(
                go.Bar(
                    x=x,
                    y=y,
                    width=width,
                    name=label,
                    legendgroup=label,
                    showlegend=index == 0,
                    marker_color=color,
                    opacity=0.6,
                ),
                row=row,
                col=col,
            )
    figure.update_layout(
        barmode="overlay",
        height=280 * rows,
        title_text="Baseline vs current distribution per feature (share of rows per bucket)",
    )
    return figure


def distance_figure(records: list[Json]) -> go.Figure:
    figure = go.Figure()
    times = [r["started"] for r in records]
    names = [f["name"] for f in records[-1]["features"]]
    for name in names:
        values = []
        for record in records:
            found = next((f for f in record["features"] if f["name"] == name), None)
            values.append(found.get("distance") if found else None)
        figure.add_trace(go.Scatter(x=times, y=values, mode="lines+markers", name=name))
    thresholds = {f["threshold"] for f in records[-1]["features"]}
    for threshold in thresholds:
        figure.add_hline(
            y=threshold,
            line_dash="dash",
            line_color=_ALERT,
            annotation_text=f"threshold {threshold:g}",
        )
    figure.update_layout(
        title_text="Drift distance per feature across monitoring runs",
        xaxis_title="monitoring run (UTC)",
        yaxis_title="robust L-infinity distance",
        height=420,
    )
    return figure


def quality_figure(records: list[Json]) -> go.Figure:
    figure = go.Figure()
    labelled = [r for r in records if r.get("model_quality")]
    metrics = sorted({m for r in labelled for m in r["model_quality"]["metrics"]})
    for metric in metrics:
        figure.add_trace(
            go.Scatter(
                x=[r["started"] for r in labelled],
                y=[r["model_quality"]["metrics"].get(metric) for r in labelled],
                mode="lines+markers",
                name=metric,
            )
        )
    figure.update_layout(
        title_text="Model quality across monitoring runs"
        + ("" if labelled else " (no ground truth yet: monitor --ground-truth FILE)"),
        xaxis_title="monitoring run (UTC)",
        height=380,
    )
    return figure


def render_report(records: list[Json]) -> str:
    measured = [r for r in records if r.get("features")]  # runs that had captured data
    if not measured:
        raise MlopsError(
            "No monitoring results yet: run `invoke monitor` once there is captured traffic."
        )
    latest = measured[-1]
    figures = [distributions_figure(latest), distance_figure(measured), quality_figure(measured)]
    parts = [
        figure.to_html(full_html=False, include_plotlyjs=index == 0, div_id=f"chart-{index}")
        for index, figure in enumerate(figures)
    ]
    violations = latest.get("violations", []) + (latest.get("model_quality") or {}).get(
        "violations", []
    )
    listed = "".join(
        f"<li><b>{html.escape(str(v.get('feature_name') or v.get('metric_name')))}</b>: "
        f"{html.escape(v['constraint_check_type'])}: {html.escape(v['description'])}</li>"
        for v in violations
    )
    summary = (
        f"<p>Endpoint <b>{html.escape(latest['endpoint'])}</b>, model version "
        f"{latest['version']}; latest run {html.escape(latest['started'])} over "
        f"{latest['records']:,} captured rows; {len(measured)} run(s) with data shown.</p>"
        + (f"<h2>Violations</h2><ul>{listed}</ul>" if listed else "<p>No violations.</p>")
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Drift report: {html.escape(latest['endpoint'])}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}</style></head><body>"
        f"<h1>Model monitoring: {html.escape(latest['endpoint'])}</h1>{summary}"
        + "".join(parts)
        + "</body></html>\n"
    )


def write_report(records: list[Json], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(records))
    return path
