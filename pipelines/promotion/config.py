"""The promotion gates' settings (``mlops.promotion`` in invoke.yaml), checked up front."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from pipelines.errors import MlopsError
from pipelines.settings import Settings

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

    def __post_init__(self) -> None:
        for item in fields(self):
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
