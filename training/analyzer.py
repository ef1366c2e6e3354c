"""Model Monitor's and Clarify's baseline analyses, as one standalone module.

This stands in for the analyzers inside SageMaker's Model Monitor image (``sagemaker-model-
monitor-analyzer``) and Clarify image, and writes their files with their documented fields,
so a baseline computed here and one computed on SageMaker are interchangeable in a model
package's ``DriftCheckBaselines`` and ``ModelMetrics``. It imports only numpy and pandas, works
with the SageMaker scikit-learn 1.2-1 container's versions (Python 3.9, pandas 1.1.3, numpy
1.24.1) and the host's, and is reused by endpoint monitoring.

Formats and their sources:

* ``statistics.json``: developer guide "Schema for Statistics (statistics.json file)",
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-interpreting-statistics.html
  (10 buckets, "not currently configurable").
* ``constraints.json``: "Schema for Constraints (constraints.json file)",
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-constraints.html
* ``constraint_violations.json``: "Schema for Violations (constraint_violations.json file)",
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-interpreting-violations.html
  (check types data_type_check, completeness_check, baseline_drift_check,
  missing_column_check, extra_column_check, categorical_values_check).
* Distributions and the drift distance: awslabs/deequ ``src/main/scala/com/amazon/deequ/
  analyzers/``. ``KLLSketch.scala``: the sketch (``DEFAULT_SKETCH_SIZE = 2048``,
  ``DEFAULT_SHRINKING_FACTOR = 0.64``) and the buckets it answers; ``QuantileNonSample.scala``
  and ``NonSampleCompactor.scala``: how the sketch fills and compacts; ``Distance.scala``
  (``numericalDistance``, ``categoricalDistance``): the L∞ distance between the two
  distribution functions at every item of either sketch, and its robust variant, less
  ``1.8 * sqrt((n + m) / (n * m))`` (the two-sample Kolmogorov-Smirnov critical value).
  The statistics file carries the sketch (``distribution.kll.sketch.data``, one list per
  compactor level) and the comparison reads it, never the 10 published buckets.
* Model quality: "Model quality metrics" (regression: mae, mse, rmse, r2, each with
  ``value`` and ``standard_deviation``; the standard deviation only from 200 samples, over 5
  random 80 % samples), https://docs.aws.amazon.com/sagemaker/latest/dg/
  model-monitor-model-quality-metrics.html; constraints ``regression_constraints`` with
  ``threshold`` and ``comparison_operator``, the threshold being the baseline's value
  ("Create a Model Quality Baseline": the baseline job suggests constraints, thresholds a
  metric must not go beyond).
* Bias: Clarify's metrics library, smclarify (aws/amazon-sagemaker-clarify, ``src/smclarify/
  bias/report.py`` and ``metrics/pretraining.py``; 0.5 on PyPI): its formulas, group names
  (intervals such as ``(0.5, 1.0]``), zero-bin handling and errors, in ``analysis.json``'s
  ``pre_training_bias_metrics``; tests/training/test_analyzer.py runs smclarify itself in the
  1.2-1 runtime and compares. Violations per "Bias drift violations",
  https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-model-monitor-bias-drift-violations.html
  (a metric farther from 0 than the baseline's value is a ``bias_drift_check`` violation; the
  file has ``"version": "1.0"``).

Where the documents are silent, the choices are marked "Choice:" below.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"
ANALYSIS_FILE = "analysis.json"

BUCKETS = 10
# Deequ's KLL defaults (KLLSketch.DEFAULT_SKETCH_SIZE, DEFAULT_SHRINKING_FACTOR), the
# parameters Model Monitor's statistics files show.
KLL_K = 2048
KLL_C = 0.64
# Model Monitor's documented defaults for monitoring_config.
COMPARISON_THRESHOLD = 0.1
# Choice: a String feature gets a domain when it has at most this many distinct values.
MAX_DOMAIN_SIZE = 20
# Deequ's robust L∞ correction factor.
ROBUST_FACTOR = 1.8
# Choice: float noise below this never makes a violation.
TOLERANCE = 1e-9

INTEGRAL = "Integral"
FRACTIONAL = "Fractional"
STRING = "String"
UNKNOWN = "Unknown"

_INTEGER = re.compile(r"^[+-]?\d+$")

Json = dict[str, Any]
Violation = dict[str, Any]


# --- data quality: statistics ---------------------------------------------------------------


def read_csv(path: Path, header: bool = True) -> pd.DataFrame:
    """A CSV file, or every CSV file in a folder, as text: types are inferred from the text, as
    Model Monitor does (``"1"`` is Integral, ``"1.0"`` Fractional)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    frames = [
        pd.read_csv(f, header=0 if header else None, dtype=str, keep_default_na=False)
        for f in files
        if f.suffix.lower() in (".csv", "")
    ]
    if not frames:
        raise ValueError(f"no CSV file under {path}")
    frame = pd.concat(frames, ignore_index=True)
    if not header:
        # Model Monitor's names for headerless columns.
        frame.columns = [f"_c{i}" for i in range(frame.shape[1])]
    return frame


def _present(values: pd.Series) -> pd.Series:
    text = values.astype(str).str.strip()
    return text[(text != "") & (text.str.lower() != "nan")]


def infer_type(values: pd.Series) -> str:
    """Integral when every present value is an integer, Fractional when every one is a number,
    else String; Unknown when nothing is present."""
    present = _present(values)
    if present.empty:
        return UNKNOWN
    if present.str.match(_INTEGER).all():
        return INTEGRAL
    if pd.to_numeric(present, errors="coerce").notna().all():
        return FRACTIONAL
    return STRING


def _kll_capacity(height: int, k: int, c: float) -> int:
    """QuantileNonSample.capacity: level h holds 2 * (ceil(k * c^h / 2) + 1) items (2,050 on
    level 0 with Deequ's defaults)."""
    return 2 * (math.ceil(k * c**height / 2) + 1)


def kll_sketch(values: Sequence[float], k: int = KLL_K, c: float = KLL_C) -> list[list[float]]:
    """Deequ's QuantileNonSample fed ``values`` in order (as one Spark partition feeds it): the
    items of its compactor levels, an item on level h standing for 2^h values.

    ``update`` appends to level 0; once the sketch holds more items than its levels' capacities
    add up to, ``condense`` compacts the first level at capacity into the next one
    (NonSampleCompactor.compact: sorted, every other item from an offset that alternates
    between compactions, an odd last item kept). Until then, up to 2,050 values with the
    defaults, the sketch is exact: one level holding every value.
    """
    levels: list[list[float]] = [[]]
    compactions = [0]
    offsets = [0]
    capacity = _kll_capacity(0, k, c)
    size = 0
    position = 0
    while position < len(values):
        # Deequ checks after every update; append up to the first one that overflows.
        take = min(max(1, capacity - size + 1), len(values) - position)
        levels[0].extend(values[position : position + take])
        size += take
        position += take
        if size <= capacity:
            continue
        height = next(h for h, level in enumerate(levels) if len(level) >= _kll_capacity(h, k, c))
        if height + 1 == len(levels):
            levels.append([])
            compactions.append(0)
            offsets.append(0)
            capacity += _kll_capacity(height + 1, k, c)
        buffer = levels[height]
        even = len(buffer) - len(buffer) % 2
        if compactions[height] % 2 == 1:
            offsets[height] = 1 - offsets[height]
        levels[height + 1].extend(sorted(buffer[:even])[offsets[height] : even : 2])
        levels[height] = buffer[even:]
        compactions[height] += 1
        size = sum(len(level) for level in levels)
    return levels


class _Ranks:
    """A sketch's items sorted, with their cumulative weights: QuantileNonSample's ranks."""

    def __init__(self, data: Sequence[Sequence[float]]) -> None:
        items = [np.asarray(level, dtype=np.float64) for level in data]
        weights = [np.full(len(level), 2**h, dtype=np.int64) for h, level in enumerate(items)]
        values = np.concatenate(items) if items else np.empty(0)
        order = np.argsort(values, kind="stable")
        self.items = values[order]
        self.cumulative = np.cumsum(np.concatenate(weights)[order]) if weights else np.empty(0)
        self.total = int(self.cumulative[-1]) if len(self.cumulative) else 0

    def rank(self, x: np.ndarray, inclusive: bool = True) -> np.ndarray:
        """getRank (the weight of the items <= x) or getRankExclusive (of the items < x)."""
        index = np.searchsorted(self.items, x, side="right" if inclusive else "left")
        return np.concatenate([[0], self.cumulative])[index]


def _buckets(data: Sequence[Sequence[float]], low: float, high: float) -> list[Json]:
    """KLLSketch.computeMetricFrom: BUCKETS equal-width buckets from the global minimum to the
    maximum, counted from the sketch ([lower, upper), the last one [lower, upper])."""
    ranks = _Ranks(data)
    buckets = []
    for i in range(BUCKETS):
        lower = low + (high - low) * i / float(BUCKETS)
        upper = low + (high - low) * (i + 1) / float(BUCKETS)
        below = ranks.rank(np.array([lower]), inclusive=False)[0]
        up_to = ranks.rank(np.array([upper]), inclusive=i == BUCKETS - 1)[0]
        buckets.append({"lower_bound": lower, "upper_bound": upper, "count": int(up_to - below)})
    return buckets


def numerical_feature_statistics(
    name: str, inferred: str, numbers: np.ndarray, num_missing: int
) -> Json:
    """A numerical feature's statistics from its present values as numbers, in row order (for
    callers, such as endpoint monitoring, that parse large data into numbers themselves)."""
    with np.errstate(over="ignore"):
        # Population standard deviation, as Spark's stddev_pop in Deequ.
        mean, total, std = float(numbers.mean()), float(numbers.sum()), float(numbers.std())
    if not math.isfinite(std):  # squares overflow, though the deviation itself may not
        scale = float(np.max(np.abs(numbers)))
        std = float((numbers / scale).std() * scale)
    if not math.isfinite(total):
        raise ValueError(
            f"the sum of feature {name!r} overflows float64 (values up to "
            f"{float(np.max(np.abs(numbers))):.4g}), and statistics.json cannot hold infinity"
        )
    low, high = float(numbers.min()), float(numbers.max())
    sketch = kll_sketch(numbers.tolist())
    return {
        "name": name,
        "inferred_type": inferred,
        "numerical_statistics": {
            "common": {"num_present": len(numbers), "num_missing": int(num_missing)},
            "mean": mean,
            "sum": total,
            "std_dev": std,
            "min": low,
            "max": high,
            "distribution": {
                "kll": {
                    "buckets": _buckets(sketch, low, high),
                    "sketch": {"parameters": {"c": KLL_C, "k": float(KLL_K)}, "data": sketch},
                }
            },
        },
    }


def feature_statistics(name: str, values: pd.Series) -> Json:
    inferred = infer_type(values)
    present = _present(values)
    common = {"num_present": len(present), "num_missing": int(len(values) - len(present))}
    if inferred in (INTEGRAL, FRACTIONAL):
        numbers = pd.to_numeric(present).to_numpy(dtype=np.float64)
        return numerical_feature_statistics(name, inferred, numbers, common["num_missing"])
    counts = present.value_counts()
    return {
        "name": name,
        "inferred_type": inferred,
        "string_statistics": {
            "common": common,
            "distinct_count": float(len(counts)),
            "distribution": {
                "categorical": {
                    "buckets": [
                        {"value": str(v), "count": int(c)}
                        for v, c in sorted(counts.items(), key=lambda kv: str(kv[0]))
                    ]
                }
            },
        },
    }


def data_statistics(frame: pd.DataFrame) -> Json:
    return {
        "version": 0.0,
        "dataset": {"item_count": len(frame)},
        "features": [feature_statistics(str(c), frame[c]) for c in frame.columns],
    }


def suggest_constraints(
    statistics: Json,
    comparison_method: str = "Robust",
    comparison_threshold: float = COMPARISON_THRESHOLD,
) -> Json:
    """The constraints Model Monitor suggests from a baseline's statistics."""
    if comparison_method not in ("Simple", "Robust"):
        raise ValueError(f"comparison_method must be Simple or Robust, got {comparison_method!r}")
    items = max(int(statistics["dataset"]["item_count"]), 1)
    features = []
    for feature in statistics["features"]:
        stats = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        common = stats.get("common", {"num_present": 0})
        entry: Json = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": common["num_present"] / items,
        }
        if "numerical_statistics" in feature:
            entry["num_constraints"] = {"is_non_negative": stats["min"] >= 0}
        elif "string_statistics" in feature:
            buckets = stats["distribution"]["categorical"]["buckets"]
            if len(buckets) <= MAX_DOMAIN_SIZE:
                entry["string_constraints"] = {"domains": [b["value"] for b in buckets]}
        features.append(entry)
    return {
        "version": 0.0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": comparison_threshold,
                "comparison_method": comparison_method,
                "categorical_comparison_threshold": comparison_threshold,
                "categorical_drift_method": "LInfinity",
            },
        },
    }


# --- data quality: the drift distance ---------------------------------------------------------


def numerical_distance(base: Json, current: Json) -> tuple[float, int, int]:
    """Distance.numericalDistance: the largest gap between the two sketches' distribution
    functions, taken at every item of either; with the sketches' total weights n and m. Exact
    (the two-sample Kolmogorov-Smirnov statistic) while neither sketch has compacted."""
    a = _Ranks(base["distribution"]["kll"]["sketch"]["data"])
    b = _Ranks(current["distribution"]["kll"]["sketch"]["data"])
    if not a.total or not b.total:
        return 0.0, a.total, b.total
    keys = np.union1d(a.items, b.items)
    gaps = np.abs(a.rank(keys) / a.total - b.rank(keys) / b.total)
    return float(gaps.max()), a.total, b.total


def categorical_distance(a: Sequence[Json], b: Sequence[Json]) -> tuple[float, int, int]:
    """Distance.categoricalDistance (LInfinity): the largest gap between two value frequencies,
    with the two totals."""
    n = sum(x["count"] for x in a)
    m = sum(x["count"] for x in b)
    pa = {x["value"]: x["count"] / (n or 1) for x in a}
    pb = {x["value"]: x["count"] / (m or 1) for x in b}
    return max((abs(pa.get(v, 0.0) - pb.get(v, 0.0)) for v in {*pa, *pb}), default=0.0), n, m


def drift(distance: float, n: int, m: int, method: str) -> float:
    """Simple: the distance itself (Deequ's linf_simple); Robust: less the sampling noise two
    samples of n and m items can show (Deequ's ``linfRobust``, selectMetrics), never below 0."""
    if method == "Simple" or n == 0 or m == 0:
        return distance
    return max(0.0, distance - ROBUST_FACTOR * math.sqrt((n + m) / (n * m)))


def feature_drift(base: Json, current: Json, method: str) -> float | None:
    """The distance Model Monitor holds against the threshold for a feature in both statistics;
    None when one is numerical and the other is not."""
    if "numerical_statistics" in base and "numerical_statistics" in current:
        distance, n, m = numerical_distance(
            base["numerical_statistics"], current["numerical_statistics"]
        )
    elif "string_statistics" in base and "string_statistics" in current:
        distance, n, m = categorical_distance(
            base["string_statistics"]["distribution"]["categorical"]["buckets"],
            current["string_statistics"]["distribution"]["categorical"]["buckets"],
        )
    else:
        return None
    return drift(distance, n, m, method)


# --- data quality: violations -----------------------------------------------------------------


def _violation(feature: str, check: str, description: str) -> Violation:
    return {"feature_name": feature, "constraint_check_type": check, "description": description}


def _type_violation(feature: str, expected: str, current: Json) -> Violation | None:
    found = current["inferred_type"]
    if found in (UNKNOWN, expected):
        return None
    compatible = expected == FRACTIONAL and found == INTEGRAL
    if expected == STRING or compatible:
        return None
    return _violation(
        feature,
        "data_type_check",
        f"Data type of {feature!r} is {found} in the current data; the baseline is {expected}.",
    )


def check_data_quality(
    current: Json, baseline_statistics: Json, baseline_constraints: Json
) -> list[Violation]:
    """Model Monitor's checks of the current data's statistics against a baseline."""
    config = baseline_constraints.get("monitoring_config", {})
    distribution = config.get("distribution_constraints", {})
    compare = distribution.get("perform_comparison", "Enabled") == "Enabled"
    threshold = float(distribution.get("comparison_threshold", COMPARISON_THRESHOLD))
    categorical_threshold = float(distribution.get("categorical_comparison_threshold", threshold))
    method = distribution.get("comparison_method", "Robust")
    domain_threshold = float(config.get("domain_content_threshold", 1.0))

    current_features = {f["name"]: f for f in current["features"]}
    baseline_features = {f["name"]: f for f in baseline_statistics.get("features", [])}
    constrained = {f["name"]: f for f in baseline_constraints.get("features", [])}
    items = max(int(current["dataset"]["item_count"]), 1)
    violations: list[Violation] = []

    for name, rule in constrained.items():
        feature = current_features.get(name)
        if feature is None:
            violations.append(
                _violation(
                    name,
                    "missing_column_check",
                    f"Column {name!r} is in the baseline but not in the current data.",
                )
            )
            continue
        typed = _type_violation(name, rule["inferred_type"], feature)
        if typed:
            violations.append(typed)
            continue
        stats = feature.get("numerical_statistics") or feature.get("string_statistics")
        completeness = stats["common"]["num_present"] / items
        if completeness + TOLERANCE < float(rule.get("completeness", 0.0)):
            violations.append(
                _violation(
                    name,
                    "completeness_check",
                    f"Completeness {completeness:.4g} of {name!r} is below the baseline's "
                    f"{rule['completeness']:.4g}.",
                )
            )
        domains = rule.get("string_constraints", {}).get("domains")
        if domains is not None and "string_statistics" in feature:
            buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
            outside = {b["value"]: b["count"] for b in buckets if b["value"] not in domains}
            present = max(stats["common"]["num_present"], 1)
            if 1 - sum(outside.values()) / present + TOLERANCE < domain_threshold:
                violations.append(
                    _violation(
                        name,
                        "categorical_values_check",
                        f"{sum(outside.values())} values of {name!r} are outside the baseline's "
                        f"domain: {', '.join(sorted(outside)[:5])}.",
                    )
                )
        base = baseline_features.get(name)
        if compare and base is not None:
            limit = threshold if "numerical_statistics" in base else categorical_threshold
            violation = _drift_violation(name, base, feature, method, limit)
            if violation:
                violations.append(violation)

    for name in current_features:
        if name not in constrained:
            violations.append(
                _violation(
                    name,
                    "extra_column_check",
                    f"Column {name!r} is in the current data but not in the baseline.",
                )
            )
    return violations


def _drift_violation(
    name: str, base: Json, current: Json, method: str, limit: float
) -> Violation | None:
    value = feature_drift(base, current, method)
    if value is None or value <= limit + TOLERANCE:
        return None
    return _violation(
        name,
        "baseline_drift_check",
        f"Baseline drift distance: {value:.4g} exceeds threshold: {limit:.4g} "
        f"({method} L-infinity distance between the baseline's and the current distribution "
        f"of {name!r}).",
    )


def violations_document(violations: list[Violation], check_type: str = "DATA_QUALITY") -> Json:
    """constraint_violations.json: Model Monitor's has only ``violations``; the bias drift
    violations file also carries ``"version": "1.0"`` (clarify-model-monitor-bias-drift-
    violations)."""
    if check_type == "DATA_BIAS":
        return {"version": BIAS_VIOLATIONS_VERSION, "violations": violations}
    return {"violations": violations}


# --- model quality --------------------------------------------------------------------------

REGRESSION_METRICS = ("mae", "mse", "rmse", "r2")
# model-monitor-model-quality-metrics: "Standard deviation for metrics are provided only when at
# least 200 samples are available. Model Monitor computes standard deviation by randomly sampling
# 80% of the data 5 times, computing the metric, and taking the standard deviation".
STD_MIN_SAMPLES = 200
STD_SAMPLES = 5
STD_FRACTION = 0.8
# Choice: the seed of those samples (Model Monitor's own is not published).
STD_SEED = 0
HIGHER_IS_BETTER = ("r2",)


def _regression_values(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    error = y - p
    mse = float(np.mean(error**2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error**2)) / total if total > 0 else 0.0
    return {"mae": float(np.mean(np.abs(error))), "mse": mse, "rmse": math.sqrt(mse), "r2": r2}


def regression_statistics(y_true: Sequence[float], y_pred: Sequence[float]) -> Json:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if len(y) == 0 or len(y) != len(p):
        raise ValueError("model quality needs as many predictions as labels, at least one")
    values = _regression_values(y, p)
    spread: dict[str, Any] = {name: "NaN" for name in REGRESSION_METRICS}  # as Model Monitor
    if len(y) >= STD_MIN_SAMPLES:
        rng = np.random.RandomState(STD_SEED)
        size = int(len(y) * STD_FRACTION)
        picks = [rng.choice(len(y), size, replace=False) for _ in range(STD_SAMPLES)]
        samples = [_regression_values(y[i], p[i]) for i in picks]
        spread = {n: float(np.std([s[n] for s in samples], ddof=1)) for n in REGRESSION_METRICS}
    if not all(math.isfinite(v) for v in values.values()):
        raise ValueError(
            "the model-quality metrics overflow float64: labels or predictions are too large"
        )
    return {
        "version": 0.0,
        "dataset": {"item_count": len(y)},
        "regression_metrics": {
            name: {"value": values[name], "standard_deviation": spread[name]}
            for name in REGRESSION_METRICS
        },
    }


def suggest_regression_constraints(statistics: Json) -> Json:
    """Model Monitor's suggestion: each metric's baseline value is its threshold, a violation
    being a worse value (GreaterThanThreshold for the errors, LessThanThreshold for r2); no
    band around it (e.g. the suggested weighted_precision threshold 0.6983172269629505 is that
    metric's baseline value in AWS's examples)."""
    return {
        "version": 0.0,
        "regression_constraints": {
            name: {
                "threshold": entry["value"],
                "comparison_operator": "LessThanThreshold"
                if name in HIGHER_IS_BETTER
                else "GreaterThanThreshold",
            }
            for name, entry in statistics["regression_metrics"].items()
        },
    }


def check_model_quality(
    current: Json, constraints: Json, baseline: Json | None = None
) -> list[Violation]:
    """A metric strictly beyond its threshold is a violation, described in Model Monitor's words
    ("Metric rmse with 3.2 was GreaterThanThreshold '2.9'"), then the choice made here where
    the documents are silent: a value equal to the threshold passes."""
    base_metrics = (baseline or {}).get("regression_metrics", {})
    violations: list[Violation] = []
    for name, rule in constraints.get("regression_constraints", {}).items():
        entry = current["regression_metrics"].get(name)
        if entry is None:
            continue
        value, threshold, operator = entry["value"], rule["threshold"], rule["comparison_operator"]
        worse = value < threshold if operator == "LessThanThreshold" else value > threshold
        if worse:
            base = base_metrics.get(name, {}).get("value")
            against = f"; the baseline's value was {base!r}" if base is not None else ""
            violations.append(
                {
                    "constraint_check_type": operator,
                    "metric_name": name,
                    "description": f"Metric {name} with {value!r} was {operator} "
                    f"'{threshold!r}' (local check: a value equal to the threshold passes"
                    f"{against}).",
                }
            )
    return violations


# --- bias -----------------------------------------------------------------------------------

# smclarify's pre-training metrics in its report's order (sorted by name), each described by
# the first line of its docstring (aws/amazon-sagemaker-clarify, src/smclarify/bias/metrics/
# pretraining.py and report.py: bias_report, MetricResult, MetricError).
BIAS_METRICS = {
    "CDDL": "Conditional Demographic Disparity in Labels (CDDL)",
    "CI": "Class Imbalance (CI)",
    "DPL": "Difference in Positive Proportions in Labels (DPL)",
    "JS": "Jensen-Shannon Divergence (JS)",
    "KL": "Kullback-Liebler Divergence (KL)",
    "KS": "Kolmogorov-Smirnov Distance (KS)",
    "LP": "L-p Norm (LP)",
    "TVD": "Total Variation Distance (TVD)",
}
BIAS_VIOLATIONS_VERSION = "1.0"
_NO_COMMON_OUTCOME = "No instance of common facet found, dataset may be too small"


def _interval_group(values: np.ndarray, threshold: float) -> tuple[str, np.ndarray]:
    """report._interval_index and _continuous_data_idx for one threshold: the breaks are the
    threshold and the data's maximum (unless that equals it), the group is the values inside
    an interval (left, right], and its name the intervals' names, such as "(0.5, 1.0]".

    Choice: columns are numbers (float64), as Clarify's pandas reads preprocess.py's splits,
    whose every value is a float; such columns are continuous for smclarify."""
    top = float(values.max())
    breaks = sorted([threshold] if abs(top) == threshold else [threshold, top])
    inside = np.zeros(len(values), dtype=bool)
    names = []
    for left, right in zip(breaks, breaks[1:]):
        inside |= (values > left) & (values <= right)
        names.append(f"({left!r}, {right!r}]")
    return ",".join(names), inside


def _pdf(flags: np.ndarray) -> dict[bool, float]:
    """smclarify.util.pdf of a boolean column: each present value's frequency."""
    counts = {False: int((~flags).sum()), True: int(flags.sum())}
    total = sum(counts.values())
    return {value: count / total for value, count in counts.items() if count}


def _pre_training_metric(name: str, positive: np.ndarray, in_d: np.ndarray) -> float:
    """One of smclarify's pre-training metrics (pretraining.py), raising its errors."""
    n_d, n_a = int(in_d.sum()), int((~in_d).sum())
    if name == "CDDL":
        raise ValueError("Group variable is empty or not provided")  # no group_variable here
    if name == "CI":
        if n_a == 0:
            raise ValueError(
                "CI: negated facet set is empty. Check that x[~facet] has non-zero length."
            )
        if n_d == 0:
            raise ValueError("CI: facet set is empty. Check that x[facet] has non-zero length.")
        return float(n_a - n_d) / (n_a + n_d)
    if name == "DPL":
        if n_a == 0:
            raise ValueError("Negative facet set is empty.")
        if n_d == 0:
            raise ValueError("Facet set is empty.")
        return int((positive & ~in_d).sum()) / n_a - int((positive & in_d).sum()) / n_d
    # util.pdfs_aligned_nonzero: the label outcomes both groups have (a zero bin is dropped).
    pa, pd_ = _pdf(positive[~in_d]), _pdf(positive[in_d])
    common = [value for value in (False, True) if pa.get(value) and pd_.get(value)]
    a = np.array([pa[value] for value in common])
    d = np.array([pd_[value] for value in common])
    if len(common) == 0:
        raise ValueError(_NO_COMMON_OUTCOME)
    if name == "KL":
        return float(np.sum(a * np.log(a / d)))
    if name == "JS":
        mid = 1 / 2 * (a + d)
        return float(0.5 * (np.sum(a * np.log(a / mid)) + np.sum(d * np.log(d / mid))))
    order = {"LP": 2, "TVD": 1, "KS": np.inf}[name]
    norm = float(np.linalg.norm(a - d, order))
    return 0.5 * norm if name == "TVD" else norm


def pre_training_bias(
    frame: pd.DataFrame,
    label: str,
    label_threshold: float,
    facet: str,
    facet_threshold: float,
) -> Json:
    """Clarify's pre-training metrics as smclarify's bias_report computes them for a
    continuous label (its positive outcome: above the threshold) and facet (the group d: above
    its threshold), in analysis.json's layout; a metric that cannot be computed is reported
    with its error and a null value, as smclarify does (CDDL always: no group variable)."""
    for column in (label, facet):
        if column not in frame.columns:
            raise ValueError(f"column {column!r} is not in the data ({', '.join(frame.columns)})")
    label_name, positive = _interval_group(_numbers(frame[label], label), label_threshold)
    facet_name, in_d = _interval_group(_numbers(frame[facet], facet), facet_threshold)
    metrics = []
    for name, description in BIAS_METRICS.items():
        try:
            metrics.append(
                {
                    "name": name,
                    "description": description,
                    "value": _pre_training_metric(name, positive, in_d),
                }
            )
        except ValueError as error:
            metrics.append(
                {"name": name, "description": description, "value": None, "error": str(error)}
            )
    return {
        "version": "1.0",
        "pre_training_bias_metrics": {
            "label": label,
            "label_value_or_threshold": label_name,
            "facets": {facet: [{"value_or_threshold": facet_name, "metrics": metrics}]},
        },
    }


def _numbers(values: pd.Series, column: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    if len(numbers) == 0 or np.isnan(numbers).any():
        raise ValueError(f"column {column!r} must hold numbers only, and at least one")
    return numbers


_INTERVAL = re.compile(r"\(([^,()\[\]]+), [^,()\[\]]+\]")


def _group_key(name: str) -> tuple[Any, ...]:
    """How groups are matched between analyses: a continuous facet's group by its thresholds
    (the intervals' lower bounds), since the upper bound is the data's maximum, which moves
    from one dataset to the next; a bare number (an older local baseline's name) is such a
    threshold too; anything else (a categorical group) by its name."""
    lows = _INTERVAL.findall(name)
    if lows and not _INTERVAL.sub("", name).strip(","):
        return tuple(float(low) for low in lows)
    try:
        return (float(name),)
    except ValueError:
        return (name,)


def check_bias(current: Json, baseline: Json) -> list[Violation]:
    """bias_drift_check: a metric farther from 0 than the baseline's value is a violation
    (clarify-model-monitor-bias-drift-violations), in that page's words. Choice: a metric
    without a value on either side (an error, such as CDDL's) is not compared. Raises
    ValueError when a facet's groups match none of the baseline's, rather than pass silently."""
    base_facets = baseline.get("pre_training_bias_metrics", {}).get("facets", {})
    violations: list[Violation] = []
    for facet, groups in current["pre_training_bias_metrics"]["facets"].items():
        base_groups = {_group_key(g["value_or_threshold"]): g for g in base_facets.get(facet, [])}
        matched = [(g, base_groups.get(_group_key(g["value_or_threshold"]))) for g in groups]
        if base_groups and not any(base for _, base in matched):
            raise ValueError(
                f"the bias baseline's groups of facet {facet!r} "
                f"({', '.join(g['value_or_threshold'] for g in base_facets[facet])}) match none "
                f"of the current analysis's ({', '.join(g['value_or_threshold'] for g in groups)})"
            )
        for group, base in matched:
            if base is None:
                continue
            limits = {m["name"]: m.get("value") for m in base["metrics"]}
            for metric in group["metrics"]:
                value, limit = metric.get("value"), limits.get(metric["name"])
                if not isinstance(value, (int, float)) or not isinstance(limit, (int, float)):
                    continue
                if abs(value) > abs(limit) + TOLERANCE:
                    key = _group_key(group["value_or_threshold"])
                    violations.append(
                        {
                            "facet": facet,
                            # The configured value or threshold, as the page's example shows.
                            "facet_value": ",".join(
                                repr(k) if isinstance(k, float) else str(k) for k in key
                            ),
                            "metric_name": metric["name"],
                            "constraint_check_type": "bias_drift_check",
                            "description": f"Value {value!r} does not meet the constraint "
                            "requirement",
                        }
                    )
    return violations


# --- files ----------------------------------------------------------------------------------


def write_json(path: Path, document: Json) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python analyzer.py data-quality --dataset DIR --output DIR``: a baseline, in a job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("analysis", choices=["data-quality"])
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--no-header", action="store_true")
    args = parser.parse_args(argv)
    statistics = data_statistics(read_csv(args.dataset, header=not args.no_header))
    write_json(args.output / STATISTICS_FILE, statistics)
    write_json(args.output / CONSTRAINTS_FILE, suggest_constraints(statistics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
