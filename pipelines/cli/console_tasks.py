"""The local console: `invoke ui` serves the runs, the registry and the deployments as web
pages on 127.0.0.1, or writes them as files with --export."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli.arguments import whole_number
from pipelines.cli.common import TARGET_HELP, deployment, settings, task
from pipelines.ui.console import console, exit_on_error

DEFAULT_PORT = 8780


@task(
    help={
        **TARGET_HELP,
        "port": f"port on 127.0.0.1 (default {DEFAULT_PORT})",
        "open": "open the console in the default browser",
        "export": "write every page as a file into this folder instead of serving",
    }
)
def ui(c, port=None, target="local", env=None, open_=False, export=None):
    """Open the console: runs with their graphs, compare, registry, deployments, monitoring."""
    from pipelines.console.source import Source

    with exit_on_error():
        source = Source(settings(c), deployment(target, env))
        if export:
            from pipelines.console.export import export as write_pages

            written = write_pages(source, Path(export))
            console.print(f"Wrote {len(written)} page(s) to {export}; open index.html.", markup=False)
            return
        from pipelines.console import app

        sock = app.bind(whole_number(DEFAULT_PORT if port is None else port, "--port", minimum=1))
        keys = app.Secrets()
        address = app.url(sock.getsockname()[1], keys)
        console.print(f"Console for {source.target_label}: {address}", markup=False)
        console.print("Ctrl-C stops it.", style="dim")
        if open_:
            import webbrowser

            webbrowser.open(address)
        app.serve(source, sock, keys)
