"""The action table: which invoke task a fired rule runs, with which arguments, and what
an event must be for the agent to act on it.

One row per rule purpose (the rule names are ``<prefix>-<env>-<purpose>`` from
infra/modules/automation). The agent runs these as the project's own
``.venv/bin/invoke`` subprocesses: the same tasks a person runs, nothing re-implemented.

Anything on the queue may be forged, so nothing is taken on trust: a rule must be one of
this stack's by its exact name, an event must be of this stack's model package group,
bucket and dataset prefix or repository, and a schedule's parameters are allow-listed
(never an approval status, never a path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.core.errors import MlopsError


class Ignored(MlopsError):
    """An event this agent does not act on; the message says why (it is logged)."""


@dataclass(frozen=True)
class Scope:
    """What this agent's stack owns: it acts on nothing else."""

    rule_prefix: str  # "<name_prefix>-<env>-"
    group: str  # the model package group
    bucket: str  # the artifact bucket
    dataset_prefix: str | None  # new data's prefix in it (the new-data rule's pattern)
    repository: str | None = None  # the CodeCommit repository, when the stack has one


@dataclass(frozen=True)
class Action:
    task: tuple[str, ...]  # invoke arguments; {field}s come from the event
    why: str  # how the log says what fired, from the same fields


ACTIONS: dict[str, Action] = {
    "approval_deploy": Action(
        ("deploy", "--stage", "staging", "--version", "{version}"),
        "model package {group}/{version} was Approved",
    ),
    "commit_build": Action(
        ("pipeline-run", "--trigger", "commit", "--no-wait"),
        "commit {commit} pushed to {branch} of {repository}",
    ),
    "new_data_retraining": Action(
        ("pipeline-run", "--trigger", "new-data", "--data", "s3://{bucket}/{key}", "--no-wait"),
        "new object s3://{bucket}/{key}",
    ),
    "scheduled_retraining": Action(
        ("pipeline-run", "--trigger", "schedule", "--no-wait"),
        "schedule {expression} of rule {rule} is due",
    ),
    "drift_retraining": Action(
        ("pipeline-run", "--trigger", "drift", "--no-wait"),
        "alarm {alarm} entered ALARM",
    ),
}


# The source and detail-type of the event each purpose acts on (the rules' patterns).
EVENTS = {
    "approval_deploy": ("aws.sagemaker", "SageMaker Model Package State Change"),
    "commit_build": ("aws.codecommit", "CodeCommit Repository State Change"),
    "new_data_retraining": ("aws.s3", "Object Created"),
    "scheduled_retraining": ("aws.events", "Scheduled Event"),
    "drift_retraining": ("aws.cloudwatch", "CloudWatch Alarm State Change"),
}
# What a schedule rule's SageMaker pipeline parameters may set through the agent: how to
# train and judge. Never the approval status (it chains into a deploy), the commit, the
# check switches (they skip the gates), or a data location other than checked s3:// data.
SCHEDULE_PARAMETERS = frozenset(
    {
        "TargetColumn",
        "FeatureColumns",
        "ProcessingInstanceType",
        "ProcessingInstanceCount",
        "TrainingInstanceType",
        "NEstimators",
        "MaxDepth",
        "RandomState",
        "MinTestR2",
        "BiasFacetColumn",
        "BiasFacetThreshold",
        "BiasLabelThreshold",
    }
)
INPUT_DATA = "InputDataUrl"


def rule_name(prefix: str, purpose: str) -> str:
    return prefix + purpose.replace("_", "-")


def purpose_of(rule: str, prefix: str) -> str:
    """``mlops-local-approval-deploy`` (prefix ``mlops-local-``) -> ``approval_deploy``;
    only this stack's rules, by their exact names."""
    for purpose in ACTIONS:
        if rule == rule_name(prefix, purpose):
            return purpose
    known = ", ".join(rule_name(prefix, purpose) for purpose in ACTIONS)
    raise Ignored(f"Rule {rule!r} is not one of this stack's rules ({known}).")


def checked_data_uri(uri: str, scope: Scope) -> str:
    """``uri`` when it is ``s3://<own bucket>/<dataset prefix>...``; else Ignored."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    problem = None
    if not uri.startswith("s3://") or bucket != scope.bucket:
        problem = f"is not in this stack's bucket s3://{scope.bucket}/"
    elif scope.dataset_prefix is None:
        problem = "cannot be checked: the stack has no new-data rule (no dataset prefix)"
    elif not key.startswith(scope.dataset_prefix) or key == scope.dataset_prefix:
        problem = f"is not a file under s3://{scope.bucket}/{scope.dataset_prefix}"
    elif ".." in key.split("/") or any(ord(c) < 32 or ord(c) == 127 for c in key):
        problem = "holds a '..' segment or a control character"
    if problem:
        raise Ignored(f"The data URI {uri!r} {problem}.")
    return uri


def check_event(purpose: str, event: Mapping[str, Any], scope: Scope) -> None:
    """Ignored unless ``event`` is the kind ``purpose`` acts on, and this stack's."""
    source, detail_type = EVENTS[purpose]
    if (event.get("source"), event.get("detail-type")) != (source, detail_type):
        raise Ignored(
            f"A {event.get('source')!r} {event.get('detail-type')!r} event is not what the "
            f"{purpose} rule matches ({source} {detail_type})."
        )
    detail = event.get("detail") or {}
    if purpose == "approval_deploy":
        group = detail.get("ModelPackageGroupName")
        if group != scope.group:
            raise Ignored(f"Model package group {group!r} is not this stack's ({scope.group}).")
        if detail.get("ModelApprovalStatus") != "Approved":
            raise Ignored(f"The version is {detail.get('ModelApprovalStatus')}, not Approved.")
        version = detail.get("ModelPackageVersion")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise Ignored(f"ModelPackageVersion {version!r} is not a version number.")
    elif purpose == "new_data_retraining":
        bucket = (detail.get("bucket") or {}).get("name")
        key = (detail.get("object") or {}).get("key")
        if bucket != scope.bucket:
            raise Ignored(f"Bucket {bucket!r} is not this stack's ({scope.bucket}).")
        checked_data_uri(f"s3://{bucket}/{key}", scope)
    elif purpose == "commit_build":
        repository = detail.get("repositoryName")
        if scope.repository is None or repository != scope.repository:
            raise Ignored(
                f"Repository {repository!r} is not this stack's ({scope.repository or 'none'})."
            )
    elif purpose == "drift_retraining" and (detail.get("state") or {}).get("value") != "ALARM":
        raise Ignored("The alarm did not enter ALARM.")


def schedule_parameters(
    parameters: Mapping[str, str], scope: Scope
) -> tuple[dict[str, str], list[str]]:
    """(the parameters a schedule may pass, why each other one was dropped)."""
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in sorted(parameters.items()):
        if name in SCHEDULE_PARAMETERS:
            kept[name] = value
        elif name == INPUT_DATA:
            try:
                kept[name] = checked_data_uri(value, scope)
            except Ignored as error:
                dropped.append(f"{name}: {error}")
        else:
            dropped.append(f"{name}: a schedule may not set it")
    return kept, dropped


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
