"""A pipeline module's ``get_pipeline``, called as AWS's project templates call it.

The templates' ``run_pipeline.py --module-name M --kwargs JSON`` imports ``M``, calls
``get_pipeline(**kwargs)`` and upserts what it returns. Here the project supplies the kwargs
the templates expect from the Terraform outputs (region, role, default_bucket,
bucket_kms_id, model_package_group_name, pipeline_name, base_job_prefix), the pipeline's
entry in invoke.yaml and ``--kwargs`` add to them, and the module is built with the
repository root as its working folder, so its relative code paths resolve as on a build
machine that checked the repository out.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config.infra_config import InfraConfig
from pipelines.config.pipeline_catalog import Source
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError

if TYPE_CHECKING:
    from sagemaker.workflow.pipeline import Pipeline

# What the templates' get_pipeline takes from the infrastructure, in their order.
TEMPLATE_KWARGS = (
    "region",
    "role",
    "default_bucket",
    "bucket_kms_id",
    "model_package_group_name",
    "pipeline_name",
    "base_job_prefix",
)


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """``--kwargs '{"processing_instance_type": "ml.m5.xlarge"}'``: a JSON object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise MlopsError(
            f"--kwargs must be a JSON object: {error.msg} at column {error.colno}."
        ) from None
    if not isinstance(value, dict):
        raise MlopsError(f"--kwargs must be a JSON object, got {type(value).__name__}.")
    return value


def infrastructure_kwargs(config: InfraConfig) -> dict[str, Any]:
    """The templates' kwargs, from the Terraform outputs (the pipeline's own view). The job
    prefix is the pipeline's name: the execution role may write under it."""
    return {
        "region": config.region,
        "role": config.execution_role_arn,
        "default_bucket": config.bucket_name,
        "bucket_kms_id": config.kms_key_arn,
        "model_package_group_name": config.model_package_group_name,
        "pipeline_name": config.pipeline_name,
        "base_job_prefix": config.base_job_prefix or config.pipeline_name,
    }


@contextlib.contextmanager
def _importable(folder: Path) -> Iterator[None]:
    """A file's folder on sys.path while it loads, for its sibling imports."""
    added = str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(folder))


@contextlib.contextmanager
def sdk_environment(connection: AwsConnection) -> Iterator[None]:
    """While a module builds on the local target, the boto3 sessions it makes itself
    (``boto3.Session(region_name=...)``, the SDK's sessions and STS calls from them) reach
    the emulator, through the AWS-hosts proxy (``local_aws_environment``); the process
    environment is restored afterwards. On AWS (no emulator) nothing changes."""
    if connection.endpoint_url is None:
        yield
        return
    import pipelines.definition.sdk_session  # noqa: F401  (the SDK tamed: no telemetry)
    from pipelines.emulator.aws_proxy import local_aws_environment

    with local_aws_environment(connection):
        yield


def load_function(source: Source) -> Callable[..., Any]:
    """The function a source names; a clear error when the module or function is missing."""
    import pipelines.definition.sdk_session  # noqa: F401  (the SDK tamed before the module loads it)

    try:
        if source.file is not None:
            name = "_mlops_pipeline_" + hashlib.sha256(str(source.file).encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(name, source.file)
            if spec is None or spec.loader is None:
                raise MlopsError(f"Cannot load {source.file} as a Python module.")
            module = importlib.util.module_from_spec(spec)
            with _importable(source.file.parent):
                sys.modules[name] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(str(source.module))
    except MlopsError:
        raise
    except Exception as error:  # the module's own import failed: say where
        raise MlopsError(
            f"Importing the pipeline module {source.text} failed: {type(error).__name__}: {error}"
        ) from error
    function = getattr(module, source.function, None)
    if not callable(function):
        raise MlopsError(f"{source.text}: the module has no function {source.function}.")
    return function


def call_kwargs(
    function: Callable[..., Any],
    derived: Mapping[str, Any],
    given: Mapping[str, Any],
    where: str,
) -> dict[str, Any]:
    """What ``function`` is called with: the derived kwargs it accepts (a template may not
    take bucket_kms_id), then the given ones (the entry's and --kwargs), which it must
    accept: a name it does not take is a typo, refused before anything runs."""
    parameters = inspect.signature(function).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    accepted = {
        name
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    unknown = sorted(name for name in given if name not in accepted and not open_ended)
    if unknown:
        raise MlopsError(
            f"{where} takes no argument(s) {', '.join(unknown)}; it takes "
            + ", ".join(sorted(accepted))
            + "."
        )
    chosen = {k: v for k, v in derived.items() if open_ended or k in accepted}
    chosen.update(given)
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and name not in chosen
    ]
    if missing:
        raise MlopsError(f"{where} needs {', '.join(missing)}: pass them with --kwargs.")
    return chosen


def build_pipeline(
    function: Callable[..., Any], kwargs: Mapping[str, Any], root: Path, where: str
) -> Pipeline:
    """Call ``get_pipeline(**kwargs)`` with ``root`` as the working folder (the templates'
    code paths are relative to the repository root); it must return a Pipeline."""
    from sagemaker.workflow.pipeline import Pipeline

    # The working folder is the process's: the build runs before any thread or job starts.
    with contextlib.chdir(root):
        try:
            pipeline = function(**kwargs)
        except MlopsError:
            raise
        except Exception as error:
            raise MlopsError(
                f"{where} failed while building the pipeline: {type(error).__name__}: {error}"
            ) from error
    if not isinstance(pipeline, Pipeline):
        raise MlopsError(f"{where} returned {type(pipeline).__name__}, not a sagemaker Pipeline.")
    return pipeline


def source_sha256(source: Source) -> str:
    """The code behind a module's pipeline: its folder's Python files, hashed in order."""
    if source.file is not None:
        folder = source.file.parent
    else:
        spec = importlib.util.find_spec(str(source.module))
        if spec is None or spec.origin is None:
            return ""
        folder = Path(spec.origin).parent
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
