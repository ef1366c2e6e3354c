"""Which model server answers a request: the endpoint's routing table, read from its state file.

A deploy rewrites the endpoint's state file atomically; every model server worker re-reads
it when it changes (:class:`RouteTable`). The file names the *primary* server (its private
Unix socket, ``upstream``, and its pid, ``model_server_pid``), whose workers accept the
endpoint's public connections, and during a canary or linear shift weighted ``variants``:
each request on the public port lands on one of them by weight (:func:`pick_variant`), and
a request drawn for another server is forwarded to that server's socket. Socket paths are
relative to the endpoint's folder, where every server runs.

Runs inside the model server, in the model's own runtime (Python 3.9 for the 1.2-1 image):
standard library only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def variants_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The model servers a state file routes to, each with a weight: the ``variants`` of a
    traffic shift (canary, linear), or the one upstream otherwise."""
    variants = state.get("variants")
    if variants:
        return [v for v in variants if v.get("address") and float(v.get("weight", 0)) > 0]
    if state.get("upstream"):
        return [{"address": state["upstream"], "version": state.get("version"), "weight": 1.0}]
    return []


def pick_variant(variants: list[dict[str, Any]], draw: float) -> dict[str, Any] | None:
    """The variant that a uniform ``draw`` in [0, 1) lands on, by weight: a variant of
    weight 0.1 among weights summing to 1 takes draws in its 10 % slice. Pure, so every
    worker process picks the same way."""
    total = sum(float(v["weight"]) for v in variants)
    if total <= 0:
        return None
    point = draw * total
    for variant in variants:
        point -= float(variant["weight"])
        if point < 0:
            return variant
    return variants[-1]


@dataclass
class RouteTable:
    """One model server's view of the endpoint's state file, re-read when it changes.

    ``own_address`` is the server's private socket: the server is the primary when the
    state names that socket as ``upstream`` (and, when ``server_pid`` is given, this server
    as ``model_server_pid``: a server started in place of a dead one binds the same socket).
    A half-written file cannot be seen (the deploy renames a complete one into place); an
    unreadable one keeps the last good view.
    """

    state_file: Path
    own_address: str
    server_pid: int | None = None
    state: dict[str, Any] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=list)
    _stamp: tuple[int, int] | None = None

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when it did."""
        try:
            info = os.stat(self.state_file)
        except FileNotFoundError:
            changed = self._stamp is not None
            self._stamp, self.state, self.variants = None, {}, []
            return changed
        stamp = (info.st_mtime_ns, info.st_ino)
        if stamp == self._stamp:
            return False
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return False
        self._stamp, self.state, self.variants = stamp, state, variants_of(state)
        return True

    @property
    def primary(self) -> bool:
        """This server accepts the endpoint's public connections."""
        if self.state.get("upstream") != self.own_address:
            return False
        named = self.state.get("model_server_pid")
        return self.server_pid is None or named is None or named == self.server_pid

    def choose(self, draw: float) -> str | None:
        """The socket of the server that should answer, or None for this one."""
        if len(self.variants) < 2:
            return None
        variant = pick_variant(self.variants, draw)
        if variant is None or variant["address"] == self.own_address:
            return None
        return str(variant["address"])


def process_alive(pid: int | None) -> bool:
    """Whether ``pid`` names a live process (None: nothing to watch, so alive). A zombie
    (killed, not yet reaped by its parent) is dead: it serves nothing."""
    if pid is None:
        return True
    if os.path.isdir("/proc/self"):  # Linux: the state letter follows the command's ")"
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (FileNotFoundError, ProcessLookupError):
            return False
        except (OSError, IndexError):
            pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
