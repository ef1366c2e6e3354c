"""The command line: one invoke Collection, one module per area.

Every task is thin: it parses its arguments, calls one function of the package
(``pipelines.actions`` or the area's own module) and prints the result.
"""

from __future__ import annotations

from invoke import Collection

from pipelines.cli import automation_tasks as automation
from pipelines.cli import console_tasks as console
from pipelines.cli import endpoint_tasks as endpoint
from pipelines.cli import infrastructure_tasks as infrastructure
from pipelines.cli import model_tasks as model
from pipelines.cli import monitoring_tasks as monitoring
from pipelines.cli import pipeline_tasks as pipeline

AREAS = (infrastructure, pipeline, model, endpoint, monitoring, automation, console)


def build_namespace() -> Collection:
    """Every area's tasks at the top level: `invoke deploy`, not `invoke endpoint.deploy`."""
    namespace = Collection()
    for area in AREAS:
        for task in Collection.from_module(area).tasks.values():
            namespace.add_task(task)
    return namespace
