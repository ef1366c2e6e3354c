"""Deployment targets: the local emulator or a real AWS account, and how to reach each.

Everything that differs between the two targets is decided here: the endpoint,
the credentials and the TLS trust. Callers receive an :class:`AwsConnection` and
never branch on the target themselves.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.errors import MlopsError

TargetName = Literal["local", "aws"]
TARGETS: tuple[TargetName, ...] = ("local", "aws")
LOCAL_ENV = "local"
DEFAULT_AWS_ENV = "dev"
LOCAL_REGION = "us-east-1"

# The emulator accepts any key; these say what they are and match no AWS key format.
EMULATOR_ACCESS_KEY = "mlops-local-emulator"
EMULATOR_SECRET_KEY = "mlops-local-emulator-not-a-secret"  # noqa: S105

# Variables through which a real identity could leak into a local run.
_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_ENDPOINT_URL",
)
# The class that deploys models on each target (module:class, imported when used, as
# serving needs pandas): the one place the local/SageMaker choice is made for endpoints.
DEPLOYERS: dict[TargetName, str] = {
    "local": "pipelines.serving.local_deployer:LocalDeployer",
    "aws": "pipelines.serving.sagemaker_deployer:SageMakerDeployer",
}
_ENV_NAME = re.compile(r"^[a-z][a-z0-9]{1,9}$")


@dataclass(frozen=True)
class Deployment:
    """One stack: a target plus an environment name (``local``, ``aws/dev``, ...)."""

    target: TargetName
    env: str

    @classmethod
    def parse(cls, target: str | None = None, env: str | None = None) -> Deployment:
        target = (target or "local").lower()
        if target not in TARGETS:
            raise MlopsError(f"Unknown target {target!r}: choose one of {', '.join(TARGETS)}.")
        if target == "local":
            if env not in (None, "", LOCAL_ENV):
                raise MlopsError(
                    f"The local target has one environment, 'local'; got --env {env!r}. "
                    "Use --target aws for dev/prod."
                )
            return cls("local", LOCAL_ENV)
        env = env or DEFAULT_AWS_ENV
        if env == LOCAL_ENV or not _ENV_NAME.match(env):
            raise MlopsError(
                f"Invalid AWS environment {env!r}: use 2-10 lower-case letters or digits "
                "(e.g. dev, prod), other than 'local'."
            )
        return cls("aws", env)

    @property
    def is_local(self) -> bool:
        return self.target == "local"

    @property
    def slug(self) -> str:
        return "local" if self.is_local else f"aws-{self.env}"

    def __str__(self) -> str:
        return "local" if self.is_local else f"aws/{self.env}"


@dataclass(frozen=True)
class AwsConnection:
    """A boto3 session plus where its clients connect and what TLS they trust."""

    session: boto3.Session
    region: str
    endpoint_url: str | None = None
    ca_bundle: Path | None = None

    @property
    def is_emulator(self) -> bool:
        return self.endpoint_url is not None

    def client(
        self,
        service: str,
        *,
        max_attempts: int | None = None,
        retries_mode: str = "standard",
        **config: Any,
    ) -> BaseClient:
        """A client with botocore's retry handling (throttling, transient errors)."""
        retries = {
            "mode": retries_mode,
            "max_attempts": max_attempts or (2 if self.is_emulator else 8),
        }
        if self.is_emulator:
            config.setdefault("s3", {"addressing_style": "path"})
        return self.session.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            verify=str(self.ca_bundle) if self.ca_bundle else None,
            config=Config(retries=retries, connect_timeout=5, read_timeout=60, **config),
        )

    @classmethod
    def for_emulator(cls, endpoint_url: str, ca_bundle: Path, region: str) -> AwsConnection:
        session = boto3.Session(
            aws_access_key_id=EMULATOR_ACCESS_KEY,
            aws_secret_access_key=EMULATOR_SECRET_KEY,
            region_name=region,
        )
        return cls(session=session, region=region, endpoint_url=endpoint_url, ca_bundle=ca_bundle)

    @classmethod
    def for_aws(cls, region: str | None = None, profile: str | None = None) -> AwsConnection:
        """A connection through the standard credential chain, verified before use."""
        try:
            session = boto3.Session(profile_name=profile, region_name=region)
        except BotoCoreError as error:
            raise MlopsError(f"Cannot load the AWS profile {profile!r}: {error}") from error
        resolved_region = region or session.region_name
        if not resolved_region:
            raise MlopsError(
                "No AWS region configured: set AWS_REGION (or a region in your AWS profile)."
            )
        verify_credentials(session, resolved_region)
        return cls(session=session, region=resolved_region)


def verify_credentials(session: boto3.Session, region: str) -> str:
    """Return the account id, or fail before anything is touched with what to set."""
    hint = (
        "Set AWS_PROFILE to a configured profile (for SSO, run `aws sso login --profile NAME` "
        "first) or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Nothing was changed."
    )
    try:
        credentials = session.get_credentials()
    except BotoCoreError as error:
        raise MlopsError(f"AWS credentials could not be loaded: {error}. {hint}") from error
    if credentials is None:
        raise MlopsError(f"No AWS credentials found for --target aws. {hint}")
    sts = session.client(
        "sts",
        region_name=region,
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=10),
    )
    try:
        return sts.get_caller_identity()["Account"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        raise MlopsError(
            f"AWS rejected the credentials from {credentials.method} ({code}): they are "
            f"expired or invalid. {hint}"
        ) from error
    except BotoCoreError as error:
        raise MlopsError(f"Could not verify AWS credentials with STS: {error}. {hint}") from error


def emulator_process_env(
    base: Mapping[str, str], *, ca_bundle: Path, region: str
) -> dict[str, str]:
    """Environment for a subprocess (Terraform, a job) that must only reach the emulator."""
    env = {k: v for k, v in base.items() if k not in _CREDENTIAL_VARIABLES}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": EMULATOR_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": EMULATOR_SECRET_KEY,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_CA_BUNDLE": str(ca_bundle),
            # Never read the user's profiles or the instance metadata service.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env
