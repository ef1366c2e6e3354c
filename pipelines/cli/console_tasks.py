"""The local console: `invoke ui` serves the runs, the registry and the deployments as web
pages on 127.0.0.1, or writes them as files with --export."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli.arguments import whole_number
from pipelines.cli.common import PIPELINE_TARGET_HELP, deployment, settings, task
from pipelines.ui.console import console, exit_on_error

DEFAULT_PORT = 8780


@task(
    help={
        **PIPELINE_TARGET_HELP,
        "port": f"port on 127.0.0.1 (default {DEFAULT_PORT})",
        "open": "open the console in the default browser",
        "export": "write every page as a file into this folder instead of serving",
    }
)
def ui(c, port=None, target="local", env=None, pipeline=None, open_=False, export=None):
    """Open the console: runs with their graphs, compare, registry, deployments, monitoring."""
    from pipelines.console import app
    from pipelines.console import export as site
    from pipelines.console.source import Source

    with exit_on_error():
        source = Source(settings(c, pipeline), deployment(target, env))
        if export:
            written = site.export(source, Path(export))
            console.print(f"Wrote {len(written)} pages to {export}: open index.html.", markup=False)
            return
        port = whole_number(DEFAULT_PORT if port is None else port, "--port")
        app.open_console(source, port, open_, lambda line: console.print(line, markup=False))
