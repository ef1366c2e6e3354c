"""``invoke ui --export DIR``: every page as a file, linked relatively, for a CI artifact
or a look without a server. The same page functions and templates as the server; forms
and filters are left out (nothing to post to)."""

from __future__ import annotations

from pathlib import Path

from pipelines.console import pages
from pipelines.console.links import Links, file_name
from pipelines.console.source import Source
from pipelines.core.errors import MlopsError


def export(source: Source, directory: Path) -> list[Path]:
    """Write the pages into ``directory`` (created); returns the files written."""
    links = Links(exported=True)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for listing in pages.EXPORTS:
        for name, arguments in listing(source):
            if name in pages.DOCUMENTS:  # written as it is; left out when there is none
                try:
                    document = pages.DOCUMENTS[name](source, {}, **arguments)
                except MlopsError:
                    continue
                path = directory / file_name(name, **arguments)
                path.write_text(document.body, encoding="utf-8")
                written.append(path)
                continue
            try:
                page = pages.build(name, source, {}, arguments)
            except MlopsError as error:
                page = pages.Page("Not available", "error.html", {"message": str(error)})
            path = directory / file_name(name, **arguments)
            path.write_text(pages.html(page, source, links), encoding="utf-8")
            written.append(path)
    return written
