"""The pipeline's run-time parameters: one table, each entry's name, type, default and rule.

The builder (``builder.py``) makes the SDK's parameter objects from this table, so the
definition's ``Parameters`` section is the table; ``pipeline-run`` types and checks every
``--param NAME=VALUE`` against it before anything slow starts, and the typed values
travel on unchanged to the backend (:class:`RunParameters`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.core.errors import MlopsError

STRING, INTEGER, FLOAT, BOOLEAN = "String", "Integer", "Float", "Boolean"
# numpy's and scikit-learn's seeds: RandomState accepts 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1
APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")

Rule = Callable[[Any], "str | None"]


class ParameterError(MlopsError):
    """A parameter override is unknown, of the wrong type, or means nothing valid."""


def _between(low: int, high: int | None = None) -> Rule:
    def rule(value: int) -> str | None:
        if value < low:
            return f"must be at least {low}"
        if high is not None and value > high:
            return f"must be at most {high}"
        return None

    return rule


def _r2_threshold(value: float) -> str | None:
    if not math.isfinite(value) or value > 1.0:
        return "must be a finite R² threshold of at most 1 (R² is never above 1)"
    return None


def _finite(value: float) -> str | None:
    return None if math.isfinite(value) else "must be a finite number"


def _s3_uri(value: str) -> str | None:
    # A local path here would be read by the run as a file to upload: local files go
    # through --data, which says what it uploads.
    if value.startswith("s3://") and len(value) > len("s3://") and "/" in value[5:]:
        return None
    return "must be an s3://bucket/key URI; give a local file with --data"


def _one_of(*choices: str) -> Rule:
    return lambda value: None if value in choices else "must be one of " + ", ".join(choices)


@dataclass(frozen=True)
class Parameter:
    """One run-time parameter. ``default`` None: the run supplies it (the input data)."""

    name: str
    type: str
    default: Any
    help: str
    rule: Rule | None = None

    def convert(self, raw: Any) -> Any:
        """A command-line string (or a value) as this parameter's type."""
        if self.type == STRING:
            return str(raw)
        text = str(raw).strip()
        try:
            if self.type == INTEGER:
                if isinstance(raw, bool):
                    raise ValueError
                return int(text)
            if self.type == FLOAT:
                return float(text)
            if self.type == BOOLEAN:
                if text.lower() not in ("true", "false"):
                    raise ValueError
                return text.lower() == "true"
        except ValueError:
            article = "an" if self.type[0] in "AEIOU" else "a"
            raise ParameterError(
                f"Parameter {self.name} is {article} {self.type}; got {raw!r}."
            ) from None
        raise ParameterError(f"Parameter {self.name} has an unsupported type {self.type!r}.")

    def problem(self, value: Any) -> str | None:
        return self.rule(value) if self.rule is not None else None


def _parameter(name: str, type_: str, default: Any, help_: str, rule: Rule | None = None):
    return Parameter(name, type_, default, help_, rule)


# The table. Order is the definition's; the SDK writes each as {Name, Type, DefaultValue}.
PARAMETERS: tuple[Parameter, ...] = (
    _parameter("InputDataUrl", STRING, None, "the input CSV (pipeline-run stages it)", _s3_uri),
    _parameter("TargetColumn", STRING, "medv", "the column to predict"),
    _parameter("FeatureColumns", STRING, "", "comma-separated features; empty: all but the target"),
    _parameter("ProcessingInstanceType", STRING, "ml.m5.large", "processing and check jobs"),
    _parameter("ProcessingInstanceCount", INTEGER, 1, "preprocessing instances", _between(1)),
    # scikit-learn trains on one instance: the SDK refuses an instance count for it.
    _parameter("TrainingInstanceType", STRING, "ml.m5.large", "the training job"),
    _parameter("NEstimators", INTEGER, 100, "trees in the forest", _between(1)),
    # 0: grow trees until their leaves are pure (scikit-learn's max_depth=None).
    _parameter("MaxDepth", INTEGER, 0, "tree depth; 0: unlimited", _between(0)),
    _parameter(
        "RandomState", INTEGER, 42, "the split's and the forest's seed", _between(0, MAX_SEED)
    ),
    _parameter("MinTestR2", FLOAT, 0.7, "the quality gate's minimum test R²", _r2_threshold),
    _parameter(
        "ModelApprovalStatus",
        STRING,
        "PendingManualApproval",
        "the registered version's status",
        _one_of(*APPROVAL_STATUSES),
    ),
    # Set by pipeline-run: which code a registered model came from, in the registry.
    _parameter("GitCommit", STRING, "unknown", "the commit the run's code came from"),
    # The data-bias check: rows whose facet is above its threshold form the sensitive group;
    # the positive outcome is a target above the label threshold (empty: the train median).
    _parameter("BiasFacetColumn", STRING, "chas", "the data-bias check's facet column"),
    _parameter("BiasFacetThreshold", FLOAT, 0.5, "facet values above it: the group", _finite),
    _parameter("BiasLabelThreshold", STRING, "", "targets above it are positive; empty: median"),
    # The check steps' switches, as the SDK names them: skip a check, or accept the newly
    # calculated baseline (an intended shift) instead of the approved version's.
    _parameter("SkipDataQualityCheck", BOOLEAN, False, "skip the data-quality check"),
    _parameter("RegisterNewDataQualityBaseline", BOOLEAN, False, "accept a new data baseline"),
    _parameter("SkipDataBiasCheck", BOOLEAN, False, "skip the data-bias check"),
    _parameter("RegisterNewDataBiasBaseline", BOOLEAN, False, "accept a new bias baseline"),
    _parameter("SkipModelQualityCheck", BOOLEAN, False, "skip the model-quality check"),
    _parameter("RegisterNewModelQualityBaseline", BOOLEAN, False, "accept a new model baseline"),
)
BY_NAME: dict[str, Parameter] = {p.name: p for p in PARAMETERS}
# Each check step's (skip, register-new-baseline) switches. On a model package group's
# first run there is no baseline to check against, and SageMaker then needs both true.
CHECK_SWITCHES: tuple[tuple[str, str], ...] = (
    ("SkipDataQualityCheck", "RegisterNewDataQualityBaseline"),
    ("SkipDataBiasCheck", "RegisterNewDataBiasBaseline"),
    ("SkipModelQualityCheck", "RegisterNewModelQualityBaseline"),
)


class Param:
    """The parameter names the code refers to, spelled from the table's entries."""

    INPUT_DATA = "InputDataUrl"
    TARGET_COLUMN = "TargetColumn"
    GIT_COMMIT = "GitCommit"
    MODEL_APPROVAL_STATUS = "ModelApprovalStatus"


class RunParameters(dict[str, Any]):
    """Typed parameter values for one run: what the user set, plus what the run sets
    (its input data, its commit). Values are typed once, here, and passed on as they are."""

    def set(self, name: str, raw: Any) -> None:
        """Type and check one value against the table."""
        spec = _spec(name)
        value = spec.convert(raw)
        if (problem := spec.problem(value)) is not None:
            raise ParameterError(f"Invalid parameter value: {name}={value!r} {problem}.")
        self[name] = value

    def with_defaults(self) -> dict[str, Any]:
        """Every parameter's value: the set ones, else the table's default."""
        return {p.name: self.get(p.name, p.default) for p in PARAMETERS}


def typed_defaults(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A pipeline entry's parameter defaults (its dataset settings), typed and checked
    against the table like ``--param`` values; ``where`` names the entry in errors."""
    typed = RunParameters()
    problems = []
    for name, raw in values.items():
        if name == Param.INPUT_DATA:
            problems.append(f"{name} is the run's input: give it as the entry's data.")
            continue
        try:
            typed.set(name, raw)
        except ParameterError as error:
            problems.append(str(error))
    if problems:
        raise ParameterError(f"{where}: " + " ".join(problems))
    return dict(typed)


def _spec(name: str) -> Parameter:
    if name not in BY_NAME:
        raise ParameterError(
            f"Unknown parameter {name}. The pipeline accepts: "
            + ", ".join(f"{p.name} ({p.type})" for p in PARAMETERS)
            + "."
        )
    return BY_NAME[name]


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """``["NEstimators=200", "TargetColumn=target"]`` → a dict; rejects malformed items."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"Parameter overrides look like NAME=VALUE; got {pair!r}.")
        result[name.strip()] = value
    return result


def check_arguments(pairs: list[str], data: str | None) -> RunParameters:
    """``--param`` values typed and checked, every problem named at once, before any work."""
    assignments = parse_assignments(pairs)
    if data is not None and Param.INPUT_DATA in assignments:
        raise ParameterError(
            f"Give the input either as --data or as --param {Param.INPUT_DATA}, not both."
        )
    values = RunParameters()
    problems = []
    for name, raw in assignments.items():
        _spec(name)  # an unknown name lists what the pipeline accepts
        try:
            values.set(name, raw)
        except ParameterError as error:
            problems.append(str(error))
    if problems:
        raise ParameterError(" ".join(problems))
    return values


def resolve_parameters(
    definition: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Any definition's parameters typed from its own ``Parameters`` section: the override
    when given, else the default (for definitions this table does not describe, e.g. the
    executor's tests and a user's own pipelines)."""
    specs = {
        p["Name"]: Parameter(p["Name"], p.get("Type", STRING), p.get("DefaultValue"), "")
        for p in definition.get("Parameters", [])
    }
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
