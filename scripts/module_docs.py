"""Write each Terraform module's README input and output tables from its variables.tf and
outputs.tf (parsed with python-hcl2), between the README's generated-block markers.

    .venv/bin/python scripts/module_docs.py          # rewrite the tables
    .venv/bin/python scripts/module_docs.py --check  # exit 1 naming each stale README

tests/infra/test_module_docs.py runs the check in the fast tier.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import hcl2

MODULES = Path(__file__).resolve().parent.parent / "infra" / "modules"
COMMAND = ".venv/bin/python scripts/module_docs.py"
BEGIN = f"<!-- BEGIN GENERATED TABLES: `{COMMAND}` writes them from variables.tf and outputs.tf -->"
END = "<!-- END GENERATED TABLES -->"


def _hcl(value: Any) -> str:
    """A value as python-hcl2 returns it, written back as HCL."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value[2:-1] if value.startswith("${") and value.endswith("}") else value
    if isinstance(value, list):
        return "[" + ", ".join(_hcl(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_hcl(item)}" for key, item in value.items()) + "}"
    return str(value)


def _text(literal: str) -> str:
    """An HCL string literal's text."""
    if len(literal) >= 2 and literal[0] == literal[-1] == '"':
        literal = literal[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return literal


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _blocks(path: Path, kind: str) -> list[tuple[str, dict[str, Any]]]:
    with path.open() as handle:
        parsed = hcl2.load(handle)
    return sorted(
        (_text(name), body) for block in parsed.get(kind, []) for name, body in block.items()
    )


def tables(module: Path) -> str:
    """The generated block of a module's README: inputs, then outputs, alphabetically."""
    lines = [BEGIN, "", "## Inputs", "", "| name | description | type | default |"]
    lines.append("| --- | --- | --- | --- |")
    for name, body in _blocks(module / "variables.tf", "variable"):
        default = f"`{_cell(_hcl(body['default']))}`" if "default" in body else "required"
        kind = _cell(_hcl(body.get("type", "any")))
        description = _cell(_text(body.get("description", "")))
        lines.append(f"| `{name}` | {description} | `{kind}` | {default} |")
    lines += ["", "## Outputs", "", "| name | description |", "| --- | --- |"]
    for name, body in _blocks(module / "outputs.tf", "output"):
        lines.append(f"| `{name}` | {_cell(_text(body.get('description', '')))} |")
    return "\n".join([*lines, "", END])


def render(module: Path) -> tuple[str, str]:
    """(current README, README with fresh tables)."""
    readme = module / "README.md"
    current = readme.read_text()
    if BEGIN not in current or END not in current:
        raise SystemExit(f"{readme} has no generated-tables block: add the lines\n{BEGIN}\n{END}")
    head, rest = current.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return current, head + tables(module) + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale READMEs")
    args = parser.parse_args(argv)
    stale = []
    for module in sorted(p for p in MODULES.iterdir() if (p / "variables.tf").is_file()):
        current, fresh = render(module)
        if current != fresh:
            stale.append(module / "README.md")
            if not args.check:
                (module / "README.md").write_text(fresh)
    if args.check and stale:
        names = ", ".join(str(p.relative_to(MODULES.parent.parent)) for p in stale)
        print(f"Stale module tables in {names}: run `{COMMAND}`.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
