"""Advisory file locks (flock) that serialise work on one state folder across processes.

flock rather than a pid file: the kernel releases the lock when its holder exits,
kill -9 included, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipelines.core.errors import MlopsError


class LockTimeout(MlopsError):
    """Another process held the lock for longer than we were willing to wait."""


@contextlib.contextmanager
def exclusive(
    path: Path,
    *,
    timeout: float | None = None,
    on_wait: Callable[[], None] | None = None,
    what: str = "",
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block; wait for it (up to ``timeout``).

    ``on_wait`` is called once, when the lock is taken by someone else, so a task can
    say why it is waiting instead of looking hung.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() > deadline:
                        raise LockTimeout(
                            f"Gave up after {timeout:.0f} s waiting for {what or path}: "
                            "another task still holds it."
                        ) from None
                    time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
