"""Run-time parameters: ``--param NAME=VALUE`` checked against the definition's types.

Every override is validated before anything runs: an unknown name or a value of
the wrong type is an error that lists what the pipeline accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.core.errors import MlopsError


class ParameterError(MlopsError):
    """A parameter override is unknown or has the wrong type."""


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: str  # String | Integer | Float | Boolean
    default: Any = None

    def convert(self, raw: Any) -> Any:
        if self.type == "String":
            return str(raw)
        text = str(raw).strip()
        try:
            if self.type == "Integer":
                if isinstance(raw, bool):
                    raise ValueError
                return int(text)
            if self.type == "Float":
                return float(text)
            if self.type == "Boolean":
                lowered = text.lower()
                if lowered not in ("true", "false"):
                    raise ValueError
                return lowered == "true"
        except ValueError:
            raise ParameterError(
                f"Parameter {self.name} is {_article(self.type)} {self.type}; got {raw!r}."
            ) from None
        raise ParameterError(f"Parameter {self.name} has an unsupported type {self.type!r}.")


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def parameter_specs(definition: Mapping[str, Any]) -> dict[str, ParameterSpec]:
    return {
        p["Name"]: ParameterSpec(p["Name"], p.get("Type", "String"), p.get("DefaultValue"))
        for p in definition.get("Parameters", [])
    }


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """``["NEstimators=200", "TargetColumn=target"]`` → a dict; rejects malformed items."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"Parameter overrides look like NAME=VALUE; got {pair!r}.")
        result[name.strip()] = value
    return result


def resolve_parameters(
    definition: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Every parameter's typed value: the override when given, else the default."""
    specs = parameter_specs(definition)
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        raise ParameterError(
            f"Unknown parameter(s) {', '.join(unknown)}. The pipeline accepts: "
            + ", ".join(f"{s.name} ({s.type})" for s in specs.values())
            + "."
        )
    values: dict[str, Any] = {}
    for spec in specs.values():
        if spec.name in overrides:
            values[spec.name] = spec.convert(overrides[spec.name])
        elif spec.default is not None:
            values[spec.name] = spec.convert(spec.default)
        else:
            raise ParameterError(
                f"Parameter {spec.name} has no default: pass --param {spec.name}=..."
            )
    return values
