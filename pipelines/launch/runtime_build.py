"""Build the job runtime ahead of a first run, while Terraform applies."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from pipelines.config.settings import Settings
from pipelines.containers.environments import EnvironmentCache, JobRuntime
from pipelines.containers.interpreters import find_interpreter
from pipelines.containers.profiles import profiles
from pipelines.definition.names import FRAMEWORK_VERSION


def start_runtime_build(
    settings: Settings, notify: Callable[[str], None]
) -> Future[JobRuntime] | None:
    """Start building the job runtime the definition's images need, on a thread, so
    that a first run builds it while Terraform applies (the provider's lifecycle
    waiter alone takes 55 s) instead of after.

    The interpreter is looked up now, so a missing Python is reported before any
    slow work starts. The executor's own ``ensure`` later finds the environment
    built, or waits on the same file lock while the build finishes."""
    if settings.runtime_host:
        return None
    profile = profiles()[f"sklearn-{FRAMEWORK_VERSION}"]
    cache = EnvironmentCache(settings.runtime_cache, progress=notify)
    if cache.ready(profile):
        return None
    find_interpreter(profile.python, cache.uv_bin)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runtime-build")
    future = executor.submit(cache.ensure, profile)
    executor.shutdown(wait=False)
    return future
