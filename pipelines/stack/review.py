"""The plan review behind `invoke plan`: the plan in four forms and checkov's findings."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipelines.config.settings import PROJECT_ROOT
from pipelines.stack.plan_review import (
    CheckovSummary,
    PlanSummary,
    render_markdown,
    skipped_checks,
    summarize_checkov,
    summarize_plan,
)
from pipelines.stack.stacks import Stack


@dataclass(frozen=True)
class PlanReview:
    directory: Path
    summary: PlanSummary
    checkov: CheckovSummary

    @property
    def has_changes(self) -> bool:
        return self.summary.has_changes


def review_plan(stack: Stack, directory: Path | None = None) -> PlanReview:
    """Write tfplan, plan.json, plan.txt, plan.md and checkov.json to a review folder."""
    directory = directory or stack.settings.state_dir / "review" / stack.deployment.slug
    directory.mkdir(parents=True, exist_ok=True)
    stack.terraform.init()
    plan = stack.terraform.plan(directory / "tfplan")
    plan_json = stack.terraform.show_json(plan.plan_file)
    (directory / "plan.json").write_text(json.dumps(plan_json, indent=2, sort_keys=True) + "\n")
    (directory / "plan.txt").write_text(stack.terraform.show_text(plan.plan_file))
    checkov = run_checkov_on_plan(
        directory / "plan.json", directory / "checkov.json", stack.settings.infra_dir
    )
    summary = summarize_plan(plan_json)
    markdown = render_markdown(
        summary,
        title=f"Terraform plan: {stack.deployment}",
        checkov=checkov,
        skipped=skipped_checks(stack.settings.infra_dir),
    )
    (directory / "plan.md").write_text(markdown)
    return PlanReview(directory=directory, summary=summary, checkov=checkov)


CHECKOV_PROJECT = PROJECT_ROOT / "tools" / "checkov"


def checkov_command(project: Path = CHECKOV_PROJECT) -> list[str] | None:
    """The command that runs checkov from its own locked tool environment.

    checkov pins boto3 exactly, so it cannot share the project's environment: uv
    builds `tools/checkov/.venv` from `tools/checkov/uv.lock` on first use (a few
    seconds from a warm cache) and reuses it afterwards."""
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - uv is a project dependency
        return None
    return [find_uv_bin(), "run", "--project", str(project), "--locked", "--quiet", "checkov"]


def run_checkov_on_plan(plan_json: Path, report: Path, code_dir: Path) -> CheckovSummary:
    """checkov on the plan, honouring the justified inline skips in the code."""
    command = checkov_command()
    if command is None:
        return CheckovSummary(0, 0, 0, error="uv is not installed (uv sync --locked)")
    result = subprocess.run(
        [
            *command,
            "--file",
            str(plan_json),
            "--framework",
            "terraform_plan",
            "--repo-root-for-plan-enrichment",
            str(code_dir),
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        return CheckovSummary(
            0, 0, 0, error=f"checkov exited {result.returncode}: {result.stderr.strip()[-500:]}"
        )
    report.write_text(json.dumps(data, indent=2) + "\n")
    return summarize_checkov(data)
