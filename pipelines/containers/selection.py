"""Choose the runtime of every job a definition runs, before the run starts.

A job's image (``AppSpecification.ImageUri`` of a processing job,
``AlgorithmSpecification.TrainingImage`` of a training job) names its profile. The
choice is recorded in the execution (``runtime["job_runtimes"]``, by image), so the
worker, a retry and ``execution-show`` all see the same one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from pipelines.containers.environments import EnvironmentCache, JobRuntime
from pipelines.containers.profiles import image_framework, profile_for_image, profiles

HOST_WARNING = (
    "Warning: jobs run on the host interpreter (Python {version}, with the project's "
    "libraries), not in the SageMaker container's runtime; a result here may not hold "
    "on SageMaker."
)
# Where each job step type names its image in the request.
IMAGE_FIELDS: dict[str, tuple[str, str]] = {
    "Processing": ("AppSpecification", "ImageUri"),
    "Training": ("AlgorithmSpecification", "TrainingImage"),
}


def job_image(step_type: str, arguments: Mapping[str, Any]) -> Any:
    """The image a job step's (resolved) request names, or None for other steps."""
    location = IMAGE_FIELDS.get(step_type)
    if location is None:
        return None
    section = arguments.get(location[0])
    return section.get(location[1]) if isinstance(section, Mapping) else None


def _host_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def host_runtime() -> JobRuntime:
    return JobRuntime(python=sys.executable, label=f"host · Python {_host_version()}", host=True)


def unsupported_image_message(image: str) -> str:
    known = ", ".join(sorted(profiles()))
    found = image_framework(image)
    versions = sorted(p.version for p in profiles().values() if found and p.framework == found[0])
    if found and versions:
        # A framework the executor runs, in a version it has no runtime for: name the ones it has.
        return (
            f"{found[0]} {found[1]} (image {image!r}) has no local runtime; the supported "
            f"{found[0]} versions are {', '.join(versions)}. Use one of them, run it on "
            "SageMaker, or opt out with --host-runtime."
        )
    return (
        f"no local runtime profile for image {image!r} (profiles: {known}); run it on "
        "SageMaker, or opt out with --host-runtime."
    )


def prepare_runtimes(
    images: set[str],
    cache: EnvironmentCache | None,
    *,
    host: bool,
    notify: Callable[[str], None],
) -> dict[str, JobRuntime]:
    """The runtime of each image, building profile environments as needed.

    Preflight has already checked that every image has a profile (unless ``host``).
    """
    if host:
        notify(HOST_WARNING.format(version=_host_version()))
        return dict.fromkeys(images, host_runtime())
    if cache is None:
        raise ValueError("prepare_runtimes needs an environment cache unless host is set")
    chosen: dict[str, JobRuntime] = {}
    for image in sorted(images):
        profile = profile_for_image(image)
        if profile is None:
            raise ValueError(unsupported_image_message(image))
        chosen[image] = cache.ensure(profile)
    return chosen


def step_runtime_labels(
    definition: Mapping[str, Any], runtime: Mapping[str, Any]
) -> dict[str, str]:
    """What execution-show prints for each job step, e.g. ``sklearn 1.2-1 · Python 3.9.18``:
    the runtime recorded for the image the step's request names."""
    records = runtime.get("job_runtimes") or {}
    labels: dict[str, str] = {}
    pending = list(definition.get("Steps", []))
    while pending:
        step = pending.pop()
        arguments = step.get("Arguments") or {}
        if step.get("Type") == "Condition":
            pending += arguments.get("IfSteps", []) + arguments.get("ElseSteps", [])
        image = job_image(str(step.get("Type")), arguments)
        record = records.get(image) if isinstance(image, str) else None
        if record:
            labels[str(step.get("Name"))] = str(record["label"])
    return labels
