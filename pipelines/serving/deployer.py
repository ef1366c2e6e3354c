"""One deployment interface for both targets: deploy, status, down, predict, rollback,
history. ``pipelines.targets.open_deployer`` picks the implementation from the target
map; the tasks never branch on the target.

A *stage* (``staging``, ``prod``) is, on AWS, its own Terraform environment, and locally
its own endpoint (name and port) in the one emulator. Without a stage, the
environment's endpoint is used, as before stages existed.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.backends.base import Backend
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core.aws import api_error
from pipelines.core.errors import MlopsError
from pipelines.registry import APPROVED, ModelVersion, Registry, require_approved
from pipelines.serving import predict as predicting
from pipelines.serving.deploy import DeploySettings
from pipelines.serving.deployment_records import DEPLOYED, DeploymentRecord, HistoryStore
from pipelines.stack.stacks import Stack


@dataclass(frozen=True)
class StageStatus:
    running: bool
    endpoint: str
    detail: str
    url: str | None = None
    version: int | None = None
    package_arn: str | None = None
    # During a canary or linear shift: (version, share of requests) of each variant.
    traffic: tuple[tuple[int | None, float], ...] = ()

    @property
    def line(self) -> str:
        where = f" at {self.url}" if self.url else ""
        package = f" (model package {self.package_arn})" if self.package_arn else ""
        return f"Endpoint {self.endpoint}{where}: {self.detail}{package}"


@dataclass(frozen=True)
class Rollout:
    record: DeploymentRecord
    message: str


class StageDeployer(ABC):
    """What both targets share; subclasses roll a version out and report on the endpoint."""

    needs_confirmation = False

    def __init__(
        self, settings: Settings, stack: Stack, config: InfraConfig, stage: str | None
    ) -> None:
        self.settings, self.stack, self.config, self.stage = settings, stack, config, stage
        self.pipeline_backend: Backend | None = None
        self.wait = True
        self.connection = stack.connection
        self.registry = Registry(
            stack.connection, config.model_package_group_name, lock_dir=settings.state_dir
        )
        self.endpoint = self._endpoint_name()
        self.store = HistoryStore(stack.connection.client("s3"), config.bucket_name, self.endpoint)

    @property
    def label(self) -> str:
        return self.stage or str(self.stack.deployment)

    # --- per target -----------------------------------------------------------------------

    @abstractmethod
    def _endpoint_name(self) -> str: ...

    @abstractmethod
    def _rollout(self, version: ModelVersion, settings: DeploySettings) -> str:
        """Serve ``version`` blue/green with the settings' strategy; a line for the user."""

    @abstractmethod
    def status(self) -> StageStatus: ...

    @abstractmethod
    def down(self) -> str: ...

    @abstractmethod
    def invoker(self) -> predicting.Invoke:
        """Send one request body to the serving endpoint; refuses when nothing serves."""

    def backend(self) -> Backend:
        """The pipeline backend of the stage's environment (execution records); set by
        the target map that made this deployer."""
        if self.pipeline_backend is None:
            raise MlopsError("This deployer was made without its pipeline backend.")
        return self.pipeline_backend

    def ping(self) -> tuple[bool, str]:
        status = self.status()
        return status.running, status.detail

    # --- shared ---------------------------------------------------------------------------

    def deploy(
        self,
        number: int | None = None,
        strategy: str | None = None,
        *,
        version: ModelVersion | None = None,
        kind: str = "deploy",
        approval: dict | None = None,
        gates: list[dict] | None = None,
    ) -> Rollout:
        settings = DeploySettings.from_settings(self.settings, strategy=strategy)
        if version is None:
            version = self.registry.get(number) if number is not None else None
            version = version or self.registry.latest_approved()
        require_approved(version)
        previous = self.status().version
        record = DeploymentRecord(
            stage=self.label,
            endpoint=self.endpoint,
            version=version.version,
            package_arn=version.arn,
            kind=kind,
            strategy=settings.strategy,
            outcome=DEPLOYED,
            previous_version=previous,
            approval=approval,
            gates=gates or [],
        )
        try:
            message = self._rollout(version, settings)
        except MlopsError as error:
            self.store.add(_with_outcome(record, f"failed: {error}"))
            raise
        self.store.add(record)
        return Rollout(record, message)

    def still_approved(self, version: ModelVersion) -> Callable[[], ContextManager]:
        """A guard for the moment traffic switches: holds the registry's lock (so no
        approval change lands meanwhile) and refuses unless ``version`` is still Approved."""

        @contextlib.contextmanager
        def guard() -> Iterator[None]:
            with self.registry.locked():
                try:
                    current = self.registry.describe(version.arn)
                except (ClientError, BotoCoreError) as error:
                    raise api_error(f"Re-checking version {version.version}", error) from error
                if current.status != APPROVED:
                    raise MlopsError(
                        f"Model version {version.version} became {current.status} while it was "
                        f"being deployed ({current.approval_description or 'no reason given'}); "
                        f"the deploy stopped before the version took traffic on {self.endpoint}."
                    )
                yield

        return guard

    def rollback(self, decision: dict | None = None) -> Rollout:
        """``decision``: who rolled back and why, recorded like a promotion's approval."""
        target = self.store.rollback_target()
        version = self.registry.describe(target.package_arn)
        # Blue/green all at once: the old version serves until the previous one answers.
        return self.deploy(
            version=version, strategy="all-at-once", kind="rollback", approval=decision
        )

    def history(self) -> list[DeploymentRecord]:
        return self.store.records()

    def record_blocked(self, record: DeploymentRecord) -> None:
        self.store.add(record)

    def not_serving(self, detail: str) -> MlopsError:
        """The error for a stage with nothing to answer: its endpoint and the command."""
        return MlopsError(
            f"The {self.label} endpoint {self.endpoint} is not serving ({detail}): deploy a "
            f"version with `invoke deploy{f' --stage {self.stage}' if self.stage else ''}` first."
        )

    def serving_version(self) -> ModelVersion:
        status = self.status()
        if not status.running or not status.package_arn:
            raise self.not_serving(status.detail)
        return self.registry.describe(status.package_arn)

    def predict(
        self, data: Path, inference_id_column: str | None = None
    ) -> tuple[predicting.Predictions, int]:
        """Send the file's rows; with ``inference_id_column``, each row alone with that
        column's value as its InferenceId (recorded in the data capture)."""
        version = self.serving_version()
        invoke = self.invoker()
        features, target = self.registry.features(version)
        rows, actual = predicting.read_rows(data, features, target)
        ids = predicting.inference_ids(data, inference_id_column) if inference_id_column else None
        values = predicting.predict(rows, invoke, inference_ids=ids)
        return predicting.Predictions(values, actual, target, features), version.version


def _with_outcome(record: DeploymentRecord, outcome: str) -> DeploymentRecord:
    from dataclasses import replace

    return replace(record, outcome=outcome)
