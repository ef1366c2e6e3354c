"""Evaluate the conditions of a Condition step, as SageMaker does."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from pipelines.executor.expressions import EvaluationContext, ExpressionError, resolve

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Numbers compare as numbers (a JsonGet string "0.84" against a Float parameter);
    anything else compares as it is."""
    left_number, right_number = _number(left), _number(right)
    if left_number is not None and right_number is not None:
        return left_number, right_number
    return left, right


def evaluate_condition(condition: Mapping[str, Any], ctx: EvaluationContext) -> bool:
    kind = condition.get("Type")
    if kind in _COMPARISONS:
        left, right = _comparable(
            resolve(condition["LeftValue"], ctx), resolve(condition["RightValue"], ctx)
        )
        try:
            return _COMPARISONS[kind](left, right)
        except TypeError:
            raise ExpressionError(
                f"Condition {kind} cannot compare {left!r} with {right!r}."
            ) from None
    if kind == "In":
        query = resolve(condition["QueryValue"], ctx)
        values = [resolve(v, ctx) for v in condition["Values"]]
        return any(_comparable(query, v)[0] == _comparable(query, v)[1] for v in values)
    if kind == "Not":
        # ConditionNot.to_request(): {"Type": "Not", "Condition": {...}}
        return not evaluate_condition(condition["Condition"], ctx)
    if kind == "Or":
        return any(evaluate_condition(c, ctx) for c in condition["Conditions"])
    raise ExpressionError(f"Unsupported condition type {kind!r}.")


def evaluate_conditions(conditions: list[Mapping[str, Any]], ctx: EvaluationContext) -> bool:
    """A Condition step's list holds when every condition holds."""
    return all(evaluate_condition(condition, ctx) for condition in conditions)
