"""The QualityCheck and ClarifyCheck step types, with SageMaker's baseline lifecycle.

Semantics (developer guide, "Baseline calculation, drift detection and lifecycle with
ClarifyCheck and QualityCheck steps", pipelines-quality-clarify-baseline-lifecycle):

* the step always calculates a new baseline from its dataset (``CalculatedBaseline*``);
* unless ``SkipCheck``, it checks the dataset against the baseline supplied in the step
  (``SuppliedBaseline*``, which take priority) or else the ``DriftCheckBaselines`` of the
  latest Approved model package in ``ModelPackageGroupName``;
* with neither (the group's first run), SageMaker needs both ``SkipCheck`` and
  ``RegisterNewBaseline`` true: "If it is set to False, the previous baseline of the
  configured check type must be available" (API reference, QualityCheckStepMetadata and
  ClarifyCheckStepMetadata, for each flag). Otherwise the step fails, naming the
  parameters to set;
* ``BaselineUsedForDriftCheck*`` is the newly calculated baseline when
  ``RegisterNewBaseline`` is true (or when there was no earlier one), else the one checked
  against: that is what registration records as the next run's baseline;
* violations fail the step when ``FailOnViolation``, listing them, so nothing downstream
  (registration) runs.

The step-level fields (``CheckType``, ``SkipCheck``, ``FailOnViolation``,
``RegisterNewBaseline``, ``ModelPackageGroupName``, ``SuppliedBaseline*``) and the
properties are those the SDK's ``sagemaker/workflow/quality_check_step.py`` and
``clarify_check_step.py`` write and refer to (``to_request``, ``properties``); the files'
formats are documented in ``training/analyzer.py``.

The analysis runs in-process with ``training/analyzer.py`` rather than as a job: the step's
image is AWS's Model Monitor or Clarify container, which has no Python entrypoint to run
locally, and the analyzer on a split of a few thousand rows takes milliseconds while a job
process costs about a second of interpreter and pandas start-up. The request is still the
ProcessingJob SageMaker would run, and the files land where that job would write them.

Check steps are cached (``cache.py``); the baseline a check compares against is part of
the local cache key (:func:`baseline_identity`).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.settings import PROJECT_ROOT
from pipelines.core import s3io
from pipelines.executor.graph import StepNode
from pipelines.executor.runners import (
    JobContext,
    Runner,
    StepFailed,
    StepOutcome,
    _arn,
    _client_error,
    _iso,
    job_name,
)

ANALYZER_PATH = PROJECT_ROOT / "training" / "analyzer.py"
CHECK_FIELDS = (
    "CheckType",
    "SkipCheck",
    "FailOnViolation",
    "RegisterNewBaseline",
    "ModelPackageGroupName",
    "SuppliedBaselineStatistics",
    "SuppliedBaselineConstraints",
)
# The step-level fields travel to the runner under this key of its resolved request.
CHECK_KEY = "__Check__"
CHECK_STEP_TYPES = ("QualityCheck", "ClarifyCheck")
APPROVED = "Approved"
_LOAD_LOCK = threading.Lock()


def load_analyzer(path: Path = ANALYZER_PATH) -> ModuleType:
    """training/analyzer.py, imported by path (it is a standalone container script)."""
    name = "_mlops_analyzer"
    # Check steps run in parallel threads: one loads it, the others wait for a whole module.
    with _LOAD_LOCK:
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
        return module


def step_request(node: StepNode) -> dict[str, Any]:
    """What the engine resolves for a step: its Arguments, plus for a check step the
    step-level fields (they may refer to parameters, like ``SkipCheck``)."""
    request = dict(node.arguments)
    if node.type in CHECK_STEP_TYPES:
        request[CHECK_KEY] = {field: node.spec.get(field) for field in CHECK_FIELDS}
    return request


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


@dataclass(frozen=True)
class CheckSettings:
    check_type: str
    skip: bool
    fail_on_violation: bool
    register_new: bool
    group: str | None
    supplied_statistics: str | None
    supplied_constraints: str | None

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> CheckSettings:
        fields = request.get(CHECK_KEY) or {}
        return cls(
            check_type=str(fields.get("CheckType") or ""),
            skip=_flag(fields.get("SkipCheck"), False),
            fail_on_violation=_flag(fields.get("FailOnViolation"), True),
            register_new=_flag(fields.get("RegisterNewBaseline"), False),
            group=fields.get("ModelPackageGroupName") or None,
            supplied_statistics=fields.get("SuppliedBaselineStatistics") or None,
            supplied_constraints=fields.get("SuppliedBaselineConstraints") or None,
        )


@dataclass(frozen=True)
class Baseline:
    """Where a baseline's files are, and where it came from (for messages)."""

    statistics: str | None
    constraints: str | None
    source: str


# --- S3 and the registry --------------------------------------------------------------------


def _read_json(ctx: JobContext, uri: str, what: str) -> Any:
    s3 = ctx.connection.client("s3")
    try:
        bucket, key = s3io.parse_s3_uri(uri)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)
    except (ClientError, BotoCoreError) as error:
        raise _client_error(f"reading the {what} {uri}", error) from error
    except json.JSONDecodeError as error:
        raise StepFailed(f"ClientError: the {what} {uri} is not JSON: {error}") from error


def _write_json(ctx: JobContext, uri: str, document: Any) -> None:
    s3 = ctx.connection.client("s3")
    bucket, key = s3io.parse_s3_uri(uri)
    body = json.dumps(document, indent=2, sort_keys=True, allow_nan=False).encode()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except (ClientError, BotoCoreError) as error:
        raise _client_error(f"writing {uri}", error) from error


def latest_approved_package(ctx: JobContext, group: str) -> dict[str, Any] | None:
    """The latest Approved version of the group, described; None when there is none."""
    sagemaker = ctx.connection.client("sagemaker")
    try:
        listed = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus=APPROVED,
            SortBy="CreationTime",
            SortOrder="Descending",
        )["ModelPackageSummaryList"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "ValidationException",
            "ResourceNotFound",
        ):
            return None
        raise _client_error(f"listing the Approved versions of {group}", error) from error
    except BotoCoreError as error:
        raise _client_error(f"listing the Approved versions of {group}", error) from error
    approved = [p for p in listed if p.get("ModelApprovalStatus", APPROVED) == APPROVED]
    if not approved:
        return None
    # Newest first; sort here too, in case the registry ignores SortBy.
    newest = max(
        approved, key=lambda p: (p.get("ModelPackageVersion") or 0, str(p["CreationTime"]))
    )
    try:
        return sagemaker.describe_model_package(ModelPackageName=newest["ModelPackageArn"])
    except (ClientError, BotoCoreError) as error:
        raise _client_error(f"describing {newest['ModelPackageArn']}", error) from error


# Where each check type's baseline lives in a model package's DriftCheckBaselines.
_DRIFT_BASELINE_PATHS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "DATA_QUALITY": (("ModelDataQuality", "Constraints"), ("ModelDataQuality", "Statistics")),
    "MODEL_QUALITY": (("ModelQuality", "Constraints"), ("ModelQuality", "Statistics")),
    "DATA_BIAS": (("Bias", "PreTrainingConstraints"), None),
}


def _dig(document: Mapping[str, Any], path: tuple[str, ...] | None) -> str | None:
    if path is None:
        return None
    value: Any = document
    for key in (*path, "S3Uri"):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value or None


def previous_baseline(ctx: JobContext, settings: CheckSettings) -> Baseline | None:
    """The supplied baseline (it takes priority), else the latest Approved version's."""
    if settings.supplied_constraints or settings.supplied_statistics:
        return Baseline(
            settings.supplied_statistics, settings.supplied_constraints, "the supplied baseline"
        )
    if not settings.group:
        return None
    package = latest_approved_package(ctx, settings.group)
    if package is None:
        return None
    constraints_path, statistics_path = _DRIFT_BASELINE_PATHS[settings.check_type]
    drift = package.get("DriftCheckBaselines") or {}
    constraints = _dig(drift, constraints_path)
    if constraints is None:
        return None  # approved before the group had baselines: nothing to check against
    return Baseline(
        _dig(drift, statistics_path),
        constraints,
        f"model package {package['ModelPackageArn']} (the latest Approved version)",
    )


def baseline_identity(args: Mapping[str, Any], ctx: JobContext) -> dict[str, Any]:
    """What a check's verdict depends on besides its request and inputs: the baseline it
    would compare against now (none when it is skipped)."""
    settings = CheckSettings.from_request(args)
    if settings.skip:
        return {"baseline": None}
    previous = previous_baseline(ctx, settings)
    if previous is None:
        return {"baseline": None}
    # Which version it is, not only its files: a kept baseline is the same files in
    # several versions, and the step reports which one it checked against.
    return {"baseline": [previous.source, previous.statistics, previous.constraints]}


# --- the analyses ---------------------------------------------------------------------------


def _download(ctx: JobContext, args: Mapping[str, Any], input_name: str, root: Path) -> Path:
    for item in args.get("ProcessingInputs", []):
        if item.get("InputName") == input_name and "S3Input" in item:
            destination = root / input_name
            uri = item["S3Input"]["S3Uri"]
            try:
                found = s3io.download(ctx.connection.client("s3"), uri, destination)
            except (ClientError, BotoCoreError) as error:
                raise _client_error(
                    f"downloading input {input_name!r} from {uri}", error
                ) from error
            if not found:
                raise StepFailed(
                    f"ClientError: Data download failed: no S3 objects found under {uri} "
                    f"(input {input_name!r})."
                )
            return destination
    raise StepFailed(f"The check step has no S3 input named {input_name!r}.")


def _output_uri(args: Mapping[str, Any]) -> str:
    outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
    if not outputs:
        raise StepFailed("The check step has no processing output.")
    return str(outputs[0]["S3Output"]["S3Uri"]).rstrip("/")


def _csv_header(environment: Mapping[str, Any]) -> bool:
    try:
        return bool(
            json.loads(environment.get("dataset_format", "{}")).get("csv", {}).get("header")
        )
    except (TypeError, ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class Analysis:
    """A calculated baseline: file name to document, and the files that hold it."""

    documents: dict[str, Any]
    statistics_file: str | None
    constraints_file: str


def analyze_quality(analyzer: ModuleType, args: Mapping[str, Any], data: Path) -> Analysis:
    env = args.get("Environment") or {}
    frame = analyzer.read_csv(data, header=_csv_header(env))
    if env.get("analysis_type") == "MODEL_QUALITY":
        if env.get("problem_type") != "Regression":
            raise StepFailed(
                f"The local executor checks Regression model quality; got problem_type "
                f"{env.get('problem_type')!r}."
            )
        columns = {
            "inference_attribute": env.get("inference_attribute"),
            "ground_truth_attribute": env.get("ground_truth_attribute"),
        }
        for name, column in columns.items():
            if column not in frame.columns:
                raise StepFailed(
                    f"ClientError: {name} {column!r} is not a column of the dataset "
                    f"({', '.join(map(str, frame.columns))})."
                )
        try:
            statistics = analyzer.regression_statistics(
                frame[columns["ground_truth_attribute"]].astype(float),
                frame[columns["inference_attribute"]].astype(float),
            )
        except ValueError as error:
            raise StepFailed(f"ClientError: the model-quality dataset: {error}") from error
        constraints = analyzer.suggest_regression_constraints(statistics)
    else:
        try:
            statistics = analyzer.data_statistics(frame)
        except ValueError as error:
            raise StepFailed(f"ClientError: the data-quality dataset: {error}.") from error
        constraints = analyzer.suggest_constraints(statistics)
    return Analysis(
        {analyzer.STATISTICS_FILE: statistics, analyzer.CONSTRAINTS_FILE: constraints},
        analyzer.STATISTICS_FILE,
        analyzer.CONSTRAINTS_FILE,
    )


def analyze_bias(analyzer: ModuleType, config_dir: Path, data: Path) -> Analysis:
    files = sorted(config_dir.rglob("*.json"))
    if not files:
        raise StepFailed("ClientError: the analysis_config input holds no JSON file.")
    config = json.loads(files[0].read_text())
    try:
        facet = config["facet"][0]
        analysis = analyzer.pre_training_bias(
            analyzer.read_csv(data, header=True),
            label=str(config["label"]),
            label_threshold=float(config["label_values_or_threshold"][0]),
            facet=str(facet["name_or_index"]),
            facet_threshold=float(facet["value_or_threshold"][0]),
        )
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise StepFailed(f"ClientError: Clarify analysis config: {error}") from error
    return Analysis({analyzer.ANALYSIS_FILE: analysis}, None, analyzer.ANALYSIS_FILE)


def find_violations(
    analyzer: ModuleType,
    settings: CheckSettings,
    current: Analysis,
    baseline: Baseline,
    ctx: JobContext,
) -> list[dict[str, Any]]:
    if baseline.constraints is None:
        raise StepFailed("ClientError: the baseline to check against has no constraints file.")
    constraints = _read_json(ctx, baseline.constraints, "baseline constraints")
    if settings.check_type == "DATA_BIAS":
        try:
            return analyzer.check_bias(current.documents[analyzer.ANALYSIS_FILE], constraints)
        except ValueError as error:
            raise StepFailed(
                f"ClientError: {error}; register this run's baseline instead "
                "(RegisterNewDataBiasBaseline=true) if the facet or its threshold changed."
            ) from error
    statistics = current.documents[analyzer.STATISTICS_FILE]
    if settings.check_type == "MODEL_QUALITY":
        base = (
            _read_json(ctx, baseline.statistics, "baseline statistics")
            if baseline.statistics
            else None
        )
        return analyzer.check_model_quality(statistics, constraints, base)
    if baseline.statistics is None:
        raise StepFailed("ClientError: the data-quality baseline has no statistics file.")
    base = _read_json(ctx, baseline.statistics, "baseline statistics")
    return analyzer.check_data_quality(statistics, base, constraints)


def describe_violation(violation: Mapping[str, Any]) -> str:
    """One line: what (feature, metric or facet), which check, why."""
    subject = violation.get("feature_name") or violation.get("metric_name") or ""
    if violation.get("facet"):
        subject = (
            f"{violation['facet']}={violation.get('facet_value')} {violation.get('metric_name')}"
        )
    return f"{subject}: {violation['constraint_check_type']}: {violation['description']}"


def _run_check(node: StepNode, args: dict[str, Any], ctx: JobContext) -> StepOutcome:
    settings = CheckSettings.from_request(args)
    request = {k: v for k, v in args.items() if k != CHECK_KEY}
    analyzer = load_analyzer()
    started = time.time()
    root = ctx.step_dir / "sandbox"
    if node.type == "ClarifyCheck":
        if settings.check_type != "DATA_BIAS":
            raise StepFailed(
                f"The local executor runs DATA_BIAS Clarify checks; got {settings.check_type!r}."
            )
        current = analyze_bias(
            analyzer,
            _download(ctx, request, "analysis_config", root),
            _download(ctx, request, "dataset", root),
        )
    else:
        if settings.check_type not in ("DATA_QUALITY", "MODEL_QUALITY"):
            raise StepFailed(f"Unknown quality check type {settings.check_type!r}.")
        current = analyze_quality(
            analyzer, request, _download(ctx, request, "baseline_dataset_input", root)
        )
    output = _output_uri(request)
    for file_name, document in current.documents.items():
        _write_json(ctx, f"{output}/{file_name}", document)
    calculated = Baseline(
        f"{output}/{current.statistics_file}" if current.statistics_file else None,
        f"{output}/{current.constraints_file}",
        "the calculated baseline",
    )

    previous = previous_baseline(ctx, settings)
    if previous is None and not (settings.skip and settings.register_new):
        raise StepFailed(_no_baseline_message(node, settings))
    violations: list[dict[str, Any]] = []
    if previous is not None and not settings.skip:
        violations = find_violations(analyzer, settings, current, previous, ctx)
        _write_json(
            ctx,
            f"{output}/{analyzer.VIOLATIONS_FILE}",
            analyzer.violations_document(violations, settings.check_type),
        )
    used = calculated if settings.register_new or previous is None else previous
    with (ctx.log_path).open("a") as log:
        log.write(
            f"{node.name}: {settings.check_type}; calculated baseline in {output}; "
            + (
                "check skipped"
                if settings.skip
                else f"checked against {previous.source}"
                if previous
                else "no baseline to check against (no Approved version with one)"
            )
            + f"; {len(violations)} violation(s)\n"
        )
        for violation in violations:
            log.write(f"  {describe_violation(violation)}\n")
    if violations and settings.fail_on_violation:
        assert previous is not None
        listed = "\n".join(f"  - {describe_violation(v)}" for v in violations)
        raise StepFailed(
            f"ClientError: {settings.check_type} check failed: {len(violations)} violation(s) "
            f"against {previous.source}; see {output}/{analyzer.VIOLATIONS_FILE}\n{listed}"
        )

    name = job_name(ctx.execution, node.name)
    properties: dict[str, Any] = {
        **request,
        "ProcessingJobName": name,
        "ProcessingJobArn": _arn(ctx, f"processing-job/{name}"),
        "ProcessingJobStatus": "Completed",
        "CreationTime": _iso(started),
        "ProcessingEndTime": _iso(time.time()),
        "CalculatedBaselineConstraints": calculated.constraints,
        "BaselineUsedForDriftCheckConstraints": used.constraints,
        "CheckType": settings.check_type,
        "SkipCheck": settings.skip,
        "RegisterNewBaseline": settings.register_new,
        "BaselineSource": used.source,
        "ViolationCount": len(violations),
        "Violations": violations,
    }
    if node.type == "QualityCheck":
        properties["CalculatedBaselineStatistics"] = calculated.statistics
        properties["BaselineUsedForDriftCheckStatistics"] = used.statistics
    return StepOutcome(properties=properties)


def _switch(node: StepNode, field: str) -> str:
    """How the definition sets a step-level flag: the parameter it is bound to, or the field."""
    value = node.spec.get(field)
    if isinstance(value, Mapping) and str(value.get("Get", "")).startswith("Parameters."):
        return str(value["Get"]).removeprefix("Parameters.")
    return f"the step's {field}"


def _no_baseline_message(node: StepNode, settings: CheckSettings) -> str:
    where = f"model package group {settings.group}" if settings.group else "the step"
    skip, register = _switch(node, "SkipCheck"), _switch(node, "RegisterNewBaseline")
    return (
        f"ClientError: no {settings.check_type} baseline to check against: {where} has no "
        f"Approved version with one, and SageMaker then needs {skip}=true and "
        f"{register}=true (a first run registers the calculated baseline). Set them "
        "(invoke pipeline-run sets them itself for a group with no Approved version)."
    )


def run_quality_check(node: StepNode, args: dict[str, Any], ctx: JobContext) -> StepOutcome:
    return _run_check(node, args, ctx)


def run_clarify_check(node: StepNode, args: dict[str, Any], ctx: JobContext) -> StepOutcome:
    return _run_check(node, args, ctx)


CHECK_RUNNERS: dict[str, Runner] = {
    "QualityCheck": run_quality_check,
    "ClarifyCheck": run_clarify_check,
}
