"""What the local backend does before it starts a worker: preflight, then runtimes.

Both happen in the caller's process, so a definition that cannot run, or a machine
without the profile's Python, fails the command before anything runs or registers,
and the one-off environment build shows its progress in the caller's terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.config.settings import Settings
from pipelines.containers.environments import EnvironmentCache, JobRuntime
from pipelines.containers.selection import job_image, prepare_runtimes
from pipelines.core.records import Execution
from pipelines.executor.expressions import EvaluationContext
from pipelines.executor.preflight import Problem, all_steps, check_definition, partially_resolve


@dataclass(frozen=True)
class Startup:
    problems: list[Problem]
    runtimes: dict[str, JobRuntime]


def with_defaults(definition_text: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The execution's parameters: the definition's defaults, then the given values,
    as SageMaker fills in a parameter the start request leaves out."""
    try:
        declared = json.loads(definition_text).get("Parameters", [])
    except (json.JSONDecodeError, AttributeError):
        return dict(parameters)
    merged = {p["Name"]: p["DefaultValue"] for p in declared if "DefaultValue" in p}
    merged.update(parameters)
    return merged


def preflight_context(definition: Mapping[str, Any], execution: Execution) -> EvaluationContext:
    """The values known before the first step: parameters and execution variables."""
    parameters = dict(execution.parameters)
    created = datetime.fromtimestamp(execution.created_at, UTC).isoformat()
    return EvaluationContext(
        parameters=parameters,
        execution={
            "PipelineExecutionId": execution.execution_id,
            "PipelineExecutionArn": execution.execution_arn,
            "PipelineName": execution.pipeline_name,
            "PipelineArn": execution.execution_arn.rsplit("/execution/", 1)[0],
            "StartDateTime": created,
            "CurrentDateTime": created,
        },
    )


def job_images(definition: Mapping[str, Any], ctx: EvaluationContext) -> set[str]:
    images = set()
    for step in all_steps(definition.get("Steps", [])):
        image = job_image(str(step.get("Type")), partially_resolve(step.get("Arguments", {}), ctx))
        if isinstance(image, str):
            images.add(image)
    return images


def prepare(execution: Execution, settings: Settings, notify: Callable[[str], None]) -> Startup:
    """Preflight the execution's definition; when it passes, the runtime of every job
    image (built on first use). Raises NoInterpreterError when a profile's Python is
    missing."""
    definition = json.loads(execution.definition)
    ctx = preflight_context(definition, execution)
    problems = check_definition(definition, ctx, host=settings.runtime_host)
    if problems:
        return Startup(problems, {})
    cache = (
        None if settings.runtime_host else EnvironmentCache(settings.runtime_cache, progress=notify)
    )
    runtimes = prepare_runtimes(
        job_images(definition, ctx), cache, host=settings.runtime_host, notify=notify
    )
    return Startup([], runtimes)
