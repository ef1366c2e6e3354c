"""Reading JSON reports the jobs write (evaluation, check statistics)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def numeric_leaves(document: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """``{"a": {"b": {"value": 1.0}}}`` → ``("a.b.value", 1.0)``, for metric reports."""
    if isinstance(document, Mapping):
        for key, value in document.items():
            yield from numeric_leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(document, (int, float)) and not isinstance(document, bool):
        yield prefix, float(document)


def prediction_value(prediction: Any) -> float:
    """One prediction of an endpoint's JSON answer: a number, a one-item list (the project's
    inference.py), or the built-in algorithms' ``{"score": ...}`` (SageMaker's XGBoost)."""
    if isinstance(prediction, dict) and "score" in prediction:
        return float(prediction["score"])
    if isinstance(prediction, list) and len(prediction) == 1:
        return float(prediction[0])
    return float(prediction)
