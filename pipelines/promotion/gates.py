"""The promotion gates, each a plain function of what it measures.

- health: the source stage's endpoint answers its health check;
- accuracy: the held-out test split, predicted through the endpoint, scores what the
  version's registered evaluation says (RMSE and R², within a tolerance);
- load: a bounded load of single-row requests from concurrent clients: p99 latency under
  the SLO and not one failed request;
- monitoring: no open violation in the latest monitoring run of the version (skipped
  while monitoring has not checked it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.config.promotion_settings import PromotionSettings
from pipelines.core.errors import MlopsError
from pipelines.serving.predict import Invoke, Predictions, predict

if TYPE_CHECKING:
    import pandas as pd

HEALTH, ACCURACY, LOAD, MONITORING = "health", "accuracy", "load", "monitoring"


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def health_gate(ping: Callable[[], tuple[bool, str]]) -> GateResult:
    healthy, detail = ping()
    return GateResult(HEALTH, healthy, detail, {"healthy": healthy})


def accuracy_gate(
    rows: pd.DataFrame,
    actual: list[float],
    invoke: Invoke,
    registered: dict[str, float],
    tolerance: float,
) -> GateResult:
    missing = [name for name in ("rmse", "r2") if name not in registered]
    if missing:
        return GateResult(
            ACCURACY, False, f"the registered evaluation has no {', '.join(missing)}", {}
        )
    try:
        values = predict(rows, invoke)
    except MlopsError as error:  # the model failed on the test split (a 500): a failed gate
        return GateResult(
            ACCURACY, False, f"the endpoint could not predict the test split: {error}"
        )
    scored = Predictions(values, actual, "", list(rows.columns))
    served = {"rmse": scored.rmse, "r2": scored.r2}
    figures: dict[str, Any] = {"rows": len(actual), "tolerance": tolerance}
    worst = []
    for name, value in served.items():
        if value is None:
            return GateResult(ACCURACY, False, f"cannot compute {name} on the test split", figures)
        figures[f"{name}_served"] = round(value, 6)
        figures[f"{name}_registered"] = round(registered[name], 6)
        if abs(value - registered[name]) > tolerance:
            worst.append(f"{name} {value:.4f} vs registered {registered[name]:.4f}")
    passed = not worst
    summary = (
        f"{len(actual)} test rows: RMSE {served['rmse']:.4f} (registered "
        f"{registered['rmse']:.4f}), R² {served['r2']:.4f} (registered {registered['r2']:.4f}), "
        f"tolerance {tolerance:g}"
        if passed
        else f"differs from the registered evaluation beyond {tolerance:g}: " + "; ".join(worst)
    )
    return GateResult(ACCURACY, passed, summary, figures)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` 0.99 for p99) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def load_gate(
    rows: pd.DataFrame, invoke: Invoke, requests: int, clients: int, slo_ms: float
) -> GateResult:
    bodies = [
        rows.iloc[i % len(rows) : i % len(rows) + 1].to_csv(header=False, index=False).encode()
        for i in range(requests)
    ]

    def one(body: bytes) -> tuple[float, str | None]:
        start = time.perf_counter()
        try:
            invoke(body)
        except MlopsError as error:
            return (time.perf_counter() - start) * 1000, str(error)
        return (time.perf_counter() - start) * 1000, None

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        outcomes = list(pool.map(one, bodies))
    seconds = time.perf_counter() - started
    latencies = [ms for ms, _ in outcomes]
    errors = [error for _, error in outcomes if error]
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    figures = {
        "requests": requests,
        "clients": clients,
        "errors": len(errors),
        "error_rate": round(len(errors) / requests, 6),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "slo_p99_ms": slo_ms,
        "requests_per_second": round(requests / seconds, 1),
    }
    problems = []
    if p99 > slo_ms:
        problems.append(f"p99 {p99:.1f} ms is over the SLO of {slo_ms:g} ms")
    if errors:
        problems.append(f"{len(errors)} of {requests} requests failed (first: {errors[0]})")
    summary = (
        f"{requests} requests from {clients} clients: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"(SLO {slo_ms:g} ms), {len(errors)} errors"
    )
    return GateResult(LOAD, not problems, "; ".join(problems) or summary, figures)


def monitoring_gate(open_violations: int | None) -> GateResult:
    if open_violations is None:
        return GateResult(
            MONITORING, True, "monitoring has not checked this version yet", {}, skipped=True
        )
    return GateResult(
        MONITORING,
        open_violations == 0,
        f"{open_violations} open monitoring violation(s)",
        {"open_violations": open_violations},
    )


def run_gates(
    ping: Callable[[], tuple[bool, str]],
    invoke: Invoke,
    test_data: Callable[[], tuple[pd.DataFrame, list[float]]],
    registered: dict[str, float],
    settings: PromotionSettings,
    open_violations: int | None = None,
) -> list[GateResult]:
    """All gates in order; after a failed health check the others are not run."""
    health = health_gate(ping)
    if not health.passed:
        return [health] + [
            GateResult(name, False, "not run: the endpoint failed its health check", {})
            for name in (ACCURACY, LOAD, MONITORING)
        ]
    rows, actual = test_data()
    return [
        health,
        accuracy_gate(rows, actual, invoke, registered, settings.metric_tolerance),
        load_gate(rows, invoke, settings.load_requests, settings.load_clients, settings.p99_slo_ms),
        monitoring_gate(open_violations),
    ]


def failed(results: list[GateResult]) -> list[GateResult]:
    return [result for result in results if not result.passed]
