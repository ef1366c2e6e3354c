"""The package's structure: layers point one way, no import cycles, target choices
in one place, thin tasks. Each check reads the source, so a change that breaks the
structure fails here, not in a review."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config.settings import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "pipelines"
# The only modules that may ask which target they run on.
TARGET_MAP_MODULES = {"pipelines.targets", "pipelines.config.deployment", "pipelines.core.aws"}
TASK_BODY_MAX_LINES = 12


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def _imports(tree: ast.Module, known: set[str]) -> Iterator[str]:
    """Every project module a module imports: at the top, in functions, under
    TYPE_CHECKING; ``from pipelines.x import y`` counts y when y is a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module in known:
            yield node.module
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    yield f"{node.module}.{alias.name}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, tree in modules.items():
        # A package's __init__ is imported with each of its modules: count it as a
        # dependency only when code names it.
        graph[name] = {m for m in _imports(tree, known) if m != name}
    return graph


def test_there_is_no_import_cycle_counting_function_level_and_type_checking_imports():
    assert _cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    graph["pipelines.core.errors"] = {"pipelines.cli"}
    graph["pipelines.cli"] = {"pipelines.cli.common"}
    assert _cycle(graph) is not None


def test_the_layers_point_one_way():
    """import-linter's contracts in pyproject.toml (layers, acyclic siblings). In its own
    process: its CLI configures logging with dictConfig, which disables every logger
    already created in this one (and so the log assertions of later tests)."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _target_branches(tree: ast.Module) -> Iterator[int]:
    """Lines that ask which target they are on: ``.is_local``, ``.is_emulator``,
    ``x == "local"`` / ``"aws"``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("is_local", "is_emulator"):
            yield node.lineno
        elif isinstance(node, ast.Compare):
            values = [node.left, *node.comparators]
            if any(isinstance(v, ast.Constant) and v.value in ("local", "aws") for v in values):
                yield node.lineno


def test_only_the_target_map_branches_on_the_target():
    found = {
        name: sorted(set(_target_branches(tree)))
        for name, tree in _modules().items()
        if name not in TARGET_MAP_MODULES
    }
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_branch_finder_sees_a_branch():
    tree = ast.parse("if stack.deployment.is_local:\n    pass\nx = target == 'aws'\n")
    assert list(_target_branches(tree)) == [1, 3]


def _tasks() -> Iterator[tuple[str, ast.FunctionDef]]:
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and any(
                (isinstance(d, ast.Call) and getattr(d.func, "id", None) == "task")
                or getattr(d, "id", None) == "task"
                for d in node.decorator_list
            ):
                yield f"{path.stem}.{node.name}", node


def _body_lines(function: ast.FunctionDef) -> int:
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def test_every_task_is_thin():
    tasks = dict(_tasks())
    assert len(tasks) >= 20
    long = {name: _body_lines(fn) for name, fn in tasks.items()}
    assert {name: n for name, n in long.items() if n > TASK_BODY_MAX_LINES} == {}


@pytest.mark.parametrize("module", ["tasks.py"])
def test_tasks_py_only_loads_the_collection(module):
    tree = ast.parse((PROJECT_ROOT / module).read_text())
    assert not [n for n in tree.body if isinstance(n, ast.FunctionDef)]


def _collected(*arguments: str) -> str:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/soak", *arguments],
        cwd=PROJECT_ROOT, capture_output=True, text=True,
    ).stdout  # fmt: skip


def test_the_soak_runs_only_when_selected():
    """The default run (the README's test command) leaves the soak out; `-m soak` runs it."""
    assert "1 deselected" in _collected()
    selected = _collected("-m", "soak")
    assert "test_soak.py::" in selected
    assert "deselected" not in selected


def duplicate_basenames(paths: list[Path]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for path in paths:
        if path.name != "__init__.py":
            seen.setdefault(path.name, []).append(str(path.relative_to(PROJECT_ROOT)))
    return {name: places for name, places in seen.items() if len(places) > 1}


def test_every_module_and_test_file_name_says_what_it_holds_once():
    """Two modules with one name (`history.py` in monitoring and in serving) leave a reader
    guessing which one a traceback or an import means."""
    assert duplicate_basenames(sorted(PACKAGE.rglob("*.py"))) == {}
    assert duplicate_basenames(sorted((PROJECT_ROOT / "tests").rglob("test_*.py"))) == {}


def test_the_name_check_sees_a_duplicate():
    paths = [PACKAGE / "a" / "views.py", PACKAGE / "b" / "views.py", PACKAGE / "c" / "x.py"]
    assert list(duplicate_basenames(paths)) == ["views.py"]
