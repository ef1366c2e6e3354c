"""The locked install: scripts/install, uv.lock and checkov's own tool environment."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from pipelines.config.settings import PROJECT_ROOT
from pipelines.stack.review import CHECKOV_PROJECT, checkov_command

INSTALL = PROJECT_ROOT / "scripts" / "install"


def _locked_versions(lock: Path) -> dict[str, str]:
    data = tomllib.loads(lock.read_text())
    return {package["name"]: package.get("version", "") for package in data["package"]}


def test_the_install_script_pins_the_uv_that_the_lock_holds():
    # The uv that installs is the uv the project runs (it builds job environments), so a
    # mismatch would make `uv sync` replace the running binary on every install.
    pinned = re.search(r"^UV_VERSION=(\S+)$", INSTALL.read_text(), re.MULTILINE)
    assert pinned is not None
    assert _locked_versions(PROJECT_ROOT / "uv.lock")["uv"] == pinned.group(1)


def test_checkov_is_locked_apart_from_the_project():
    project = _locked_versions(PROJECT_ROOT / "uv.lock")
    tools = _locked_versions(CHECKOV_PROJECT / "uv.lock")
    assert "checkov" not in project
    assert "checkov" in tools
    # The conflict that made pip backtrack: checkov pins a boto3 the SDK cannot share.
    assert tools["boto3"] != project["boto3"]
    command = checkov_command()
    assert command is not None
    assert command[1:] == [
        "run",
        "--project",
        str(CHECKOV_PROJECT),
        "--locked",
        "--quiet",
        "checkov",
    ]
    assert Path(command[0]).is_file()


def test_the_lock_matches_pyproject():
    # `uv lock --check` fails when pyproject.toml changed without re-locking.
    uv = checkov_command()[0]  # type: ignore[index]
    for project in (PROJECT_ROOT, CHECKOV_PROJECT):
        result = subprocess.run(
            [uv, "lock", "--check", "--project", str(project)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def test_install_refuses_a_python_that_is_too_old_before_touching_anything(tmp_path):
    old = tmp_path / "python3"
    old.write_text("#!/bin/sh\nexec false\n")  # a Python that fails the version check
    old.chmod(0o755)
    result = subprocess.run(
        [str(INSTALL)],
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(old)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "needs Python >= 3.11" in result.stderr
    assert "PYTHON=/path/to/python3.11" in result.stderr
