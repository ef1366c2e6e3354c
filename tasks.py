"""Tasks: `invoke --list`. Defined in pipelines/cli, one module per area."""

from pipelines.cli import build_namespace

ns = build_namespace()
