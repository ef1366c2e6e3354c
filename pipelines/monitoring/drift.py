"""A data-quality monitoring execution: the current statistics against the version's baseline.

The checks are ``training/analyzer.py``'s ``check_data_quality``, exactly what the pipeline's
CheckDataQuality step runs; this module adds what a person reads: per feature the baseline's
and the current mean, the raw distance (Deequ's L-infinity distance between the two KLL
sketches) and the one the check compares (robust: the raw distance less the sampling noise of
the two sample sizes, never below 0, "clamped" when the noise covers it all; or simple, as
the constraints say), its threshold, and the verdict.

The baseline is the training split's, target column first; the current dataset puts each
captured prediction in the target's place, as Model Monitor merges a capture with its output
(``pipelines.monitoring.execution.analyze_window``), so the two schemas match as it requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    baseline_mean: float | None
    current_mean: float | None
    distance: float | None
    threshold: float
    violations: tuple[str, ...]  # constraint_check_type of each violation on this feature
    baseline_buckets: tuple[Json, ...] = ()
    current_buckets: tuple[Json, ...] = ()
    raw_distance: float | None = None  # before the robust correction

    @property
    def clamped(self) -> bool:
        """The robust correction took a non-zero raw distance down to 0."""
        return self.distance == 0 and bool(self.raw_distance)

    @property
    def verdict(self) -> str:
        return ", ".join(self.violations) if self.violations else "ok"

    def to_dict(self) -> Json:
        return {
            "name": self.name,
            "baseline_mean": self.baseline_mean,
            "current_mean": self.current_mean,
            "distance": self.distance,
            "threshold": self.threshold,
            "violations": list(self.violations),
            "baseline_buckets": list(self.baseline_buckets),
            "current_buckets": list(self.current_buckets),
            "raw_distance": self.raw_distance,
        }


def _numeric(feature: Json | None) -> Json | None:
    return (feature or {}).get("numerical_statistics")


def feature_drifts(
    analyzer: ModuleType,
    current: Json,
    baseline_statistics: Json,
    baseline_constraints: Json,
    violations: list[Json],
) -> list[FeatureDrift]:
    distribution = baseline_constraints.get("monitoring_config", {}).get(
        "distribution_constraints", {}
    )
    threshold = float(distribution.get("comparison_threshold", analyzer.COMPARISON_THRESHOLD))
    method = distribution.get("comparison_method", "Robust")
    base = {f["name"]: f for f in baseline_statistics.get("features", [])}
    now = {f["name"]: f for f in current["features"]}
    names = [f["name"] for f in baseline_constraints.get("features", [])]
    names += [name for name in now if name not in names]
    found = []
    for name in names:
        b, c = _numeric(base.get(name)), _numeric(now.get(name))
        distance = raw = None
        if b and c:
            raw, n, m = analyzer.numerical_distance(b, c)
            distance = analyzer.drift(raw, n, m, method)
        found.append(
            FeatureDrift(
                name=name,
                baseline_mean=b["mean"] if b else None,
                current_mean=c["mean"] if c else None,
                distance=distance,
                threshold=threshold,
                violations=tuple(
                    v["constraint_check_type"] for v in violations if v.get("feature_name") == name
                ),
                baseline_buckets=tuple(b["distribution"]["kll"]["buckets"]) if b else (),
                current_buckets=tuple(c["distribution"]["kll"]["buckets"]) if c else (),
                raw_distance=raw,
            )
        )
    return found


def check(
    analyzer: ModuleType, current: Json, baseline_statistics: Json, baseline_constraints: Json
) -> tuple[list[Json], list[FeatureDrift]]:
    violations = analyzer.check_data_quality(current, baseline_statistics, baseline_constraints)
    drifts = feature_drifts(
        analyzer, current, baseline_statistics, baseline_constraints, violations
    )
    return violations, drifts
