"""The typed view of the Terraform outputs that every later task reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pipelines.config.pipeline_catalog import check_key
from pipelines.core.errors import MlopsError

# The key a state applied before per-pipeline outputs is read under, unless the caller
# names its first pipeline: the catalog's key when invoke.yaml lists none.
DEFAULT_PIPELINE_KEY = "main"
# SageMaker's limit for endpoint and monitoring schedule names.
_NAME_LIMIT = 63
# The per-pipeline names (outputs.tf's `pipelines`) that for_pipeline swaps in.
_PIPELINE_FIELDS = (
    "pipeline_name",
    "base_job_prefix",
    "model_package_group_name",
    "model_package_group_arn",
    "endpoint_names",
    "monitoring_schedule_names",
)


@dataclass(frozen=True)
class InfraConfig:
    """What the pipeline needs to know about the applied infrastructure.

    Built from ``terraform output -json`` alone: no AWS call is needed.
    """

    region: str
    account_id: str
    environment: str
    name_prefix: str
    bucket_name: str
    bucket_arn: str
    execution_role_arn: str
    model_package_group_name: str
    model_package_group_arn: str
    pipeline_name: str
    kms_key_arn: str | None = None
    code_repository_name: str | None = None
    code_repository_clone_url_http: str | None = None
    code_repository_clone_url_ssh: str | None = None
    automation_queue_url: str | None = None  # the local automation agent's queue
    # Names Terraform gives (infra/outputs.tf): the only place they are spelled. Required
    # from the outputs; a config built by hand (tests) may leave out what it does not use.
    name: str | None = None  # <name_prefix>-<environment>, the start of every resource name
    endpoint_names: dict[str, str] | None = None  # by stage: default, staging, prod
    monitoring_schedule_names: dict[str, str] | None = None  # same keys as endpoint_names
    # EventBridge rules of the automation module by purpose; empty without automation.
    automation_rule_names: dict[str, str] | None = None
    # Every pipeline's names by key (outputs.tf's `pipelines`): pipeline_name,
    # base_job_prefix, model_package_group_name/_arn, endpoint_names,
    # monitoring_schedule_names. The top-level fields above are one pipeline's:
    # `pipeline_key`'s (the first listed, unless for_pipeline chose another).
    pipelines: dict[str, dict[str, Any]] | None = None
    pipeline_key: str | None = None
    base_job_prefix: str | None = None  # its jobs' and artifacts' prefix (= pipeline_name)
    # True: the pipeline is not in Terraform's outputs (named on the command line, not in
    # invoke.yaml): its names are derived as Terraform would give them, and its model
    # package group is not Terraform's (the local stack provides it).
    derived: bool = False

    @classmethod
    def from_outputs(
        cls, outputs: Mapping[str, Any], *, first_pipeline: str | None = None
    ) -> InfraConfig:
        """Accept either plain values or ``terraform output -json`` entries.

        ``first_pipeline`` (the repository's first listed pipeline) keys the one pipeline
        of a state applied before the ``pipelines`` output existed."""
        values = {
            name: (entry["value"] if isinstance(entry, Mapping) and "value" in entry else entry)
            for name, entry in outputs.items()
        }
        if not values:
            raise MlopsError(
                "The infrastructure has no outputs yet: nothing has been applied. "
                "Run `invoke infra-up` first."
            )
        known = [f.name for f in fields(cls) if f.name not in _COMPUTED]
        required = [
            f.name
            for f in fields(cls)
            if f.name in known and (f.default is not None or f.name in _NAMED_OUTPUTS)
        ]
        missing = [name for name in required if not values.get(name)]
        if missing:
            raise MlopsError(
                "The Terraform outputs lack " + ", ".join(missing) + ". Re-run `invoke infra-up` "
                "so the state matches infra/outputs.tf."
            )
        config = cls(**{name: values.get(name) for name in known})
        pipelines = values.get("pipelines")
        if not pipelines:
            # Applied before there were several pipelines: the one is the first, with the
            # names the first keeps.
            top = {name: getattr(config, name) for name in _PIPELINE_FIELDS}
            top["base_job_prefix"] = config.pipeline_name
            key = first_pipeline or DEFAULT_PIPELINE_KEY
            return replace(
                config, pipelines={key: top}, pipeline_key=key, base_job_prefix=config.pipeline_name
            )
        # The first pipeline is the one whose names are also the top-level outputs
        # (Terraform's map is ordered by key, not by invoke.yaml).
        key = next(
            (
                k
                for k, names in pipelines.items()
                if names.get("pipeline_name") == config.pipeline_name
            ),
            first_pipeline or next(iter(pipelines)),
        )
        return replace(
            config,
            pipelines={k: dict(v) for k, v in pipelines.items()},
            pipeline_key=key,
            base_job_prefix=pipelines.get(key, {}).get("base_job_prefix") or config.pipeline_name,
        )

    def for_pipeline(self, key: str | None) -> InfraConfig:
        """This stack's config as pipeline ``key`` sees it: its pipeline name, job prefix,
        model package group, endpoints and schedules. None, or the first pipeline: itself.

        A key Terraform does not list (a pipeline named on the command line) gets the
        names Terraform would give it, ``<name>-<key>-pipeline``, ``<name>-<key>-models``,
        ..., and ``derived=True``: its group is not Terraform's."""
        if key is None or key == self.pipeline_key:
            return self
        listed = (self.pipelines or {}).get(key)
        if listed is not None:
            names = {name: listed.get(name) for name in _PIPELINE_FIELDS}
            return replace(self, **names, pipeline_key=key, derived=False)
        return replace(self, **self.derived_names(key), pipeline_key=key, derived=True)

    def derived_names(self, key: str) -> dict[str, Any]:
        """The names infra/main.tf gives a pipeline after the first (its local.pipeline_list)."""
        check_key(key, "--pipeline")
        if not self.name:
            raise MlopsError(
                "The Terraform outputs lack name. Re-run `invoke infra-up` so the state "
                "matches infra/outputs.tf."
            )
        stem = f"{self.name}-{key}"
        endpoints = {
            "default": f"{stem}-endpoint",
            "staging": f"{stem}-staging-endpoint",
            "prod": f"{stem}-prod-endpoint",
        }
        schedules = {stage: f"{name}-data-quality" for stage, name in endpoints.items()}
        too_long = [n for n in (*endpoints.values(), *schedules.values()) if len(n) > _NAME_LIMIT]
        if too_long:
            raise MlopsError(
                f"Pipeline {key!r} would name {too_long[0]} ({len(too_long[0])} characters); "
                f"SageMaker allows {_NAME_LIMIT}: choose a shorter pipeline name."
            )
        group = f"{stem}-models"
        partition = self.bucket_arn.split(":")[1] if self.bucket_arn.count(":") > 1 else "aws"
        return {
            "pipeline_name": f"{stem}-pipeline",
            "base_job_prefix": f"{stem}-pipeline",
            "model_package_group_name": group,
            "model_package_group_arn": (
                f"arn:{partition}:sagemaker:{self.region}:{self.account_id}:"
                f"model-package-group/{group}"
            ),
            "endpoint_names": endpoints,
            "monitoring_schedule_names": schedules,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def bucket_uri(self) -> str:
        return f"s3://{self.bucket_name}"

    def endpoint_name(self, stage: str | None = None) -> str:
        """The environment's endpoint (no stage), or locally a stage's own beside it."""
        return self._named("endpoint_names", stage)

    def monitoring_schedule_name(self, stage: str | None = None) -> str:
        return self._named("monitoring_schedule_names", stage)

    def _named(self, output: str, stage: str | None) -> str:
        names = getattr(self, output) or {}
        key = stage or "default"
        if key not in names:
            raise MlopsError(
                f"The Terraform outputs have no {output}[{key!r}]. Re-run `invoke infra-up` "
                "so the state matches infra/outputs.tf."
            )
        return str(names[key])


# Outputs with no default above that are still required when read from Terraform.
_NAMED_OUTPUTS = ("name", "endpoint_names", "monitoring_schedule_names")
# Fields from_outputs works out rather than reads (`pipelines` may be absent: older states).
_COMPUTED = frozenset({"pipelines", "pipeline_key", "base_job_prefix", "derived"})
