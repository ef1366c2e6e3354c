"""Validate a request against botocore's SageMaker service model, all of it.

botocore's own validator checks types, required members and minimums, but skips
enums, patterns, maximum lengths and maximum values, so e.g. an instance type
outside the API's enum or a 5,000-character description reach the service. SageMaker
rejects those with a ValidationException; this walker rejects them first.

Values that cannot be known yet (a step property before its step has run) are
passed as ``UNRESOLVED`` and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import botocore.session
from botocore.model import Shape


class _Unresolved:
    def __repr__(self) -> str:
        return "<resolved at run time>"


UNRESOLVED: Any = _Unresolved()


@cache
def _service_model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker")


def preload_service_model() -> None:
    """Load (and cache) the SageMaker API model ahead of the first validation."""
    _service_model().operation_model("CreateTrainingJob").input_shape  # noqa: B018


@cache
def _pattern(text: str) -> re.Pattern[str] | None:
    try:
        # DOTALL: a script passed inline (``python3 -c "..."``) spans lines, and the
        # service's ``.*`` patterns accept it.
        return re.compile(text, re.DOTALL)
    except re.error:
        return None  # a Java-only construct (\p{...}); the service checks those itself


def validate_request(operation: str, request: Mapping[str, Any]) -> list[str]:
    """Every violation of ``operation``'s input shape, as ``Field.Path: message``."""
    shape = _service_model().operation_model(operation).input_shape
    return _check(shape, request, "")


def _check(shape: Shape, value: Any, path: str) -> list[str]:
    if value is UNRESOLVED:
        return []
    where = path or "request"
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        problems = [
            f"{_join(path, name)}: required, missing"
            for name in shape.required_members
            if name not in value
        ]
        for name, item in value.items():
            member = shape.members.get(name)
            if member is None:
                problems.append(f"{_join(path, name)}: unknown field")
            else:
                problems += _check(member, item, _join(path, name))
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        problems = _bounds(shape, len(value), where, "items")
        for index, item in enumerate(value):
            problems += _check(shape.member, item, f"{where}[{index}]")
        return problems
    if kind == "map":
        if not isinstance(value, Mapping):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        problems = _bounds(shape, len(value), where, "entries")
        for key, item in value.items():
            problems += _check(shape.key, key, f"{where} key {key!r}")
            problems += _check(shape.value, item, f"{where}[{key!r}]")
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {type(value).__name__} {value!r}"]
        problems = _bounds(shape, len(value), where, "characters")
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            shown = ", ".join(enum[:8]) + (", ..." if len(enum) > 8 else "")
            problems.append(f"{where}: {_short(value)} is not one of {shown}")
        pattern = shape.metadata.get("pattern")
        compiled = _pattern(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            problems.append(f"{where}: {_short(value)} does not match the pattern {pattern}")
        return problems
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: expected an integer, got {_short(value)}"]
        return _bounds(shape, value, where, "")
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: expected a number, got {_short(value)}"]
        return _bounds(shape, value, where, "")
    if kind == "boolean" and not isinstance(value, bool):
        return [f"{where}: expected true or false, got {_short(value)}"]
    return []  # timestamps and blobs: botocore converts several forms


def _bounds(shape: Shape, size: float, where: str, unit: str) -> list[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    what = f"{size:g} {unit}".strip()
    if low is not None and size < low:
        return [f"{where}: {what}, below the minimum of {low}"]
    if high is not None and size > high:
        return [f"{where}: {what}, above the maximum of {high}"]
    return []


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"
