"""Where an execution came from: the code's git commit and whether the tree was dirty."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from pipelines.core.errors import MlopsError


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


# What starts a run: a person, the retraining schedule, new data under the dataset prefix,
# a commit (the build), a drift alarm. The automation agent passes its own with --trigger.
TRIGGERS = ("manual", "schedule", "new-data", "commit", "drift")


def check_trigger(trigger: str) -> str:
    if trigger not in TRIGGERS:
        raise MlopsError(f"Unknown trigger {trigger!r}: use one of {', '.join(TRIGGERS)}.")
    return trigger


def trigger_of(display_name: str, lineage: dict[str, Any]) -> str | None:
    """What started an execution: recorded in its lineage (local), else the first word of
    its display name (``new-data-0123abcd-...``); None for a run started some other way."""
    if lineage.get("trigger"):
        return str(lineage["trigger"])
    return next((t for t in TRIGGERS if display_name.startswith(f"{t}-")), None)
