"""Which model server answers a request: the endpoint's routing table, read from its state file.

A deploy rewrites the endpoint's state file atomically; every model server worker re-reads
it when it changes (:class:`RouteTable`). The file names the *primary* server (its private
port, ``upstream_port``), whose workers accept the endpoint's public connections, and during
a canary or linear shift weighted ``variants``: each request on the public port lands on
one of them by weight (:func:`pick_variant`), and a request drawn for another server is
forwarded to that server's private port.

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
        return [v for v in variants if v.get("port") and float(v.get("weight", 0)) > 0]
    if state.get("upstream_port"):
        return [{"port": state["upstream_port"], "version": state.get("version"), "weight": 1.0}]
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

    ``own_port`` is the server's private port: the server is the primary when the state
    names that port as ``upstream_port``. A half-written file cannot be seen (the deploy
    renames a complete one into place); an unreadable one keeps the last good view.
    """

    state_file: Path
    own_port: int
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
        return self.state.get("upstream_port") == self.own_port

    def choose(self, draw: float) -> int | None:
        """The private port of the server that should answer, or None for this one."""
        if len(self.variants) < 2:
            return None
        variant = pick_variant(self.variants, draw)
        if variant is None or variant["port"] == self.own_port:
            return None
        return int(variant["port"])
