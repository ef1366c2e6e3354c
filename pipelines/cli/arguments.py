"""Typed command-line values, checked before a task does any work."""

from __future__ import annotations

import math

from pipelines.core.errors import MlopsError


def whole_number(value: object, flag: str, *, minimum: int = 1) -> int:
    """``--version 3`` / ``--limit 20``: a clear error instead of a traceback for ``abc``."""
    text = str(value).strip()
    try:
        number = int(text)
    except ValueError:
        raise MlopsError(f"{flag} must be a whole number, got {text!r}.") from None
    if number < minimum:
        raise MlopsError(f"{flag} must be at least {minimum}, got {number}.")
    return number


def optional_whole_number(value: object | None, flag: str, *, minimum: int = 1) -> int | None:
    return None if value is None else whole_number(value, flag, minimum=minimum)


def positive_seconds(value: object, flag: str) -> float:
    """``--timeout 600``: a positive, finite number of seconds."""
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        raise MlopsError(f"{flag} must be a number of seconds, got {text!r}.") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise MlopsError(f"{flag} must be a positive number of seconds, got {text}.")
    return seconds
