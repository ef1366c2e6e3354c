"""Sphinx settings for the docs/ site: the Markdown pages, read through MyST.

Build it strictly (tests/docs/test_docs.py does the same):
`python -m sphinx -W --keep-going -n -b html docs docs/_build/html`. With -W a broken
link or anchor between pages, or a page missing from the toctree in index.md, fails
the build.
"""

project = "SageMaker MLOps monorepo"
author = "the maintainers"

extensions = ["myst_parser", "sphinxcontrib.mermaid"]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Ids for headings down to ###, made the way GitHub makes them, so `page.md#section`
# resolves both here and on GitHub (where the README links into these pages).
myst_heading_anchors = 3
# ```mermaid fences (which GitHub draws too) become sphinxcontrib-mermaid's directive;
# the browser draws them with mermaid.js, loaded from a CDN when a page is opened.
myst_fence_as_directive = ["mermaid"]

html_theme = "furo"
html_title = project
html_copy_source = False
html_show_sphinx = False
