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
from botocore.config import Config  # noqa: E402
from sagemaker.workflow.pipeline_context import PipelineSession  # noqa: E402


def _imported_quietly(module: str) -> None:
    """Import ``module``, undoing the ``logging.basicConfig(level=INFO)`` it runs on import
    (sagemaker.experiments): the root logger would print every botocore INFO line of a
    pipeline module's own sessions."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    __import__(module)
    root.setLevel(level)
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)


_imported_quietly("sagemaker.experiments._metrics")


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


class TargetBoundSession(boto3.Session):
    """A boto3 session whose every client and resource goes to one endpoint.

    The SDK makes clients of its own while building (an S3 resource to check the
    default bucket or upload ``entry_point`` code, STS with an endpoint it computes),
    which would otherwise reach AWS even when the target is the emulator. This
    session overrides the endpoint (and the CA) of each of them.
    """

    def __init__(self, endpoint_url: str, ca_bundle: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint_url = endpoint_url
        self.ca_bundle = ca_bundle

    def _bind(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["endpoint_url"] = self.endpoint_url
        if self.ca_bundle is not None:
            kwargs["verify"] = self.ca_bundle
        # One host for every bucket: path-style S3 addressing, as the emulator needs.
        path_style = Config(s3={"addressing_style": "path"})
        kwargs["config"] = (
            kwargs["config"].merge(path_style) if kwargs.get("config") else path_style
        )
        return kwargs

    def client(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().client(*args, **self._bind(kwargs))

    def resource(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().resource(*args, **self._bind(kwargs))


class AwsCallRefused(RuntimeError):
    """A definition build without a target tried to reach AWS."""


def _refuse(request: Any, **_: Any) -> None:
    raise AwsCallRefused(
        f"Building the definition tried to call AWS ({request.method} {request.url}); "
        "build it with the target's session (pipelines.launch.prepare.prepare_run) instead."
    )


def target_session(
    base: boto3.Session, region: str, endpoint_url: str, ca_bundle: str | None
) -> TargetBoundSession:
    """``base``'s credentials, with every client bound to ``endpoint_url``."""
    credentials = base.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials else None
    return TargetBoundSession(
        endpoint_url,
        ca_bundle,
        aws_access_key_id=frozen.access_key if frozen else None,
        aws_secret_access_key=frozen.secret_key if frozen else None,
        aws_session_token=frozen.token if frozen else None,
        region_name=region,
    )


def definition_session(
    region: str,
    default_bucket: str,
    boto_session: boto3.Session | None = None,
    sagemaker_client: Any = None,
    *,
    endpoint_url: str | None = None,
    ca_bundle: str | None = None,
) -> DefinitionSession:
    """A session for building definitions. ``endpoint_url``: the target is the emulator,
    and every call the SDK makes while building goes there. Without a boto session,
    one with placeholder credentials that refuses any request: building needs no AWS
    call. ``sagemaker_client`` is where ``Pipeline.upsert``/``start`` go."""
    if boto_session is None:
        boto_session = boto3.Session(
            aws_access_key_id="definition-only",
            aws_secret_access_key="definition-only",  # noqa: S106 - never sent anywhere
            region_name=region,
        )
        if endpoint_url is None:
            boto_session.events.register("before-send", _refuse)
    if endpoint_url is not None:
        boto_session = target_session(boto_session, region, endpoint_url, ca_bundle)
    extra = {"sagemaker_client": sagemaker_client} if sagemaker_client is not None else {}
    return DefinitionSession(boto_session, default_bucket=default_bucket, **extra)


def telemetry_disabled() -> bool:
    return _telemetry._send_telemetry_request is _no_telemetry
