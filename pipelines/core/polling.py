"""Polling with back-off: one loop for every "wait until it is done" in the project."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class PollSchedule:
    """Look after ``first`` seconds, then back off by ``factor`` up to ``ceiling`` while
    nothing changes; a change brings the interval back to ``first``."""

    first: float
    ceiling: float
    factor: float = 1.5

    def next(self, interval: float, changed: bool) -> float:
        return self.first if changed else min(interval * self.factor, self.ceiling)


class PollTimeout(Exception):
    """The deadline passed; ``last`` is what the final look saw."""

    def __init__(self, last: object) -> None:
        super().__init__("deadline passed")
        self.last = last


def poll(
    look: Callable[[], T],
    done: Callable[[T], bool],
    schedule: PollSchedule,
    *,
    timeout: float | None = None,
    progress: Callable[[T], Hashable] = lambda _: None,
    on_look: Callable[[T], None] | None = None,
) -> T:
    """Call ``look`` until ``done`` holds; raise :class:`PollTimeout` past ``timeout``.

    ``progress`` maps a look to what counts as a change (a change resets the back-off);
    ``on_look`` sees every look (a live view redraws on it)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = schedule.first
    last: Hashable = None
    while True:
        seen = look()
        if on_look is not None:
            on_look(seen)
        if done(seen):
            return seen
        if deadline is not None and time.monotonic() + interval > deadline:
            raise PollTimeout(seen)
        time.sleep(interval)
        current = progress(seen)
        interval = schedule.next(interval, current != last)
        last = current
