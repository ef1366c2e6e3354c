"""Terminal presentation for the tasks: tables, progress lines and error exits."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from invoke.exceptions import Exit
from rich.console import Console
from rich.table import Table

from pipelines.errors import MlopsError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_PROGRESS = re.compile(
    r"^(?P<address>\S+): (?P<event>Creating\.\.\.|Creation complete|Modifying\.\.\.|"
    r"Modifications complete|Destroying\.\.\.|Destruction complete|Still \w+\.\.\.)"
)


@contextlib.contextmanager
def exit_on_error() -> Iterator[None]:
    """Turn an MlopsError into its message on stderr and exit code 1."""
    try:
        yield
    except MlopsError as error:
        err_console.print(f"[bold red]Error:[/] {error}")
        raise Exit(code=1) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/]")
        raise Exit(code=130) from None


def terraform_progress(line: str) -> None:
    """Echo Terraform's per-resource progress lines, dimmed; drop the rest."""
    match = _PROGRESS.match(line.strip())
    if match:
        console.print(f"  [dim]{match['address']}: {match['event']}[/]")


def key_value_table(title: str, values: Mapping[str, Any]) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("name")
    table.add_column("value", overflow="fold")
    for key in sorted(values):
        value = values[key]
        table.add_row(key, "-" if value is None else str(value))
    return table
