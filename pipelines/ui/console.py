"""Terminal presentation for the tasks: tables, progress lines and error exits."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from invoke.exceptions import Exit
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.core.errors import MlopsError

# Width of output that goes to a file or a pipe (CI logs, `| tee`), where rich would
# otherwise assume 80 columns and cut table cells ("durati…", "172 M…").
PIPE_WIDTH = 200


def output_width(stream: TextIO, environ: Mapping[str, str] = os.environ) -> int | None:
    """The width to render at: the terminal's own (None lets rich ask it), COLUMNS when
    set, and a width that fits our tables and URIs on one line when not a terminal."""
    if "COLUMNS" in environ:
        return None
    try:
        is_terminal = stream.isatty()
    except (AttributeError, ValueError):
        is_terminal = False
    return None if is_terminal else PIPE_WIDTH


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=output_width(stream))


console = make_console()
err_console = make_console(stderr=True)

_PROGRESS = re.compile(
    r"^(?P<address>\S+): (?P<event>Creating\.\.\.|Creation complete|Modifying\.\.\.|"
    r"Modifications complete|Destroying\.\.\.|Destruction complete|Still \w+\.\.\.)"
    r"(?: after (?P<after>\w+))?"
)


@contextlib.contextmanager
def exit_on_error() -> Iterator[None]:
    """Turn an MlopsError into its message on stderr and exit code 1."""
    try:
        yield
    except MlopsError as error:
        # Errors quote what the user or an event gave (a path, a reason): never markup.
        err_console.print(f"[bold red]Error:[/] {escape(str(error))}")
        raise Exit(code=1) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/]")
        raise Exit(code=130) from None


def plain(line: str) -> None:
    """Print a progress line as it is: lines quote paths, keys and names, never markup."""
    console.print(line, markup=False)


def terraform_progress(line: str) -> None:
    """Echo Terraform's per-resource progress lines, dimmed; drop the rest."""
    match = _PROGRESS.match(line.strip())
    if match:
        # "after 55s" is each resource's share of an apply: keep it.
        after = f" after {match['after']}" if match["after"] else ""
        console.print(f"  [dim]{match['address']}: {match['event']}{after}[/]")


def key_value_table(title: str, values: Mapping[str, Any]) -> Table:
    table = Table(title=escape(title), show_header=True, header_style="bold")
    table.add_column("name")
    table.add_column("value", overflow="fold")
    for key in sorted(values):
        value = values[key]
        table.add_row(escape(key), escape("-" if value is None else str(value)))
    return table
