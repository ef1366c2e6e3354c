"""Where an execution came from: the code's git commit and whether the tree was dirty."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any


def git_state(root: Path) -> dict[str, Any]:
    """``{"git_commit": sha or None, "git_dirty": bool or None}``; None outside a repository."""
    git = shutil.which("git")
    if git is None:
        return {"git_commit": None, "git_dirty": None}
    commit = subprocess.run(
        [git, "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    if commit.returncode != 0:
        return {"git_commit": None, "git_dirty": None}
    status = subprocess.run(
        [git, "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=False
    )
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
