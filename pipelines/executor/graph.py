"""The step graph of a definition: what each step waits for, and in which branch it is.

Edges come from ``Get`` references to other steps (properties and property files),
from ``DependsOn``, and from Condition steps to the steps of their IfSteps and
ElseSteps. A step inside a branch runs only when that branch is taken.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.core.errors import MlopsError
from pipelines.executor.expressions import referenced_steps


class DefinitionError(MlopsError):
    """The definition is not a valid pipeline (duplicate names, dangling references, cycles)."""


@dataclass(frozen=True)
class StepNode:
    name: str
    type: str
    spec: Mapping[str, Any]
    condition: str | None = None  # the Condition step whose branch holds this step
    branch: bool | None = None  # True: IfSteps, False: ElseSteps

    @property
    def arguments(self) -> Mapping[str, Any]:
        return self.spec.get("Arguments", {})


@dataclass(frozen=True)
class PipelineGraph:
    steps: Mapping[str, StepNode]
    dependencies: Mapping[str, frozenset[str]]

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> PipelineGraph:
        steps: dict[str, StepNode] = {}
        for node in _flatten(definition.get("Steps", [])):
            if node.name in steps:
                raise DefinitionError(f"Two steps are named {node.name!r}.")
            steps[node.name] = node

        dependencies: dict[str, frozenset[str]] = {}
        for node in steps.values():
            if node.type == "Condition":
                refs = referenced_steps(node.arguments.get("Conditions", []))
            else:
                refs = referenced_steps(node.arguments) | referenced_steps(
                    node.spec.get("PropertyFiles", [])
                )
            refs |= set(node.spec.get("DependsOn", []))
            if node.condition is not None:
                refs.add(node.condition)
            unknown = sorted(refs - set(steps))
            if unknown:
                raise DefinitionError(
                    f"Step {node.name!r} refers to unknown step(s): {', '.join(unknown)}."
                )
            if node.name in refs:
                raise DefinitionError(f"Step {node.name!r} depends on itself.")
            dependencies[node.name] = frozenset(refs)

        graph = cls(steps=steps, dependencies=dependencies)
        graph.topological_order()  # raises on cycles
        return graph

    def dependents(self, name: str) -> set[str]:
        return {step for step, deps in self.dependencies.items() if name in deps}

    def topological_order(self) -> list[str]:
        """Steps in an order that respects every dependency; definition order breaks ties."""
        remaining = {name: set(deps) for name, deps in self.dependencies.items()}
        order: list[str] = []
        while remaining:
            ready = [name for name in self.steps if name in remaining and not remaining[name]]
            if not ready:
                raise DefinitionError(
                    "The steps depend on each other in a cycle: " + ", ".join(sorted(remaining))
                )
            for name in ready:
                order.append(name)
                del remaining[name]
                for deps in remaining.values():
                    deps.discard(name)
        return order


def _flatten(
    specs: list[Mapping[str, Any]], condition: str | None = None, branch: bool | None = None
) -> Iterator[StepNode]:
    for spec in specs:
        if "Name" not in spec or "Type" not in spec:
            raise DefinitionError(f"A step lacks a Name or a Type: {str(spec)[:200]}")
        node = StepNode(spec["Name"], spec["Type"], spec, condition, branch)
        yield node
        if node.type == "Condition":
            yield from _flatten(node.arguments.get("IfSteps", []), node.name, True)
            yield from _flatten(node.arguments.get("ElseSteps", []), node.name, False)
