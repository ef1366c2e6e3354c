"""The typed view of the Terraform outputs that every later task reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from pipelines.core.errors import MlopsError


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

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> InfraConfig:
        """Accept either plain values or ``terraform output -json`` entries."""
        values = {
            name: (entry["value"] if isinstance(entry, Mapping) and "value" in entry else entry)
            for name, entry in outputs.items()
        }
        if not values:
            raise MlopsError(
                "The infrastructure has no outputs yet: nothing has been applied. "
                "Run `invoke infra-up` first."
            )
        known = {f.name: f for f in fields(cls)}
        required = [
            name for name, f in known.items() if f.default is not None or name in _NAMED_OUTPUTS
        ]
        missing = [name for name in required if not values.get(name)]
        if missing:
            raise MlopsError(
                "The Terraform outputs lack " + ", ".join(missing) + ". Re-run `invoke infra-up` "
                "so the state matches infra/outputs.tf."
            )
        return cls(**{name: values.get(name) for name in known})

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
