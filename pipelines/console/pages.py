"""The console's pages: one table, shared by the server (``app``) and the export.

A page function takes the ``Source``, the query (filters) and its path arguments, and
returns a ``Page``: a template and what it shows. A form's handler (``FORMS``) changes
something through the same action a task uses and returns the sentence to show.
Pages print nothing and hold no HTML: the templates do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipelines.console import (
    automation_pages,
    deployment_pages,
    monitoring_pages,
    registry_pages,
    run_pages,
)
from pipelines.console.links import Links
from pipelines.console.page import Document, Page
from pipelines.console.render import render
from pipelines.console.source import Source

NAV = (
    ("runs", "Runs"),
    ("registry", "Registry"),
    ("deployments", "Deployments"),
    ("monitoring", "Monitoring"),
    ("automation", "Automation"),
)


PageFunction = Callable[..., Page]

PAGES: dict[str, PageFunction] = {
    "runs": run_pages.runs,
    "run": run_pages.run,
    "run_log": run_pages.run_log,
    "compare": run_pages.compare,
    "registry": registry_pages.registry,
    "deployments": deployment_pages.deployments,
    "monitoring": monitoring_pages.monitoring,
    "automation": automation_pages.automation,
}

# Files served as they are, each with its own Content-Security-Policy (the drift report:
# plotly's inline scripts, allowed in that response only; its page frames it sandboxed).
DOCUMENTS: dict[str, Callable[..., Document]] = {
    "monitoring_report": monitoring_pages.report,
}

FormFunction = Callable[..., tuple[Page, str]]

# Forms that change something: name -> (path, handler). A handler checks its input, acts
# through the action the matching task uses, and returns the page to show with a sentence.
FORMS: dict[str, tuple[str, FormFunction]] = {
    "registry_approval": ("/registry", registry_pages.approve_or_reject),
}
FORM_ROUTES = {name: path for name, (path, _) in FORMS.items()}

# What a static export writes: (page, path arguments) for every page worth a file.
EXPORTS: tuple[Callable[[Source], Iterable[tuple[str, dict[str, str]]]], ...] = (
    run_pages.exported,
    registry_pages.exported,
    deployment_pages.exported,
    monitoring_pages.exported,
    automation_pages.exported,
)


def html(
    page: Page,
    source: Source,
    links: Links,
    *,
    csrf: str = "",
    flash: str | None = None,
    flash_error: bool = False,
) -> str:
    return render(
        page.template,
        **page.context,
        title=page.title,
        project=source.settings.name_prefix,
        target=source.target_label,
        nav=NAV,
        current=page.section,
        links=links,
        csrf=csrf,
        flash=flash,
        flash_error=flash_error,
        refresh_seconds=page.refresh_seconds,
    )


def build(
    name: str, source: Source, query: Mapping[str, str], arguments: Mapping[str, str]
) -> Page:
    return PAGES[name](source, query, **arguments)


def submit(
    name: str, source: Source, form: Mapping[str, Any], arguments: Mapping[str, str]
) -> tuple[Page, str]:
    return FORMS[name][1](source, form, **arguments)
