"""How to reach AWS or the local emulator: one :class:`AwsConnection` for both.

What differs between the two for a client is decided here: the endpoint, the
credentials and the TLS trust. Callers receive a connection and never branch on
the target themselves.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.errors import MlopsError
from pipelines.core.files import write_atomically

LOCAL_REGION = "us-east-1"

# --- the emulator's credentials -------------------------------------------------------
# The emulator answers only requests signed with its checkout's own key, made at its
# first start: another user of the machine reaches 127.0.0.1 too, and must not read or
# change what this checkout stored. The key lives beside the emulator's CA certificate
# (0600, in the private state folder), so every client that is handed the CA path (the
# executor's workers, the endpoint's front, the agent, Terraform's environment) finds it.
EMULATOR_CREDENTIALS_NAME = "credentials.json"
# Before the first start there is no key: clients then sign with this one, which every
# emulator refuses.
_NO_KEY_YET = ("MLOPSNOEMULATORKEYYET", "no-emulator-has-started-in-this-state-folder")


@dataclass(frozen=True)
class EmulatorCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)


def emulator_credentials_file(ca_bundle: Path) -> Path:
    return ca_bundle.with_name(EMULATOR_CREDENTIALS_NAME)


def emulator_credentials(ca_bundle: Path) -> EmulatorCredentials:
    """This checkout's key for its emulator: read it here and nowhere else.

    ``ca_bundle`` is the emulator's CA certificate (``Emulator.tls.ca_cert``), which
    every client already has. Before the emulator's first start there is no key yet;
    the placeholder returned then is refused by the emulator."""
    try:
        return read_emulator_credentials(emulator_credentials_file(ca_bundle))
    except FileNotFoundError:
        return EmulatorCredentials(*_NO_KEY_YET)


def read_emulator_credentials(path: Path) -> EmulatorCredentials:
    """The key stored in ``path`` (FileNotFoundError when there is none)."""
    try:
        stored = json.loads(path.read_text())
        return EmulatorCredentials(stored["access_key_id"], stored["secret_access_key"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise MlopsError(
            f"The emulator's credentials file {path} is damaged ({error}); remove it, then "
            "run `invoke emulator-down` and `invoke emulator-up`: the start makes a new key."
        ) from error


def ensure_emulator_credentials(ca_bundle: Path) -> EmulatorCredentials:
    """The stored key, or a new random one written 0600 (the emulator's first start)."""
    path = emulator_credentials_file(ca_bundle)
    if path.is_file():
        return read_emulator_credentials(path)
    alphabet = string.ascii_uppercase + string.digits
    made = EmulatorCredentials(
        "MLOPS" + "".join(secrets.choice(alphabet) for _ in range(15)),
        secrets.token_urlsafe(30),
    )
    record = {"access_key_id": made.access_key_id, "secret_access_key": made.secret_access_key}
    write_atomically(path, json.dumps(record).encode())
    return made


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


@dataclass(frozen=True)
class AwsConnection:
    """A boto3 session plus where its clients connect and what TLS they trust."""

    session: boto3.Session
    region: str
    endpoint_url: str | None = None
    ca_bundle: Path | None = None
    # The emulator answers at once or not at all: retrying it only delays the error.
    default_attempts: int = 8
    # The emulator serves every bucket under one host name.
    path_style: bool = False
    # AWS services emit their own EventBridge events; the emulator does not, so the
    # project emits them itself (pipelines.events) where SageMaker would.
    emits_service_events: bool = False
    # One client per service and settings, made once: a client costs tens of
    # milliseconds and a TLS handshake, and a run asks for one per step and call.
    # botocore's clients are thread-safe; making them from one session is not.
    _clients: dict[Any, BaseClient] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    _clients_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, compare=False, repr=False
    )

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
        """A client with botocore's retry handling (throttling, transient errors); the
        same one for the same service and settings."""
        key = (service, max_attempts, retries_mode, repr(sorted(config.items())))
        with self._clients_lock:
            if key not in self._clients:
                self._clients[key] = self._new_client(service, max_attempts, retries_mode, config)
            return self._clients[key]

    def _new_client(
        self, service: str, max_attempts: int | None, retries_mode: str, config: dict[str, Any]
    ) -> BaseClient:
        retries = {
            "mode": retries_mode,
            "max_attempts": max_attempts or self.default_attempts,
        }
        if self.path_style:
            config.setdefault("s3", {"addressing_style": "path"})
        return self.session.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            verify=str(self.ca_bundle) if self.ca_bundle else None,
            config=Config(retries=retries, connect_timeout=5, read_timeout=60, **config),
        )

    def sagemaker(self) -> BaseClient:
        """SageMaker's control plane throttles bursts (ThrottlingException): adaptive
        retries also rate-limit on the client side, so a burst waits instead of failing."""
        return self.client("sagemaker", max_attempts=10, retries_mode="adaptive")

    @classmethod
    def for_emulator(cls, endpoint_url: str, ca_bundle: Path, region: str) -> AwsConnection:
        """A connection to this checkout's emulator, signing with its key."""
        credentials = emulator_credentials(ca_bundle)
        session = boto3.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            region_name=region,
        )
        return cls(
            session=session,
            region=region,
            endpoint_url=endpoint_url,
            ca_bundle=ca_bundle,
            default_attempts=2,
            path_style=True,
            emits_service_events=True,
        )

    def emulator_record(self) -> dict[str, str]:
        """What a worker process needs to reconnect to the emulator (see from_record)."""
        if self.endpoint_url is None or self.ca_bundle is None:
            raise MlopsError("Only an emulator connection can be handed to a local worker.")
        return {
            "endpoint": self.endpoint_url,
            "ca_bundle": str(self.ca_bundle),
            "region": self.region,
        }

    @classmethod
    def from_emulator_record(cls, record: Mapping[str, Any]) -> AwsConnection:
        return cls.for_emulator(record["endpoint"], Path(record["ca_bundle"]), record["region"])

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
    """Environment for a subprocess (Terraform, a job) that must only reach the emulator,
    with this checkout's key for it."""
    credentials = emulator_credentials(ca_bundle)
    env = {k: v for k, v in base.items() if k not in _CREDENTIAL_VARIABLES}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
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


# --- how AWS errors read, everywhere -------------------------------------------------


def error_code(error: Exception) -> str:
    """The API's error code (``ResourceNotFound``, ...); empty for a non-API error."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Message", ""))
    return str(error)


def api_error(action: str, error: Exception) -> MlopsError:
    """``"<action> failed: <Code>: <Message>"``: what the user sees for a failed call."""
    if isinstance(error, ClientError):
        return MlopsError(f"{action} failed: {error_code(error)}: {error_message(error)}")
    return MlopsError(f"{action} failed: {error}")


def is_missing(error: Exception) -> bool:
    """SageMaker reports a missing resource as a ValidationException with this wording."""
    message = error_message(error)
    return error_code(error) == "ResourceNotFound" or (
        "Could not find" in message or "does not exist" in message
    )
