"""What page and document functions return, in a module of its own: the page modules
import it, and ``pages`` imports them (so ``pages`` cannot be where they import it from
without a cycle)."""

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


@dataclass(frozen=True)
class Document:
    """A file served as it is, with its own Content-Security-Policy (``pages.DOCUMENTS``)."""

    body: str
    policy: str
