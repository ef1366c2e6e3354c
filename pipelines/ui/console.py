"""Terminal presentation for the tasks: tables, progress lines and error exits."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

from invoke.exceptions import Exit
from rich._wrap import divide_line
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from pipelines.core.errors import MlopsError

# Width of output that goes to a file or a pipe (CI logs, `| tee`), where rich would
# otherwise assume 80 columns.
PIPE_WIDTH = 200


def output_width(stream: TextIO, environ: Mapping[str, str] = os.environ) -> int | None:
    """One rule for every output: COLUMNS when set, else the terminal's width (None lets
    rich ask it, as it changes), else PIPE_WIDTH for a pipe or a file. Whatever the width,
    tables fit it without breaking a word (``FittingTable``) and long values are printed
    whole (``LongLine``), so a terminal and a pipe read the same."""
    if "COLUMNS" in environ:
        return None
    try:
        is_terminal = stream.isatty()
    except (AttributeError, ValueError):
        is_terminal = False
    return None if is_terminal else PIPE_WIDTH


class LongLine(Text):
    """Text that may hold values that must stay whole (URIs, ARNs, paths, commands):
    wrapped at spaces, and a word longer than the line printed whole on a line of its own,
    for the terminal to wrap and a copy to keep intact (rich itself folds or cuts it)."""

    def __rich__(self) -> _WrappedWhole:
        return _WrappedWhole(self)


class _WrappedWhole:
    def __init__(self, text: Text) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.text.split("\n", allow_blank=True):
            for piece in line.divide(divide_line(line.plain, options.max_width, fold=False)):
                piece.rstrip()
                yield from piece.render(console)
                yield Segment.line()


def print_all(renderables: Iterable[RenderableType], to: Console | None = None) -> None:
    """Print each renderable, uncropped: a LongLine's long words stay whole."""
    target = to or console
    for renderable in renderables:
        target.print(renderable, crop=False)


class FittingTable:
    """A table that never breaks a word. Each column is at least as wide as its longest
    word; when they do not all fit the width, columns marked ``drop`` are left out,
    highest first (what they hold is shown elsewhere or with --full), and the space that
    remains is shared out as the columns' longer lines need it."""

    def __init__(self, **options: Any) -> None:
        self.options = {"header_style": "bold", **options}
        self.columns: list[tuple[str, dict[str, Any], int]] = []
        self.rows: list[tuple[Any, ...]] = []

    def add_column(self, header: str, *, drop: int = 0, **options: Any) -> None:
        self.columns.append((header, options, drop))

    def add_row(self, *cells: Any) -> None:
        self.rows.append(cells)

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def _table(self, keep: list[int], widths: list[int] | None = None) -> Table:
        table = Table(**self.options)
        for position, index in enumerate(keep):
            header, options, _ = self.columns[index]
            width = {"width": widths[position]} if widths else {}
            table.add_column(header, **{**options, **width})
        for row in self.rows:
            table.add_row(*(row[index] for index in keep))
        return table

    def fit(self, console: Console, options: ConsoleOptions) -> Table | None:
        """The widest table that fits, or None when not even the kept columns do."""
        levels = sorted({drop for _, _, drop in self.columns if drop}, reverse=True)
        for dropped in range(len(levels) + 1):
            gone = set(levels[:dropped])
            keep = [i for i, (_, _, drop) in enumerate(self.columns) if drop not in gone]
            widths = self._widths(console, options, keep)
            if widths is not None:
                return self._table(keep, widths)
        return None

    def records(self) -> Iterator[RenderableType]:
        """Where no table fits: each row as ``column: value`` lines (a two-column table's
        as ``name: value``), values whole."""
        if self.options.get("title"):
            yield Text(str(self.options["title"]), style="italic")
        pairs = len(self.columns) == 2
        for number, row in enumerate(self.rows):
            if number and not pairs:
                yield Text("")
            cells = [_text(cell) for cell in row]
            named = (
                [(cells[0].plain, cells[1])]
                if pairs
                else [
                    (header, cell) for (header, _, _), cell in zip(self.columns, cells, strict=True)
                ]
            )
            for name, value in named:
                if value.plain:
                    line = LongLine()
                    line.append(f"{name}: ", style="bold")
                    line.append_text(value)
                    yield line

    def _widths(
        self, console: Console, options: ConsoleOptions, keep: list[int]
    ) -> list[int] | None:
        """Content widths that fit ``options.max_width`` without breaking a word, or None."""
        ranges = []
        for index in keep:
            cells = [self.columns[index][0], *(row[index] for row in self.rows)]
            measured = [Measurement.get(console, options, _renderable(c)) for c in cells]
            ranges.append((max(m.minimum for m in measured), max(m.maximum for m in measured)))
        # Padding of one space each side of a cell; a border before each column and after.
        room = options.max_width - 3 * len(keep) - 1
        widths = [low for low, _ in ranges]
        if sum(widths) > room:
            return None
        # Water-filling: the columns that want least get all they want first, so a short
        # value stays on one line and long prose takes what is left.
        spare = room - sum(widths)
        wants = sorted(range(len(ranges)), key=lambda i: ranges[i][1] - ranges[i][0])
        for served, position in enumerate(wants):
            share = min(ranges[position][1] - widths[position], spare // (len(wants) - served))
            widths[position] += share
            spare -= share
        return widths

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.fit(console, options)
        if table is not None:
            yield table
        else:
            yield from self.records()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        table = self.fit(console, options)
        if table is None:
            return Measurement(options.max_width, options.max_width)
        return Measurement.get(console, options, table)


def _text(cell: Any) -> Text:
    return cell if isinstance(cell, Text) else Text.from_markup(str(cell or ""))


def _renderable(cell: Any) -> RenderableType:
    return cell if cell is not None and not isinstance(cell, str) else Text.from_markup(cell or "")


class _UncroppedConsole(Console):
    """Prints nothing cut at the width: tables fit it already, and what runs past it is a
    word that must stay whole (a LongLine's URI), for the terminal to wrap."""

    def print(self, *objects: Any, crop: bool = False, **options: Any) -> None:
        super().print(*objects, crop=crop, **options)


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return _UncroppedConsole(stderr=stderr, highlight=False, width=output_width(stream))


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


def key_value_table(title: str, values: Mapping[str, Any]) -> FittingTable:
    """Names and values; where an ARN does not fit a table, ``name: value`` lines."""
    table = FittingTable(title=escape(title))
    table.add_column("name")
    table.add_column("value")
    for key in sorted(values):
        value = values[key]
        # Text, not markup: a value such as "['a']" is shown as it is.
        table.add_row(Text(key), Text("-" if value is None else str(value)))
    return table
