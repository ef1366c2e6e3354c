"""The one place that imports the SageMaker SDK (v2), tamed for deterministic, offline use.

- Telemetry: every ``estimator.fit``/``pipeline.create``/``pipeline.start`` otherwise
  calls STS and then GETs an AWS-hosted telemetry URL without a timeout (the SDK
  passes it in the params position), which hangs behind a firewall. The SDK's own
  opt-out reads the defaults config, which it re-validates on every lookup (builds
  go from ~1 s to ~17 s), so the request function is replaced by a no-op instead.
- Defaults config: a user's ``~/.config/sagemaker/config.yaml`` could inject tags,
  VPC or KMS settings into the definition; :class:`DefinitionSession` never loads it,
  so the same code and infrastructure always give the same definition.
- The v2-deprecation banner is silenced; the v2 SDK is a deliberate choice.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

# Read when sagemaker is imported; setdefault keeps an explicit user choice.
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
# The SDK narrates every pipeline-variable substitution at WARNING; keep real errors.
logging.getLogger("sagemaker").setLevel(logging.ERROR)
logging.getLogger("sagemaker.config").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module=r"sagemaker(\..*)?$", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="Running within a PipelineSession", category=UserWarning)

import boto3  # noqa: E402
import sagemaker.telemetry.telemetry_logging as _telemetry  # noqa: E402
from sagemaker.workflow.pipeline_context import PipelineSession  # noqa: E402


def _no_telemetry(*args: Any, **kwargs: Any) -> None:
    """Replaces the SDK's telemetry request: nothing leaves the machine."""


_telemetry._send_telemetry_request = _no_telemetry

# A minimal, valid defaults document: passing it stops the SDK from loading the
# user's and the administrator's config files.
_NO_FILE_DEFAULTS = {"SchemaVersion": "1.0"}


class DefinitionSession(PipelineSession):
    """A PipelineSession that ignores SageMaker defaults config files and never uploads.

    Some step classes upload files while they are built (``ClarifyCheckStep`` writes its
    analysis configs to S3). Building must make no AWS call, so those uploads are kept in
    :attr:`uploads` (S3 URI to bytes); ``pipeline-run`` puts them in the bucket before it
    upserts the definition that refers to them.
    """

    def __init__(self, boto_session: boto3.Session, default_bucket: str, **kwargs: Any) -> None:
        super().__init__(
            boto_session=boto_session,
            default_bucket=default_bucket,
            sagemaker_config=_NO_FILE_DEFAULTS,
            **kwargs,
        )
        # Lookups into an empty config return nothing, without re-validating it.
        self.sagemaker_config = None
        self.uploads: dict[str, bytes] = {}

    def upload_data(
        self, path: str, bucket: str | None = None, key_prefix: str = "data", **_: Any
    ) -> str:
        """Records a file (or a folder's files) for upload; returns the SDK's S3 URI."""
        bucket = bucket or self.default_bucket()
        source = Path(path)
        prefix = key_prefix.strip("/")
        if source.is_dir():
            for item in sorted(p for p in source.rglob("*") if p.is_file()):
                key = f"{prefix}/{item.relative_to(source).as_posix()}"
                self.uploads[f"s3://{bucket}/{key}"] = item.read_bytes()
            return f"s3://{bucket}/{prefix}"
        uri = f"s3://{bucket}/{prefix}/{source.name}"
        self.uploads[uri] = source.read_bytes()
        return uri

    def upload_string_as_file_body(
        self, body: str, bucket: str, key: str, kms_key: str | None = None
    ) -> str:
        uri = f"s3://{bucket}/{key}"
        self.uploads[uri] = body.encode()
        return uri


def definition_session(
    region: str,
    default_bucket: str,
    boto_session: boto3.Session | None = None,
    sagemaker_client: Any = None,
) -> DefinitionSession:
    """A session for building definitions; without a boto session, one with placeholder
    credentials, since building makes no AWS call. ``sagemaker_client`` is where
    ``Pipeline.upsert``/``start`` go (the emulator's client in tests)."""
    if boto_session is None:
        boto_session = boto3.Session(
            aws_access_key_id="definition-only",
            aws_secret_access_key="definition-only",  # noqa: S106 - never sent anywhere
            region_name=region,
        )
    extra = {"sagemaker_client": sagemaker_client} if sagemaker_client is not None else {}
    return DefinitionSession(boto_session, default_bucket=default_bucket, **extra)


def telemetry_disabled() -> bool:
    return _telemetry._send_telemetry_request is _no_telemetry
