"""The action table: which invoke task a fired rule runs, with which arguments.

One row per rule purpose (the rule names are ``<prefix>-<env>-<purpose>`` from
infra/modules/automation). The agent runs these as the project's own
``.venv/bin/invoke`` subprocesses: the same tasks a person runs, nothing re-implemented.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.core.errors import MlopsError


@dataclass(frozen=True)
class Action:
    task: tuple[str, ...]  # invoke arguments; {field}s come from the event
    why: str  # how the log says what fired, from the same fields


ACTIONS: dict[str, Action] = {
    # Issue 16 (stages): add "--stage", "staging" to this row.
    "approval_deploy": Action(
        ("deploy", "--stage", "staging", "--version", "{version}"),
        "model package {group}/{version} was Approved",
    ),
    "commit_build": Action(
        ("pipeline-run", "--no-wait"),
        "commit {commit} pushed to {branch} of {repository}",
    ),
    "new_data_retraining": Action(
        ("pipeline-run", "--data", "s3://{bucket}/{key}", "--no-wait"),
        "new object s3://{bucket}/{key}",
    ),
    "scheduled_retraining": Action(
        ("pipeline-run", "--no-wait"),
        "schedule {expression} of rule {rule} is due",
    ),
    "drift_retraining": Action(
        ("pipeline-run", "--no-wait"),
        "alarm {alarm} entered ALARM",
    ),
}


def purpose_of(rule: str) -> str:
    """``mlops-local-approval-deploy`` -> ``approval_deploy``."""
    for purpose in ACTIONS:
        if rule.endswith("-" + purpose.replace("_", "-")):
            return purpose
    raise MlopsError(f"No action is mapped to rule {rule!r} (known: {', '.join(ACTIONS)}).")


def event_fields(event: Mapping[str, Any]) -> dict[str, str]:
    """The values the table's templates use, from AWS's event JSON."""
    detail = event.get("detail") or {}
    fields: dict[str, Any] = {
        "version": detail.get("ModelPackageVersion"),
        "group": detail.get("ModelPackageGroupName"),
        "commit": (detail.get("commitId") or "")[:12],
        "branch": detail.get("referenceName"),
        "repository": detail.get("repositoryName"),
        "bucket": (detail.get("bucket") or {}).get("name"),
        "key": (detail.get("object") or {}).get("key"),
        "alarm": detail.get("alarmName"),
    }
    return {name: str(value) for name, value in fields.items() if value not in (None, "")}


def command_for(
    purpose: str,
    event: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> tuple[list[str], str]:
    """The invoke arguments and the reason, for a rule purpose and its event; pipeline
    parameters (a schedule target's) become ``--param NAME=VALUE``."""
    if purpose not in ACTIONS:
        raise MlopsError(f"No action is mapped to {purpose!r}.")
    action = ACTIONS[purpose]
    fields = {**event_fields(event), **(extra or {})}
    try:
        arguments = [part.format(**fields) for part in action.task]
        why = action.why.format(**fields)
    except KeyError as missing:
        raise MlopsError(
            f"The {event.get('detail-type')!r} event lacks {missing} for the {purpose} action."
        ) from None
    for name, value in sorted((parameters or {}).items()):
        arguments += ["--param", f"{name}={value}"]
    return arguments, why


TEST_TIERS = {"fast": ["-m", "'not server'", "-q"], "all": ["-q"]}


def pytest_arguments(tier: str) -> list[str]:
    """The pytest arguments of a test tier (`invoke test`, CI, the CodeBuild build)."""
    if tier not in TEST_TIERS:
        raise MlopsError(f"Unknown test tier {tier!r}: use {' or '.join(TEST_TIERS)}.")
    return TEST_TIERS[tier]
