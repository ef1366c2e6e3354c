"""The GitHub workflow's hardening (issue 27, item 10), read from .github/workflows/ci.yml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "ci.yml"


def jobs() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def test_every_action_is_pinned_by_full_commit_sha_with_its_tag_beside_it():
    uses = re.findall(r"uses:\s*(\S+)(.*)", WORKFLOW.read_text())
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"\s*# v\d+(\.\d+)*", comment), (action, comment)


def test_checkouts_keep_no_token():
    for name, job in jobs().items():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, name


def test_the_oidc_job_runs_in_a_protected_environment():
    oidc = {n: j for n, j in jobs().items() if j.get("permissions", {}).get("id-token") == "write"}
    assert oidc
    for name, job in oidc.items():
        assert job.get("environment") == "aws", name


def test_variables_reach_shell_only_through_env():
    for name, job in jobs().items():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), (name, step["run"])
