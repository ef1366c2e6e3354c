"""What a page function returns: the template and what it shows (``pages`` holds the table)."""

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
