"""The interpreter a local model server runs with: the model's inference image's profile.

A model pickled in the training container (scikit-learn 1.2.1) loads only with the
same library versions, as in the SageMaker serving container; so the model server
runs in the runtime profile of the image its model package names, plus the one
package it needs to serve: httptools, the HTTP parser its workers use (the container
serves with Flask and gunicorn, which the local endpoint's contract does not need; the
local server is faster than that stack, as ``benchmarks/endpoint.py`` measures).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipelines.containers.environments import EnvironmentCache, JobRuntime
from pipelines.containers.profiles import profile_for_image
from pipelines.containers.selection import HOST_WARNING, host_runtime, unsupported_image_message
from pipelines.core.errors import MlopsError

# httptools 0.9 still ships wheels for Python 3.9 (the 1.2-1 image's).
SERVING_EXTRAS = ("httptools==0.9.0",)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding pipelines/
ALGORITHMS_DIR = Path(__file__).resolve().parent / "algorithms"
# The images whose container serves a model with no inference code by a built-in algorithm,
# and the handlers that play it (by runtime profile framework).
BUILTIN_HANDLERS = {"xgboost": "xgboost_serving.py"}
CODE_ENVIRON = "SAGEMAKER_SUBMIT_DIRECTORY"


def builtin_handlers(image: str, environment: dict[str, str]) -> tuple[Path, str] | None:
    """The folder and program of the built-in algorithm that serves a model of ``image``
    with ``environment``, or None when the model brings its own inference code (or its image
    has no algorithm mode)."""
    if environment.get(CODE_ENVIRON):
        return None
    profile = profile_for_image(image)
    program = BUILTIN_HANDLERS.get(profile.framework) if profile else None
    return (ALGORITHMS_DIR, program) if program else None


def model_server_runtime(
    image: str,
    cache_root: Path | None,
    *,
    host: bool = False,
    notify: Callable[[str], None] = lambda line: None,
) -> JobRuntime:
    """The runtime for serving a model package whose inference image is ``image``."""
    if host or cache_root is None:
        runtime = host_runtime()
        notify(HOST_WARNING.format(version=runtime.label.rsplit(" ", 1)[-1]))
        return runtime
    profile = profile_for_image(image)
    if profile is None:
        raise MlopsError(f"Cannot serve the model locally: {unsupported_image_message(image)}")
    return EnvironmentCache(cache_root, progress=notify).ensure(profile, extras=SERVING_EXTRAS)


def model_server_environment(
    runtime: JobRuntime, base: dict[str, str], model: dict[str, str] | None = None
) -> dict[str, str]:
    """The model server's environment: only what it needs, and the package for its own
    module (which imports nothing but the standard library and httptools). Of the model's
    own Environment, the ``SAGEMAKER_*`` settings the serving containers read (default
    accept, ensemble, batch); nothing that could change which code the runtime runs."""
    env = {k: base[k] for k in ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "PATH") if k in base}
    env.update({k: v for k, v in (model or {}).items() if k.startswith("SAGEMAKER_")})
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if not runtime.host:
        env["PYTHONPATH"] = str(PACKAGE_ROOT)
    return env
