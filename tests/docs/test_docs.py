"""The documentation: the docs/ site builds with no broken link, and the README stays a
short front door whose links all resolve (on GitHub, where the README is read)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 300

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
# Inline links [text](target "title") and reference definitions [label]: target.
_INLINE_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)


def _relative_link_targets(markdown: str) -> list[str]:
    # Brackets inside code (task signatures such as `[--json]`) are not links.
    prose = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    targets = _INLINE_LINK.findall(prose) + _REFERENCE.findall(prose)
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t, re.IGNORECASE)]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for this module by Sphinx, strictly (docs/conf.py)."""
    site_dir = tmp_path_factory.mktemp("site")
    # -W --keep-going: every warning is an error, all of them reported; -n: so is a
    # reference that resolves to nothing. A broken link or anchor between pages, or a
    # page in no toctree, is a warning.
    result = subprocess.run(
        [
            *(sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q"),
            *("-b", "html", str(DOCS), str(site_dir)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site_dir


def test_the_site_builds_strictly_with_every_page(site):
    missing = [
        p.name for p in DOCS.glob("*.md") if not (site / p.with_suffix(".html").name).is_file()
    ]
    assert not missing, f"the site has no page for: {missing}"


def test_the_readme_anchors_into_docs_exist(site):
    # MyST gives each heading GitHub's id (docs/conf.py), so the built page tells.
    missing = []
    for target in _relative_link_targets(README.read_text(encoding="utf-8")):
        path, _, anchor = target.partition("#")
        if not (anchor and path.startswith("docs/") and path.endswith(".md")):
            continue
        html = site / Path(path).relative_to("docs").with_suffix(".html")
        if not html.is_file() or f'id="{anchor}"' not in html.read_text(encoding="utf-8"):
            missing.append(target)
    assert not missing, f"README.md links anchors that docs/ does not have: {missing}"


def test_the_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move depth to docs/."
    )


def test_every_relative_link_in_the_readme_resolves():
    targets = _relative_link_targets(README.read_text(encoding="utf-8"))
    assert targets, "README.md links no file: the link check would check nothing."
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links files that do not exist: {missing}"


def test_the_readme_links_every_docs_page():
    linked = {
        (ROOT / t.split("#", 1)[0]).resolve()
        for t in _relative_link_targets(README.read_text(encoding="utf-8"))
    }
    unlinked = sorted(p.name for p in DOCS.glob("*.md") if p.resolve() not in linked)
    assert not unlinked, f"README.md's Documentation section misses docs/ pages: {unlinked}"


def test_the_link_check_sees_links_and_skips_code():
    markdown = (
        "[a](docs/a.md) [b](docs/b.md#part) [web](https://example.com) [top](#top)\n"
        "`[--json](not/a/link.md)`\n"
        "```\n[c](inside/a/fence.md)\n```\n"
        "[ref]: docs/c.md\n"
    )
    assert _relative_link_targets(markdown) == ["docs/a.md", "docs/b.md#part", "docs/c.md"]


_REPO_PATH = re.compile(r"`((?:pipelines|tests|training|benchmarks|infra|scripts)/[\w./-]*)`")


def _generated(path: str) -> bool:
    """A file the project writes at run time (git-ignored), absent from a fresh clone."""
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    return ignored.returncode == 0


def stale_paths(markdown: str) -> list[str]:
    """Repository paths named in code spans that do not exist (a module moved or renamed)."""
    missing = {p for p in _REPO_PATH.findall(markdown) if not (ROOT / p.split("#")[0]).exists()}
    return sorted(p for p in missing if not _generated(p.split("#")[0]))


def test_the_docs_name_only_paths_that_exist():
    found = {
        page.name: stale
        for page in [README, *DOCS.glob("*.md")]
        if (stale := stale_paths(page.read_text()))
    }
    assert found == {}


def test_the_path_check_sees_a_moved_module():
    assert stale_paths("see `pipelines/infra/stack.py` and `pipelines/cli/`") == [
        "pipelines/infra/stack.py"
    ]
