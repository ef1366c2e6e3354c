"""Resolve the values of a pipeline definition: Get, Std:Join, Std:JsonGet.

The definition JSON is what SageMaker receives; these functions give its
expressions the meaning SageMaker gives them:

- ``{"Get": "Parameters.X"}``: a typed run-time parameter;
- ``{"Get": "Execution.X"}``: an execution variable (PipelineExecutionId, ...);
- ``{"Get": "Steps.S.<path>"}``: a property of step S, shaped like its
  Describe*Job response, e.g. ``ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri``;
- ``{"Std:Join": {"On": ",", "Values": [...]}}``;
- ``{"Std:JsonGet": {"PropertyFile": {"Get": "Steps.S.PropertyFiles.F"}, "Path": "a.b[0]"}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.core.errors import MlopsError

_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(?:'([^']*)'|\"([^\"]*)\"|(\d+))\]")
_STEP_REFERENCE = re.compile(r"^Steps\.([^.\[]+)")


class ExpressionError(MlopsError):
    """An expression of the definition cannot be resolved."""


@dataclass
class EvaluationContext:
    """Everything an expression can refer to during one execution."""

    parameters: Mapping[str, Any]
    execution: Mapping[str, Any]
    step_properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    property_files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def parse_path(path: str) -> list[str | int]:
    """``A.B['x'].C[0]`` → ``["A", "B", "x", "C", 0]``."""
    tokens: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"Cannot parse property path {path!r} at {path[position:]!r}.")
        name, single, double, index = match.groups()
        if name is not None:
            tokens.append(name)
        elif index is not None:
            tokens.append(int(index))
        else:
            tokens.append(single if single is not None else double)
        position = match.end()
    return tokens


def _index_by_name(items: list[Any], key: str) -> Any:
    """Describe responses hold named lists (Outputs, FinalMetricDataList, ...): index
    them by the element's *Name field, as SageMaker's property references do."""
    for item in items:
        if isinstance(item, Mapping) and any(
            k.endswith("Name") and v == key for k, v in item.items()
        ):
            return item
    raise KeyError(key)


def walk(value: Any, path: str, description: str) -> Any:
    current = value
    for token in parse_path(path):
        try:
            if isinstance(current, list) and isinstance(token, str):
                current = _index_by_name(current, token)
            else:
                current = current[token]
        except (KeyError, IndexError, TypeError):
            raise ExpressionError(
                f"{description} has no {path!r} (nothing at {token!r})."
            ) from None
    return current


def property_value(properties: Mapping[str, Any], path: str, step: str) -> Any:
    return walk(properties, path, f"Step {step!r}")


def json_path_get(document: Any, path: str, where: str) -> Any:
    """Std:JsonGet paths are dotted with [index] parts: ``regression_metrics.r2.value``."""
    return walk(document, path, where)


def resolve(value: Any, ctx: EvaluationContext) -> Any:
    """Resolve every expression inside ``value`` (dicts and lists recursively)."""
    if isinstance(value, Mapping):
        if set(value) == {"Get"}:
            return resolve_get(value["Get"], ctx)
        if set(value) == {"Std:Join"}:
            return resolve_join(value["Std:Join"], ctx)
        if set(value) == {"Std:JsonGet"}:
            return resolve_json_get(value["Std:JsonGet"], ctx)
        return {key: resolve(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, ctx) for item in value]
    return value


def resolve_get(reference: str, ctx: EvaluationContext) -> Any:
    namespace, _, rest = reference.partition(".")
    if namespace == "Parameters":
        if rest not in ctx.parameters:
            raise ExpressionError(f"Unknown parameter {rest!r} in {reference!r}.")
        return ctx.parameters[rest]
    if namespace == "Execution":
        if rest not in ctx.execution:
            raise ExpressionError(f"Unknown execution variable {rest!r}.")
        return ctx.execution[rest]
    if namespace == "Steps":
        step, _, path = rest.partition(".")
        if step not in ctx.step_properties:
            raise ExpressionError(
                f"{reference!r} refers to step {step!r}, which has not run in this execution."
            )
        if path.startswith("PropertyFiles."):
            raise ExpressionError(f"{reference!r}: property files are read with Std:JsonGet.")
        return property_value(ctx.step_properties[step], path, step)
    raise ExpressionError(f"Unsupported reference {reference!r}.")


def to_text(value: Any) -> str:
    """How SageMaker renders a value inside Std:Join and container arguments."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def resolve_join(join: Mapping[str, Any], ctx: EvaluationContext) -> str:
    values = [to_text(resolve(item, ctx)) for item in join.get("Values", [])]
    return str(join.get("On", "")).join(values)


def resolve_json_get(json_get: Mapping[str, Any], ctx: EvaluationContext) -> Any:
    property_file = json_get["PropertyFile"]
    reference = property_file["Get"] if isinstance(property_file, Mapping) else property_file
    match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.([^.]+)", reference)
    if match is None:
        raise ExpressionError(f"Std:JsonGet needs a step property file, got {reference!r}.")
    step, name = match.groups()
    files = ctx.property_files.get(step)
    if files is None or name not in files:
        raise ExpressionError(f"Property file {name!r} of step {step!r} is not available.")
    path = resolve(json_get["Path"], ctx)
    return json_path_get(files[name], str(path), f"Property file {name!r} of step {step!r}")


def referenced_steps(value: Any) -> set[str]:
    """Names of the steps an (unresolved) value refers to through Get expressions."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "Get" and isinstance(item, str):
                match = _STEP_REFERENCE.match(item)
                if match:
                    found.add(match.group(1))
            else:
                found |= referenced_steps(item)
    elif isinstance(value, list):
        for item in value:
            found |= referenced_steps(item)
    return found
