"""The command line as a user meets it: it answers at once, every task explains itself,
and a flag means the same in every task."""

from __future__ import annotations

import subprocess
import sys

import pytest
from invoke import Program

from pipelines.cli import build_namespace
from pipelines.config.settings import PROJECT_ROOT

HEAVY = ("sagemaker", "pandas", "plotly", "numpy", "boto3")


def test_loading_the_tasks_imports_no_heavy_library():
    """`invoke --list` and `--help` pay for invoke and the task modules only; the SDK,
    pandas and plotly load inside the tasks that use them."""
    probe = f"import sys, tasks; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_the_import_probe_sees_a_heavy_import():
    probe = "import sys, pandas; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
    assert out.strip() == "True"


TASKS = sorted(build_namespace().task_names)


@pytest.mark.parametrize("name", TASKS)
def test_every_task_prints_its_help(name, capsys):
    program = Program(namespace=build_namespace(), name="invoke", binary="invoke")
    with pytest.raises(SystemExit) as exited:
        program.run(["invoke", name, "--help"])
    out = capsys.readouterr().out
    assert exited.value.code in (0, None)
    assert f"invoke [--core-opts] {name} " in out
    assert "Docstring:" in out


def test_no_task_has_a_short_flag_of_its_own():
    """Automatic short flags would make -t mean --target in one task and --to in another."""
    shorts = {
        (task_name, flag)
        for task_name, task in build_namespace().tasks.items()
        for argument in task.get_arguments()
        for flag in argument.names
        if len(flag) == 1
    }
    assert shorts == set()
