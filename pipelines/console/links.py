"""Where a page is: a server path, or a file name in a static export.

Pages name each other by page name and arguments, never by literal URL, so one template
serves both: ``/runs/abc`` when served, ``run-abc.html`` when exported (flat, relative,
so the folder opens from disk and can be moved or attached to a CI run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

# A value that goes into a path or a file name: execution ids, step and group names,
# versions; compare pages join execution ids with commas.
SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._,-]{0,255}$")

ROUTES: dict[str, str] = {
    "runs": "/",
    "run": "/runs/{execution}",
    "run_log": "/runs/{execution}/logs/{step}",
    "compare": "/compare/{executions}",
    "registry": "/registry",
    "deployments": "/deployments",
    "monitoring": "/monitoring",
    "automation": "/automation",
    "monitoring_report": "/monitoring/report",
}


def file_name(page: str, **arguments: str) -> str:
    """The export's file for a page: ``index.html`` for the runs, ``run-abc.html``,
    ``run_log-abc-TrainModel.html`` (arguments in name order)."""
    parts = [page] + [_checked(str(arguments[k])) for k in sorted(arguments)]
    return "-".join(parts) + ".html" if page != "runs" else "index.html"


def _checked(value: str) -> str:
    if not SAFE_PART.match(value):
        raise ValueError(f"{value!r} cannot name a page: letters, digits and . _ , - only")
    return value


@dataclass(frozen=True)
class Links:
    """``url(page, **arguments)`` for templates; ``exported`` writes file names."""

    exported: bool = False

    def url(self, page: str, **arguments: str) -> str:
        if self.exported:
            return file_name(page, **arguments)
        path = ROUTES[page]
        query = {}
        for key, value in arguments.items():
            if "{" + key + "}" in path:
                path = path.replace("{" + key + "}", quote(str(value), safe=","))
            else:  # not part of the path (a stage, a filter): the query string
                query[key] = str(value)
        return path + (f"?{urlencode(query)}" if query else "")
