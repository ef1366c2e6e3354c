"""Step caching per the step's CacheConfig.

The key covers the pipeline, the step type, the request attributes SageMaker
Pipelines documents as its cache key (so output locations that carry the
execution id do not defeat it), and the content of every S3 input the step reads,
code included. A hit reuses the earlier run's properties, so downstream steps read
the earlier outputs, as on SageMaker.

Check steps (QualityCheck, ClarifyCheck) are cached as SageMaker caches them, on their
request and inputs; their step-level switches (SkipCheck, RegisterNewBaseline, ...) and
the baseline they compare against (the latest Approved version's, looked up when the
step starts) are part of the local key too, so a cached verdict is never one reached
against another baseline. A cached step costs a lookup, not a job.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from botocore.client import BaseClient

from pipelines.core import s3io
from pipelines.executor.checks import CHECK_KEY, CHECK_STEP_TYPES
from pipelines.executor.runners import CACHE_KEY_ATTRIBUTES

_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$",
    re.IGNORECASE,
)
_SECONDS = {
    "years": 365 * 86400,
    "months": 30 * 86400,
    "weeks": 7 * 86400,
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
}


def expire_after_seconds(value: str | None) -> float | None:
    """ISO 8601 duration (``P30D``, ``PT1H``) in seconds; None means no expiry."""
    if not value:
        return None
    match = _DURATION.match(value.strip())
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"CacheConfig ExpireAfter {value!r} is not an ISO 8601 duration.")
    return float(sum(int(v) * _SECONDS[k] for k, v in match.groupdict().items() if v))


_PROCESSING_ATTRIBUTES = CACHE_KEY_ATTRIBUTES["Processing"]
KEY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    **CACHE_KEY_ATTRIBUTES,
    **{kind: (*_PROCESSING_ATTRIBUTES, CHECK_KEY) for kind in CHECK_STEP_TYPES},
}


def cache_enabled(step_spec: Mapping[str, Any]) -> bool:
    return bool(step_spec.get("CacheConfig", {}).get("Enabled")) and (
        step_spec.get("Type") in KEY_ATTRIBUTES
    )


def input_uris(step_type: str, arguments: Mapping[str, Any]) -> list[str]:
    """Every S3 location the step reads, its code included."""
    if step_type == "Processing" or step_type in CHECK_STEP_TYPES:
        return [
            item["S3Input"]["S3Uri"]
            for item in arguments.get("ProcessingInputs", [])
            if "S3Input" in item
        ]
    if step_type == "Transform":
        source = arguments.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource")
        return [source["S3Uri"]] if source else []
    uris = [
        channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in arguments.get("InputDataConfig", [])
        if "S3DataSource" in channel.get("DataSource", {})
    ]
    code = arguments.get("HyperParameters", {}).get("sagemaker_submit_directory")
    if code:
        uris.append(json.loads(code))
    return uris


def cache_key(
    pipeline_name: str,
    step_type: str,
    arguments: Mapping[str, Any],
    s3: BaseClient,
    context: Mapping[str, Any] | None = None,
) -> str:
    """``context``: what else the step's outcome depends on (a check's baseline)."""
    attributes = {name: arguments.get(name) for name in KEY_ATTRIBUTES[step_type]}
    contents = {uri: s3io.fingerprint(s3, uri) for uri in input_uris(step_type, arguments)}
    payload = json.dumps(
        {
            "pipeline": pipeline_name,
            "type": step_type,
            "attributes": attributes,
            "inputs": contents,
            "context": dict(context or {}),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def outputs_still_exist(step_type: str, properties: Mapping[str, Any], s3: BaseClient) -> bool:
    """A cached run is only reusable while what it produced is still in the bucket
    (the emulator forgets everything when it restarts)."""
    if step_type == "Training":
        return s3io.exists(s3, properties["ModelArtifacts"]["S3ModelArtifacts"])
    if step_type == "Transform":
        return s3io.exists(s3, properties["TransformOutput"]["S3OutputPath"])
    if step_type in CHECK_STEP_TYPES:
        written = ("CalculatedBaselineConstraints", "CalculatedBaselineStatistics")
        return all(s3io.exists(s3, properties[name]) for name in written if properties.get(name))
    outputs = properties.get("ProcessingOutputConfig", {}).get("Outputs", [])
    return all(s3io.exists(s3, item["S3Output"]["S3Uri"]) for item in outputs)
