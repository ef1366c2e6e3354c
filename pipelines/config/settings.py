"""Project settings, read once at the edge (tasks, tests, benchmarks) and passed down.

Precedence: explicit arguments, then MLOPS_* environment variables, then the
``mlops`` section of invoke.yaml, then the defaults below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipelines.config.pipeline_catalog import PipelineCatalog
from pipelines.core.errors import MlopsError
from pipelines.core.files import write_privately

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EMULATOR_PORT = 4569
DEFAULT_ENDPOINT_PORT = 8765


@dataclass(frozen=True)
class Settings:
    """Where the project lives and how its local services are reached."""

    root: Path = PROJECT_ROOT
    name_prefix: str = "mlops"
    state_dir: Path = PROJECT_ROOT / ".mlops"
    emulator_port: int = DEFAULT_EMULATOR_PORT
    provider_mirror: Path | None = None
    state_bucket: str | None = None
    studio_domain_id: str | None = None
    endpoint_port: int = DEFAULT_ENDPOINT_PORT
    deploy: dict[str, Any] = field(default_factory=dict)
    # Model monitoring (mlops.monitoring; pipelines/config/monitoring_settings.py checks it).
    monitoring: dict[str, Any] = field(default_factory=dict)
    # Promotion gates (mlops.promotion), checked by pipelines.promotion.config.
    promotion: dict[str, Any] = field(default_factory=dict)
    # Retention (mlops.retention in invoke.yaml): how many endpoint releases and
    # execution sandboxes the state folder keeps; older ones are pruned.
    keep_releases: int = 3
    keep_execution_sandboxes: int = 20
    # Run local jobs on the host interpreter instead of the container's runtime profile.
    runtime_host: bool = False
    # Where runtime profile environments are built; default <state_dir>/runtimes.
    runtime_cache_dir: Path | None = None
    # The repository's pipelines (mlops.pipelines) and the default one (mlops.default_pipeline).
    pipelines: PipelineCatalog = field(
        default_factory=lambda: PipelineCatalog.load(None, None, PROJECT_ROOT)
    )

    @property
    def runtime_cache(self) -> Path:
        return self.runtime_cache_dir or self.state_dir / "runtimes"

    @property
    def infra_dir(self) -> Path:
        return self.root / "infra"

    @property
    def emulator_dir(self) -> Path:
        return self.state_dir / "emulator"

    @classmethod
    def load(
        cls,
        config: Mapping[str, Any] | None = None,
        *,
        root: Path = PROJECT_ROOT,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from invoke's ``mlops`` config section and the environment."""
        environ = os.environ if environ is None else environ
        config = config or {}
        emulator = config.get("emulator") or {}
        terraform = config.get("terraform") or {}
        aws = config.get("aws") or {}
        endpoint = config.get("endpoint") or {}
        retention = config.get("retention") or {}
        runtime = config.get("runtime") or {}

        cache_dir = environ.get("MLOPS_RUNTIME_CACHE") or runtime.get("cache_dir")
        state_dir = Path(environ.get("MLOPS_STATE_DIR") or config.get("state_dir") or ".mlops")
        mirror = environ.get("MLOPS_TF_PROVIDER_MIRROR") or terraform.get("provider_mirror")
        settings = cls(
            root=root,
            name_prefix=str(config.get("name_prefix") or "mlops"),
            state_dir=state_dir if state_dir.is_absolute() else root / state_dir,
            emulator_port=_port(
                environ.get("MLOPS_EMULATOR_PORT") or emulator.get("port") or DEFAULT_EMULATOR_PORT
            ),
            provider_mirror=Path(mirror) if mirror else None,
            state_bucket=environ.get("MLOPS_TF_STATE_BUCKET") or terraform.get("state_bucket"),
            studio_domain_id=environ.get("MLOPS_STUDIO_DOMAIN_ID") or aws.get("studio_domain_id"),
            endpoint_port=_port(
                environ.get("MLOPS_ENDPOINT_PORT") or endpoint.get("port") or DEFAULT_ENDPOINT_PORT
            ),
            deploy=dict(config.get("deploy") or {}),
            monitoring=dict(config.get("monitoring") or {}),
            promotion=dict(config.get("promotion") or {}),
            keep_releases=_count(retention.get("endpoint_releases", 3), "endpoint_releases"),
            keep_execution_sandboxes=_count(
                retention.get("execution_sandboxes", 20), "execution_sandboxes"
            ),
            runtime_host=_flag(environ.get("MLOPS_RUNTIME_HOST", runtime.get("host", False))),
            runtime_cache_dir=Path(cache_dir) if cache_dir else None,
            pipelines=PipelineCatalog.load(
                config.get("pipelines"),
                environ.get("MLOPS_DEFAULT_PIPELINE") or config.get("default_pipeline"),
                root,
            ),
        )
        # Every task, and the git hook and agent, load their settings first: from here
        # on what they and the servers, workers and Terraform runs they start write
        # is private (pipelines.core.files).
        write_privately(settings.state_dir)
        return settings

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def with_pipeline(self, name: str | None) -> Settings:
        """These settings acting on ``--pipeline name`` (a listed name or a module source)."""
        return replace(self, pipelines=self.pipelines.selecting(name, self.root))


def _port(value: object) -> int:
    try:
        port = int(str(value))
    except ValueError:
        raise MlopsError(f"A port must be a number, got {value!r}.") from None
    if not 1024 <= port <= 65535:
        raise MlopsError(f"A port must be between 1024 and 65535, got {port}.")
    return port


def _count(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 1:
        raise MlopsError(
            f"mlops.retention.{name} must be a whole number of at least 1, got {value!r}."
        )
    return number


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off", "none", "null"):
        return False
    raise MlopsError(f"Expected true or false, got {value!r}.")
