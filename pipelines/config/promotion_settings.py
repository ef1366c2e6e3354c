"""The promotion gates' settings (``mlops.promotion`` in invoke.yaml), checked up front."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError

_GROUP_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:model-package-group/[a-zA-Z0-9-]{1,63}$"
)
_LIMITS: dict[str, tuple[float, float]] = {
    "metric_tolerance": (0.0, 1e6),
    "load_requests": (1, 100_000),
    "load_clients": (1, 64),
    "p99_slo_ms": (0.0, 600_000.0),
}


@dataclass(frozen=True)
class PromotionSettings:
    metric_tolerance: float = 0.01
    load_requests: int = 200
    load_clients: int = 4
    p99_slo_ms: float = 500.0
    # AWS: the model package group (ARN) of the environment that trains, which the stage
    # environments deploy from; None: each environment's own group.
    source_model_package_group: str | None = None

    def __post_init__(self) -> None:
        group = self.source_model_package_group
        if group is not None and not _GROUP_ARN.match(str(group)):
            raise MlopsError(
                "promotion.source_model_package_group in invoke.yaml must be a model package "
                f"group ARN (arn:aws:sagemaker:REGION:ACCOUNT:model-package-group/NAME), got "
                f"{group!r}."
            )
        for item in fields(self):
            if item.name not in _LIMITS:
                continue
            value = getattr(self, item.name)
            low, high = _LIMITS[item.name]
            whole = item.type in ("int", int)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or (whole and not isinstance(value, int)) or not low <= value <= high:
                kind = "a whole number" if whole else "a number"
                raise MlopsError(
                    f"promotion.{item.name} in invoke.yaml must be {kind} from {low:g} to "
                    f"{high:g}, got {value!r}."
                )
        if self.load_clients > self.load_requests:
            raise MlopsError(
                f"promotion.load_clients ({self.load_clients}) cannot exceed "
                f"promotion.load_requests ({self.load_requests})."
            )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PromotionSettings:
        values = {**settings.promotion, **{k: v for k, v in overrides.items() if v is not None}}
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise MlopsError(
                f"Unknown promotion setting(s) in invoke.yaml: {', '.join(unknown)}; "
                f"known: {', '.join(f.name for f in fields(cls))}."
            )
        return cls(**values)
