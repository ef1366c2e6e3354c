"""`invoke hooks-install`: the post-commit hook, and never over someone else's hook."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pipelines.automation.git_hook import HOOK_SCRIPT, install
from pipelines.core.errors import MlopsError


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    return tmp_path


def test_installs_an_executable_post_commit_hook_once(repository):
    hook, changed = install(repository)
    assert changed
    assert hook == repository / ".git" / "hooks" / "post-commit"
    assert hook.read_text() == HOOK_SCRIPT
    assert os.access(hook, os.X_OK)
    assert install(repository) == (hook, False)


def test_a_foreign_hook_is_kept(repository):
    hook = repository / ".git" / "hooks" / "post-commit"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text("#!/bin/sh\necho mine\n")
    with pytest.raises(MlopsError, match="exists and is not ours; nothing was changed"):
        install(repository)
    assert hook.read_text() == "#!/bin/sh\necho mine\n"


def test_outside_a_checkout_it_says_so(tmp_path):
    with pytest.raises(MlopsError, match="is not a git checkout"):
        install(tmp_path / "nowhere")
