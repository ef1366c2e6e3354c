"""A run's step graph, laid out left to right for an inline SVG (the pages run no script).

Pure: the execution's own definition JSON and its step records in, boxes and arrows out;
the template ``graph.svg.html`` draws them. The edges are the executor's (``Get``
references, ``DependsOn``, a condition's branches), so the picture is what ran. Layers are
longest paths from the start; inside a layer a step sits near the steps it waits for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.core.records import FINISHED, StepRun
from pipelines.executor.graph import PipelineGraph

NODE_WIDTH = 190
NODE_HEIGHT = 58
COLUMN_GAP = 30
ROW_GAP = 18
MARGIN = 8
LABEL_CHARACTERS = 25  # what fits in a box; the tooltip has the whole name

# (fill, stroke) per status: the same colours as the page's status text.
COLOURS = {
    "ok": ("#ecfdf3", "#067647"),
    "bad": ("#fef3f2", "#b42318"),
    "running": ("#eff8ff", "#175cd3"),
    "pending": ("#fffaeb", "#b54708"),
    "muted": ("#f8f9fb", "#98a2b3"),
}
STATUS_CLASS = {
    "Succeeded": "ok",
    "Failed": "bad",
    "Executing": "running",
    "Starting": "running",
    "Stopping": "running",
    "Stopped": "pending",
}


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    status: str
    status_class: str
    layer: int
    row: int
    x: int
    y: int
    lines: tuple[str, ...]  # under the name: status and duration, then cache or attempt
    tooltip: str

    @property
    def label(self) -> str:
        if len(self.name) <= LABEL_CHARACTERS:
            return self.name
        return self.name[: LABEL_CHARACTERS - 1] + "…"

    @property
    def fill(self) -> str:
        return COLOURS[self.status_class][0]

    @property
    def stroke(self) -> str:
        return COLOURS[self.status_class][1]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # "data" (a Get reference), "depends" (DependsOn), "if" or "else" (a branch)
    path: str  # the SVG path, from the source's right side to the target's left side
    middle: tuple[int, int]  # where a branch's label goes
    span: int  # layers crossed: a longer edge is drawn fainter, as it may pass behind boxes

    @property
    def label(self) -> str:
        return {"if": "true", "else": "false"}.get(self.kind, "")


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def edge_pairs(self) -> set[tuple[str, str]]:
        return {(e.source, e.target) for e in self.edges}


def layers(graph: PipelineGraph) -> dict[str, int]:
    """Each step's longest distance from a step that waits for nothing."""
    layer: dict[str, int] = {}
    for name in graph.topological_order():
        layer[name] = 1 + max((layer[d] for d in graph.dependencies[name]), default=-1)
    return layer


def _rows(graph: PipelineGraph, layer: dict[str, int]) -> dict[str, int]:
    """Rows inside each layer: by the mean row of a step's predecessors (fewer crossings),
    then in definition order."""
    order = {name: index for index, name in enumerate(graph.steps)}
    row: dict[str, int] = {}
    for depth in range(max(layer.values(), default=-1) + 1):
        here = [name for name in graph.steps if layer[name] == depth]

        def weight(name: str) -> tuple[float, int]:
            before = [row[d] for d in graph.dependencies[name]]
            return (sum(before) / len(before) if before else 0.0, order[name])

        for index, name in enumerate(sorted(here, key=weight)):
            row[name] = index
    return row


def _edge_kind(graph: PipelineGraph, source: str, target: str) -> str:
    node = graph.steps[target]
    if node.condition == source:
        return "if" if node.branch else "else"
    return "depends" if source in node.spec.get("DependsOn", []) else "data"


def _lines(step: StepRun | None, status: str, duration: float | None) -> tuple[str, ...]:
    first = status + (f" · {_seconds(duration)}" if duration is not None else "")
    if step is None:
        return (first,)
    if step.cache_hit_of:
        return first, f"cached from {step.cache_hit_of[:12]}"
    if step.attempt > 1:
        return first, f"attempt {step.attempt}"
    return first, step.type


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes} min {rest:02d} s"


def _tooltip(name: str, kind: str, step: StepRun | None, status: str) -> str:
    parts = [f"{name} ({kind})", status]
    if step is not None:
        if step.duration is not None:
            parts.append(f"duration {_seconds(step.duration)}")
        if step.cache_hit_of:
            parts.append(f"cache hit: reused execution {step.cache_hit_of}")
        if step.attempt > 1:
            parts.append(f"attempt {step.attempt}")
        if step.failure_reason:
            parts.append(step.failure_reason)
    return "\n".join(parts)


def layout(
    definition: Mapping[str, Any],
    steps: list[StepRun],
    *,
    finished: bool = True,
    now: float | None = None,
) -> Graph:
    """The graph of ``definition`` with each step's record; a step with no record is
    "Not run" in a finished execution, "Pending" in one still running. ``now`` gives a
    running step its duration so far. Raises ``DefinitionError`` for a broken definition."""
    graph = PipelineGraph.from_definition(definition)
    by_name = {step.name: step for step in steps}
    layer = layers(graph)
    row = _rows(graph, layer)
    nodes: list[Node] = []
    for name, spec in graph.steps.items():
        step = by_name.get(name)
        status = step.status if step else ("Not run" if finished else "Pending")
        duration = step.duration if step else None
        if step is not None and step.status not in FINISHED and step.started_at and now:
            duration = now - step.started_at
        nodes.append(
            Node(
                name=name,
                type=spec.type,
                status=status,
                status_class=STATUS_CLASS.get(status, "muted"),
                layer=layer[name],
                row=row[name],
                x=MARGIN + layer[name] * (NODE_WIDTH + COLUMN_GAP),
                y=MARGIN + row[name] * (NODE_HEIGHT + ROW_GAP),
                lines=_lines(step, status, duration),
                tooltip=_tooltip(name, spec.type, step, status),
            )
        )
    placed = {node.name: node for node in nodes}
    edges = []
    for target in graph.steps:
        for source in sorted(graph.dependencies[target], key=lambda s: placed[s].row):
            start, end = placed[source], placed[target]
            x1, y1 = start.x + NODE_WIDTH, start.y + NODE_HEIGHT // 2
            x2, y2 = end.x, end.y + NODE_HEIGHT // 2
            bend = (x2 - x1) // 2
            path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 6},{y2}"
            kind = _edge_kind(graph, source, target)
            middle = ((x1 + x2) // 2, (y1 + y2) // 2 - 4)
            edges.append(Edge(source, target, kind, path, middle, end.layer - start.layer))
    width = 2 * MARGIN + (max(layer.values(), default=0) + 1) * (NODE_WIDTH + COLUMN_GAP)
    height = 2 * MARGIN + (max(row.values(), default=0) + 1) * (NODE_HEIGHT + ROW_GAP)
    return Graph(tuple(nodes), tuple(edges), width - COLUMN_GAP, height - ROW_GAP)
