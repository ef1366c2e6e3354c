"""Check a whole definition before its first step runs, as far as it can be known.

Every step type, entrypoint, input mode, execution variable, function and condition
must be one the local executor runs, and every request must satisfy SageMaker's API
model (``validation``) with the values known before the run: parameters and
execution variables. Values that come from other steps are checked when they are
resolved, at the step (``request_problems``). A problem names the step and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.containers.algorithms import builtin_algorithm, xgboost_algorithm
from pipelines.containers.profiles import profile_for_image
from pipelines.containers.selection import job_image, unsupported_image_message
from pipelines.core.errors import MlopsError
from pipelines.executor import toolkit
from pipelines.executor.expressions import EvaluationContext, ExpressionError, resolve
from pipelines.executor.jobs import local_python
from pipelines.executor.validation import UNRESOLVED, validate_request

CONDITION_TYPES = frozenset(
    {"Equals", "GreaterThan", "GreaterThanOrEqualTo", "LessThan", "LessThanOrEqualTo"}
    | {"In", "Not", "Or"}
)
FUNCTIONS = frozenset({"Std:Join", "Std:JsonGet"})
# The execution variables the engine provides (Engine._context).
EXECUTION_VARIABLES = frozenset(
    {
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "PipelineName",
        "PipelineArn",
        "StartDateTime",
        "CurrentDateTime",
    }
)
# The SageMaker API operation each step type's request is sent to.
OPERATIONS: dict[str, str] = {
    "Processing": "CreateProcessingJob",
    "Training": "CreateTrainingJob",
    "RegisterModel": "CreateModelPackage",
    "Model": "CreateModel",
    "Transform": "CreateTransformJob",
}
# Request members the service names itself; filled in so "required" checks hold.
_SERVICE_NAMED = {
    "Processing": {"ProcessingJobName": "pipelines-preflight"},
    "Training": {"TrainingJobName": "pipelines-preflight"},
    "Model": {"ModelName": "pipelines-preflight"},
    "Transform": {"TransformJobName": "pipelines-preflight"},
}
_ON_SAGEMAKER = "run this pipeline on SageMaker"
# Why each step type the SDK writes but the local executor cannot run is refused, and what
# to do instead: one sentence each, before anything runs.
REFUSALS = {
    "Lambda": (
        "a LambdaStep invokes an AWS Lambda function, and no Lambda function runs locally: "
        f"{_ON_SAGEMAKER}, or do the function's work in a ProcessingStep."
    ),
    "EMR": (
        "an EMRStep submits a step to an Amazon EMR cluster, and there is no EMR cluster "
        f"locally: {_ON_SAGEMAKER}, or run the Spark work in a ProcessingStep."
    ),
    "Callback": (
        "a CallbackStep waits for an outside system to answer through an SQS queue, and "
        f"nothing outside this machine can answer the local executor: {_ON_SAGEMAKER}, or "
        "do that system's work in a ProcessingStep."
    ),
    "Tuning": (
        "a TuningStep launches a hyperparameter tuning job, which the local executor does "
        f"not run: {_ON_SAGEMAKER}, or train with fixed hyperparameters in a TrainingStep."
    ),
    "AutoML": (
        "an AutoMLStep runs SageMaker Autopilot, which has no local counterpart: "
        f"{_ON_SAGEMAKER}, or train in a TrainingStep."
    ),
}
_STEP_KEYS = {"Name", "Type", "Arguments", "DependsOn", "CacheConfig", "PropertyFiles"} | {
    "RetryPolicies",
    "DisplayName",
    "Description",
}


@dataclass(frozen=True)
class Problem:
    step: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"Step {self.step}: {self.field}: {self.message}"


class PreflightError(MlopsError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(
            "The definition cannot run locally; nothing ran. "
            + "; ".join(str(problem) for problem in problems)
        )


def supported_step_types() -> list[str]:
    from pipelines.executor.checks import CHECK_RUNNERS
    from pipelines.executor.runners import RUNNERS
    from pipelines.executor.transform import TRANSFORM_RUNNERS

    return sorted([*RUNNERS, *CHECK_RUNNERS, *TRANSFORM_RUNNERS, "Condition"])


def check_definition(
    definition: Mapping[str, Any], ctx: EvaluationContext, *, host: bool = False
) -> list[Problem]:
    """Every problem found before the run; empty when the definition can run.

    ``host``: jobs run on the host interpreter, so any image is accepted.
    """
    steps = all_steps(definition.get("Steps", []))
    names = {step.get("Name") for step in steps}
    problems: list[Problem] = []
    for step in steps:
        name = str(step.get("Name"))
        kind = step.get("Type")
        if kind not in supported_step_types():
            reason = REFUSALS.get(str(kind)) or (
                "the local executor runs " + ", ".join(supported_step_types()) + " steps."
            )
            problems.append(Problem(name, "Type", f"Unsupported step type {kind!r}: {reason}"))
            continue
        problems += _expression_problems(name, step, ctx, names)
        if kind == "Condition":
            for index, condition in enumerate(step.get("Arguments", {}).get("Conditions", [])):
                problems += _condition_problems(name, condition, f"Conditions[{index}]")
            continue
        for policy_problem in _retry_policy_problems(step):
            problems.append(Problem(name, "RetryPolicies", policy_problem))
        arguments = partially_resolve(step.get("Arguments", {}), ctx)
        problems += _job_problems(name, kind, arguments, host)
        invalid = request_problems(kind, arguments)
        if invalid:
            problems.append(Problem(name, "Arguments", validation_message(kind, invalid)))
    return problems


def request_problems(step_type: str, arguments: Mapping[str, Any]) -> list[str]:
    """API-model violations of a step's request (``Field: message`` each)."""
    operation = OPERATIONS.get(step_type)
    if operation is None:
        return []
    request = {**_SERVICE_NAMED.get(step_type, {}), **arguments}
    return validate_request(operation, request)


def validation_message(step_type: str, problems: list[str]) -> str:
    """Worded like botocore's ParamValidationError, which SageMaker's errors echo."""
    return (
        f"ValidationException: {OPERATIONS[step_type]}: Parameter validation failed: "
        + "; ".join(problems)
    )


def all_steps(steps: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for step in steps:
        found.append(step)
        arguments = step.get("Arguments") or {}
        if step.get("Type") == "Condition":
            found += all_steps(arguments.get("IfSteps", []) + arguments.get("ElseSteps", []))
    return found


def partially_resolve(value: Any, ctx: EvaluationContext) -> Any:
    """Resolve what is known before the run; step properties become UNRESOLVED."""
    if isinstance(value, Mapping):
        if set(value) == {"Get"}:
            reference = str(value["Get"])
            if reference.startswith("Steps."):
                return UNRESOLVED
            try:
                return resolve(value, ctx)
            except ExpressionError:
                return UNRESOLVED  # reported by _expression_problems
        if set(value) == {"Std:JsonGet"}:
            return UNRESOLVED
        if set(value) == {"Std:Join"}:
            parts = partially_resolve(value["Std:Join"].get("Values", []), ctx)
            if any(part is UNRESOLVED for part in parts):
                return UNRESOLVED
            return resolve(value, ctx)
        return {key: partially_resolve(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [partially_resolve(item, ctx) for item in value]
    return value


def _walk(value: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(value, Mapping):
        yield path, value
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _expression_problems(
    name: str, step: Mapping[str, Any], ctx: EvaluationContext, names: set[Any]
) -> list[Problem]:
    problems = []
    arguments = {
        k: v for k, v in step.get("Arguments", {}).items() if k not in ("IfSteps", "ElseSteps")
    }
    for path, node in _walk(arguments, "Arguments"):
        for key in node:
            if key.startswith("Std:") and key not in FUNCTIONS:
                problems.append(Problem(name, path, f"unsupported function {key!r}."))
        reference = node.get("Get") if set(node) == {"Get"} else None
        if not isinstance(reference, str):
            continue
        namespace, _, rest = reference.partition(".")
        if namespace == "Parameters" and rest not in ctx.parameters:
            problems.append(Problem(name, path, f"unknown parameter {rest!r}."))
        elif namespace == "Execution" and rest not in EXECUTION_VARIABLES:
            problems.append(
                Problem(
                    name,
                    path,
                    f"unsupported execution variable {rest!r} (the local executor provides "
                    + ", ".join(sorted(EXECUTION_VARIABLES))
                    + ").",
                )
            )
        elif namespace == "Steps" and rest.partition(".")[0] not in names:
            problems.append(Problem(name, path, f"refers to unknown step in {reference!r}."))
        elif namespace not in ("Parameters", "Execution", "Steps"):
            problems.append(Problem(name, path, f"unsupported reference {reference!r}."))
    return problems


def _condition_problems(name: str, condition: Any, path: str) -> list[Problem]:
    if not isinstance(condition, Mapping):
        return [Problem(name, path, "a condition must be an object.")]
    kind = condition.get("Type")
    if kind not in CONDITION_TYPES:
        return [Problem(name, path, f"unsupported condition type {kind!r}.")]
    if kind == "Not":
        return _condition_problems(name, condition.get("Condition"), f"{path}.Condition")
    if kind == "Or":
        problems = []
        for index, inner in enumerate(condition.get("Conditions", [])):
            problems += _condition_problems(name, inner, f"{path}.Conditions[{index}]")
        return problems
    return []


def _retry_policy_problems(step: Mapping[str, Any]) -> list[str]:
    from pipelines.executor.retries import policy_problems

    return policy_problems(step.get("RetryPolicies") or [])


def _job_problems(name: str, kind: str, arguments: Mapping[str, Any], host: bool) -> list[Problem]:
    problems: list[Problem] = []
    image = job_image(kind, arguments)
    image_field = (
        "AppSpecification.ImageUri"
        if kind == "Processing"
        else ("AlgorithmSpecification.TrainingImage")
    )
    if kind in ("Processing", "Training"):
        if image is UNRESOLVED or not isinstance(image, str):
            problems.append(Problem(name, image_field, "must be known before the run."))
        elif profile_for_image(image) is None and not host:
            problems.append(Problem(name, image_field, unsupported_image_message(image)))
    if kind == "Processing":
        entrypoint = list(arguments.get("AppSpecification", {}).get("ContainerEntrypoint") or [])
        if (
            not entrypoint
            or not isinstance(entrypoint[0], str)
            or local_python(entrypoint[0]) is None
        ):
            problems.append(
                Problem(
                    name,
                    "AppSpecification.ContainerEntrypoint",
                    "the local executor runs Python entrypoints; got "
                    f"{json.dumps(entrypoint[:2])}.",
                )
            )
        for index, item in enumerate(arguments.get("ProcessingInputs", [])):
            field = f"ProcessingInputs[{index}]"
            s3_input = item.get("S3Input")
            if s3_input is None:
                problems.append(Problem(name, field, "only S3 inputs run locally."))
                continue
            problems += _s3_input_problems(name, field + ".S3Input", s3_input, "S3InputMode")
    if kind == "Transform":
        from pipelines.executor.transform import request_problems as transform_problems

        problems += [Problem(name, f, message) for f, message in transform_problems(arguments)]
    if kind == "Training":
        algorithm = arguments.get("AlgorithmSpecification", {})
        if algorithm.get("TrainingInputMode", "File") != "File":
            problems.append(
                Problem(
                    name, "AlgorithmSpecification.TrainingInputMode", "only File mode runs locally."
                )
            )
        hyperparameters = arguments.get("HyperParameters") or {}
        if isinstance(image, str) and builtin_algorithm(image, hyperparameters):
            problems += _algorithm_problems(name, arguments)
        for required in ("sagemaker_program", "sagemaker_submit_directory"):
            if required not in hyperparameters and not (
                isinstance(image, str) and builtin_algorithm(image, hyperparameters)
            ):
                problems.append(
                    Problem(
                        name,
                        f"HyperParameters.{required}",
                        "missing: the local executor runs script-mode training jobs (and the "
                        "built-in algorithm of the XGBoost images).",
                    )
                )
        for index, channel in enumerate(arguments.get("InputDataConfig", [])):
            field = f"InputDataConfig[{index}]"
            source = channel.get("DataSource", {}).get("S3DataSource")
            if source is None:
                problems.append(Problem(name, field, "only S3 data sources run locally."))
                continue
            problems += _s3_input_problems(name, field + ".DataSource.S3DataSource", source, None)
            if channel.get("CompressionType", "None") != "None":
                problems.append(
                    Problem(name, field + ".CompressionType", "only None runs locally.")
                )
    return problems


def _algorithm_problems(name: str, arguments: Mapping[str, Any]) -> list[Problem]:
    """What the built-in XGBoost algorithm would refuse (or does not run locally), from
    the hyperparameters and channels known before the run."""
    hyperparameters = arguments.get("HyperParameters") or {}
    unresolved = {key for key, value in hyperparameters.items() if value is UNRESOLVED}
    known = {key: str(value) for key, value in hyperparameters.items() if key not in unresolved}
    channels: dict[str, Any] | None = toolkit.input_data_config(arguments)
    if any(value is UNRESOLVED for channel in channels.values() for value in channel.values()):
        channels = None  # checked by the algorithm when the job runs
    try:
        xgboost_algorithm.check_request(known, channels, unresolved)
    except xgboost_algorithm.ToolkitError as error:
        field = (
            f"HyperParameters.{error.hyperparameter}" if error.hyperparameter else "InputDataConfig"
        )
        if isinstance(error, xgboost_algorithm.NotLocal):
            return [Problem(name, field, error.message)]
        return [
            Problem(
                name,
                field,
                f"{type(error).__name__}: {error.message} (the XGBoost algorithm would fail "
                "the job with this).",
            )
        ]
    return []


def _s3_input_problems(
    name: str, field: str, source: Mapping[str, Any], mode_key: str | None
) -> list[Problem]:
    problems = []
    if source.get("S3DataType", "S3Prefix") != "S3Prefix":
        problems.append(
            Problem(
                name,
                field + ".S3DataType",
                f"{source.get('S3DataType')} is not supported locally; only S3Prefix runs.",
            )
        )
    if mode_key and source.get(mode_key, "File") != "File":
        problems.append(Problem(name, f"{field}.{mode_key}", "only File mode runs locally."))
    if source.get("S3CompressionType", "None") != "None":
        problems.append(Problem(name, field + ".S3CompressionType", "only None runs locally."))
    return problems
