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
* Drift distance: awslabs/deequ ``src/main/scala/com/amazon/deequ/analyzers/Distance.scala``:
  the L∞ distance between two distributions; its robust variant subtracts
  ``1.8 * sqrt((n + m) / (n * m))`` (the two-sample Kolmogorov-Smirnov critical value).
* Model quality: "Model quality metrics" (regression: mae, mse, rmse, r2, each with
  ``value`` and ``standard_deviation``), https://docs.aws.amazon.com/sagemaker/latest/dg/
  model-monitor-model-quality-metrics.html; constraints ``regression_constraints`` with
  ``threshold`` and ``comparison_operator``.
* Bias: "Measure pre-training bias", https://docs.aws.amazon.com/sagemaker/latest/dg/
  clarify-measure-data-bias.html (CI, DPL, KL, JS, LP, TVD, KS); ``analysis.json``'s
  ``pre_training_bias_metrics``; violations per "Bias drift violations",
  https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-model-monitor-bias-drift-violations.html
  (a metric farther from 0 than the baseline's value is a ``bias_drift_check`` violation).

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
# KLL's documented sketch parameters in Model Monitor's statistics files.
KLL_C = 0.64
KLL_K = 2048
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


def _buckets(numbers: np.ndarray) -> list[Json]:
    low, high = float(numbers.min()), float(numbers.max())
    edges = np.linspace(low, high, BUCKETS + 1)
    if high > low:
        # The last bucket is closed on the right, so the maximum is counted.
        index = np.minimum(((numbers - low) / (high - low) * BUCKETS).astype(int), BUCKETS - 1)
        counts = np.bincount(index, minlength=BUCKETS)
    else:
        counts = np.zeros(BUCKETS, dtype=int)
        counts[0] = len(numbers)
    return [
        {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": int(c)}
        for i, c in enumerate(counts)
    ]


def _sketch(numbers: np.ndarray) -> Json:
    """Choice: a KLL sketch that has seen at most k items holds them all in its first level; for
    more, k evenly spaced order statistics stand in for the compacted levels."""
    ordered = np.sort(numbers)
    if len(ordered) > KLL_K:
        ordered = ordered[np.linspace(0, len(ordered) - 1, KLL_K).astype(int)]
    return {"parameters": {"c": KLL_C, "k": float(KLL_K)}, "data": [ordered.tolist()]}


def numerical_feature_statistics(
    name: str, inferred: str, numbers: np.ndarray, num_missing: int
) -> Json:
    """A numerical feature's statistics from its present values as numbers (for callers, such
    as endpoint monitoring, that parse large data into numbers themselves)."""
    return {
        "name": name,
        "inferred_type": inferred,
        "numerical_statistics": {
            "common": {"num_present": len(numbers), "num_missing": int(num_missing)},
            "mean": float(numbers.mean()),
            "sum": float(numbers.sum()),
            # Population standard deviation, as Spark's stddev_pop in Deequ.
            "std_dev": float(numbers.std()),
            "min": float(numbers.min()),
            "max": float(numbers.max()),
            "distribution": {"kll": {"buckets": _buckets(numbers), "sketch": _sketch(numbers)}},
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


def _cdf(buckets: Sequence[Json], x: float) -> float:
    """The distribution function of a bucketed distribution at x, uniform inside each bucket."""
    total = sum(b["count"] for b in buckets) or 1
    below = 0.0
    for b in buckets:
        low, high, count = b["lower_bound"], b["upper_bound"], b["count"]
        if x >= high:
            below += count
        elif x > low:
            below += count * (x - low) / (high - low)
    return below / total


def linf_distance(a: Sequence[Json], b: Sequence[Json]) -> float:
    """Deequ's L∞ distance: the largest gap between the two distribution functions, evaluated at
    every bucket edge of either distribution (where the piecewise-linear gap peaks)."""
    edges = sorted({e for bs in (a, b) for x in bs for e in (x["lower_bound"], x["upper_bound"])})
    return max((abs(_cdf(a, x) - _cdf(b, x)) for x in edges), default=0.0)


def categorical_distance(a: Sequence[Json], b: Sequence[Json]) -> float:
    """Deequ's categorical L∞ distance: the largest gap between two value frequencies."""
    total_a = sum(x["count"] for x in a) or 1
    total_b = sum(x["count"] for x in b) or 1
    pa = {x["value"]: x["count"] / total_a for x in a}
    pb = {x["value"]: x["count"] / total_b for x in b}
    return max((abs(pa.get(v, 0.0) - pb.get(v, 0.0)) for v in {*pa, *pb}), default=0.0)


def drift(distance: float, n: int, m: int, method: str) -> float:
    """Simple: the distance itself; Robust: less the sampling noise two samples of n and m
    items can show (Deequ's ``linfRobust``), never below 0."""
    if method == "Simple" or n == 0 or m == 0:
        return distance
    return max(0.0, distance - ROBUST_FACTOR * math.sqrt((n + m) / (n * m)))


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
    baseline_items = int(baseline_statistics.get("dataset", {}).get("item_count", 0))
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
            violation = _drift_violation(
                name, base, feature, baseline_items, items, method, threshold, categorical_threshold
            )
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
    name: str,
    base: Json,
    current: Json,
    n: int,
    m: int,
    method: str,
    threshold: float,
    categorical_threshold: float,
) -> Violation | None:
    if "numerical_statistics" in base and "numerical_statistics" in current:
        distance = linf_distance(
            base["numerical_statistics"]["distribution"]["kll"]["buckets"],
            current["numerical_statistics"]["distribution"]["kll"]["buckets"],
        )
        limit = threshold
    elif "string_statistics" in base and "string_statistics" in current:
        distance = categorical_distance(
            base["string_statistics"]["distribution"]["categorical"]["buckets"],
            current["string_statistics"]["distribution"]["categorical"]["buckets"],
        )
        limit = categorical_threshold
    else:
        return None
    value = drift(distance, n, m, method)
    if value <= limit + TOLERANCE:
        return None
    return _violation(
        name,
        "baseline_drift_check",
        f"Baseline drift distance: {value:.4g} exceeds threshold: {limit:.4g} "
        f"({method} L-infinity distance between the baseline's and the current distribution "
        f"of {name!r}).",
    )


def violations_document(violations: list[Violation]) -> Json:
    return {"violations": violations}


# --- model quality --------------------------------------------------------------------------

REGRESSION_METRICS = ("mae", "mse", "rmse", "r2")
# Choice: the bootstrap resamples behind each metric's standard_deviation.
BOOTSTRAP_SAMPLES = 100


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
    rng = np.random.RandomState(0)
    samples = [
        _regression_values(y[i], p[i]) for i in rng.randint(0, len(y), (BOOTSTRAP_SAMPLES, len(y)))
    ]
    return {
        "version": 0.0,
        "dataset": {"item_count": len(y)},
        "regression_metrics": {
            name: {
                "value": values[name],
                "standard_deviation": float(np.std([s[name] for s in samples], ddof=1)),
            }
            for name in REGRESSION_METRICS
        },
    }


def suggest_regression_constraints(statistics: Json) -> Json:
    """Choice: Model Monitor suggests the baseline's value as each threshold; a champion check
    should not reject a model that is worse only within the test set's sampling noise, so the
    threshold is one bootstrap standard deviation away from the baseline's value."""
    constraints = {}
    for name, entry in statistics["regression_metrics"].items():
        higher_is_better = name == "r2"
        spread = entry["standard_deviation"]
        constraints[name] = {
            "threshold": entry["value"] - spread if higher_is_better else entry["value"] + spread,
            "comparison_operator": "LessThanThreshold"
            if higher_is_better
            else "GreaterThanThreshold",
        }
    return {"version": 0.0, "regression_constraints": constraints}


def check_model_quality(
    current: Json, constraints: Json, baseline: Json | None = None
) -> list[Violation]:
    """A metric on the wrong side of its threshold is a violation; the message names the
    metric, its value, the threshold and (given the baseline's statistics) the baseline's value."""
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
            against = f" (baseline {base:.6g})" if base is not None else ""
            violations.append(
                {
                    "constraint_check_type": operator,
                    "metric_name": name,
                    "description": f"Metric {name} with {value:.6g} was {operator} "
                    f"'{threshold:.6g}'{against}.",
                }
            )
    return violations


# --- bias -----------------------------------------------------------------------------------

BIAS_METRICS = {
    "CI": "Class Imbalance (CI)",
    "DPL": "Difference in Positive Proportions in Labels (DPL)",
    "KL": "Kullback-Liebler Divergence (KL)",
    "JS": "Jensen-Shannon Divergence (JS)",
    "LP": "L-p Norm (LP)",
    "TVD": "Total Variation Distance (TVD)",
    "KS": "Kolmogorov-Smirnov Distance (KS)",
}
# Choice: probabilities are floored here so KL stays finite when a group lacks an outcome.
_EPSILON = 1e-12


def _groups(values: pd.Series, threshold: float) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64) > threshold


def pre_training_bias(
    frame: pd.DataFrame,
    label: str,
    label_threshold: float,
    facet: str,
    facet_threshold: float,
) -> Json:
    """Clarify's pre-training metrics for a binary label (label > threshold is the positive
    outcome) and a facet whose values above its threshold form the group d."""
    for column in (label, facet):
        if column not in frame.columns:
            raise ValueError(f"column {column!r} is not in the data ({', '.join(frame.columns)})")
    positive = _groups(frame[label], label_threshold)
    in_d = _groups(frame[facet], facet_threshold)
    n_d, n_a = int(in_d.sum()), int((~in_d).sum())
    q_a = float(positive[~in_d].mean()) if n_a else 0.0
    q_d = float(positive[in_d].mean()) if n_d else 0.0
    pa = np.clip(np.array([1 - q_a, q_a]), _EPSILON, 1)
    pd_ = np.clip(np.array([1 - q_d, q_d]), _EPSILON, 1)
    mid = (pa + pd_) / 2
    values = {
        "CI": (n_a - n_d) / max(n_a + n_d, 1),
        "DPL": q_a - q_d,
        "KL": float(np.sum(pa * np.log(pa / pd_))),
        "JS": float(0.5 * (np.sum(pa * np.log(pa / mid)) + np.sum(pd_ * np.log(pd_ / mid)))),
        "LP": float(np.sqrt(np.sum((pa - pd_) ** 2))),
        "TVD": float(0.5 * np.sum(np.abs(pa - pd_))),
        "KS": float(np.max(np.abs(pa - pd_))),
    }
    return {
        "version": "1.0",
        "pre_training_bias_metrics": {
            "label": label,
            "label_value_or_threshold": f"{label_threshold:g}",
            "facets": {
                facet: [
                    {
                        "value_or_threshold": f"{facet_threshold:g}",
                        "metrics": [
                            {"name": n, "description": d, "value": float(values[n])}
                            for n, d in BIAS_METRICS.items()
                        ],
                    }
                ]
            },
        },
    }


def check_bias(current: Json, baseline: Json) -> list[Violation]:
    """A metric farther from 0 than the baseline's value is a bias_drift_check violation."""
    base_facets = baseline.get("pre_training_bias_metrics", {}).get("facets", {})
    violations: list[Violation] = []
    for facet, groups in current["pre_training_bias_metrics"]["facets"].items():
        base_groups = {g["value_or_threshold"]: g for g in base_facets.get(facet, [])}
        for group in groups:
            base = base_groups.get(group["value_or_threshold"])
            if base is None:
                continue
            limits = {m["name"]: m["value"] for m in base["metrics"]}
            for metric in group["metrics"]:
                limit = limits.get(metric["name"])
                if limit is not None and abs(metric["value"]) > abs(limit) + TOLERANCE:
                    violations.append(
                        {
                            "facet": facet,
                            "facet_value": group["value_or_threshold"],
                            "metric_name": metric["name"],
                            "constraint_check_type": "bias_drift_check",
                            "description": f"Value {metric['value']:.6g} does not meet the "
                            f"constraint requirement (baseline {limit:.6g}).",
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
