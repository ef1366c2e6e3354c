"""Pages from Jinja2 templates, escaped by default: every value a page shows comes from a
record, an event or a user (reasons, S3 keys, failure messages), never trusted markup."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

STATUS_CLASS = {
    "Succeeded": "ok",
    "Approved": "ok",
    "Executing": "running",
    "Starting": "running",
    "Stopping": "running",
    "PendingManualApproval": "pending",
    "Failed": "bad",
    "Rejected": "bad",
    "Stopped": "muted",
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s"


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: Any, digits: int = 4) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("pipelines.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a misspelt name fails the page's test, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=duration, when=when, number=number)
    env.globals["status_class"] = lambda status: STATUS_CLASS.get(str(status), "")
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
