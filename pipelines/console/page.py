"""What a page function returns (its own module: the page modules import it, and ``pages``
imports them, so it cannot live in ``pages`` without an import cycle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Page:
    title: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    section: str = "runs"  # the navigation entry it belongs to
    refresh_seconds: int | None = None  # while something it shows is still changing
