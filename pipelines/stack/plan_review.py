"""Turn ``terraform show -json`` of a plan into a Markdown review for a pull request.

Pure functions: the plan JSON in, a summary and Markdown out. Resources are listed
by action, and the changes a security reviewer must read (IAM statements, bucket
policy, encryption, public access, key rotation) are called out with their
values, flagging wildcards and anything that weakens the defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTION_ORDER = ("create", "update", "replace", "delete")
_POLICY_ATTRIBUTES = {
    "aws_iam_role": ("assume_role_policy",),
    "aws_iam_role_policy": ("policy",),
    "aws_iam_policy": ("policy",),
    "aws_s3_bucket_policy": ("policy",),
    "aws_kms_key": ("policy",),
    # Who may send to the automation agent's queue (and, with monitoring, publish to a topic).
    "aws_sqs_queue_policy": ("policy",),
    "aws_sns_topic_policy": ("policy",),
    "aws_sagemaker_model_package_group_policy": ("resource_policy",),
}
_SECURITY_TYPES = frozenset(
    {
        *_POLICY_ATTRIBUTES,
        "aws_iam_role_policy_attachment",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_versioning",
        "aws_s3_bucket_acl",
        "aws_s3_bucket_ownership_controls",
        # Model monitoring: who gets alerts, how they are encrypted, what fires them.
        "aws_sns_topic",
        "aws_sns_topic_subscription",
        "aws_cloudwatch_metric_alarm",
    }
)
_PUBLIC_ACCESS_FLAGS = (
    "block_public_acls",
    "block_public_policy",
    "ignore_public_acls",
    "restrict_public_buckets",
)
UNKNOWN = "(known after apply)"
_ACCOUNT_IN_PRINCIPAL = re.compile(r"^(?:arn:[a-z-]+:iam::)?([0-9]{12})(?::|$)")


@dataclass(frozen=True)
class ResourceChange:
    address: str
    type: str
    action: str  # create | update | replace | delete
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    after_unknown: Mapping[str, Any]
    # Attributes Terraform marks sensitive: their values never go into the review.
    sensitive: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SecurityNote:
    address: str
    action: str
    lines: tuple[str, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedPipeline:
    """One pipeline of the stack (the ``pipelines`` variable and output): its names."""

    key: str
    pipeline_name: str
    model_package_group_name: str
    endpoint_name: str
    drift_alarms: int
    first: bool = False  # keeps the environment's own names; automation acts on it
    status: str = ""  # "new" or "removed" by this plan; "" when it stays


@dataclass(frozen=True)
class PlanSummary:
    changes: tuple[ResourceChange, ...]
    security: tuple[SecurityNote, ...]
    output_changes: tuple[str, ...] = field(default=())
    pipelines: tuple[PlannedPipeline, ...] = field(default=())

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def by_action(self, action: str) -> list[ResourceChange]:
        return [c for c in self.changes if c.action == action]

    @property
    def warnings(self) -> list[str]:
        return [f"{note.address}: {w}" for note in self.security for w in note.warnings]


def classify_actions(actions: Iterable[str]) -> str | None:
    """Map Terraform's action list to one review category; None for no-op/read."""
    actions = tuple(actions)
    if set(actions) == {"create", "delete"}:
        return "replace"
    if actions == ("create",):
        return "create"
    if actions == ("update",):
        return "update"
    if actions == ("delete",):
        return "delete"
    return None


def summarize_plan(plan: Mapping[str, Any]) -> PlanSummary:
    changes: list[ResourceChange] = []
    for entry in plan.get("resource_changes", []):
        if entry.get("mode") != "managed":
            continue
        change = entry.get("change", {})
        action = classify_actions(change.get("actions", []))
        if action is None:
            continue
        changes.append(
            ResourceChange(
                address=entry["address"],
                type=entry["type"],
                action=action,
                before=change.get("before"),
                after=change.get("after"),
                after_unknown=change.get("after_unknown") or {},
                sensitive=frozenset(
                    name
                    for key in ("before_sensitive", "after_sensitive")
                    for name, marked in (change.get(key) or {}).items()
                    if marked
                ),
            )
        )
    changes.sort(key=lambda c: (ACTION_ORDER.index(c.action), c.address))
    account = planning_account(plan)
    security = tuple(
        note
        for note in (security_note(c, account) for c in changes if c.type in _SECURITY_TYPES)
        if note
    )
    outputs = tuple(
        sorted(
            name
            for name, change in plan.get("output_changes", {}).items()
            if classify_actions(change.get("actions", [])) is not None
        )
    )
    return PlanSummary(
        changes=tuple(changes),
        security=security,
        output_changes=outputs,
        pipelines=planned_pipelines(plan),
    )


def planned_pipelines(plan: Mapping[str, Any]) -> tuple[PlannedPipeline, ...]:
    """The stack's pipelines after the plan, in the ``pipelines`` variable's order (the
    first keeps the environment's names), then those the plan removes."""
    change = plan.get("output_changes", {}).get("pipelines") or {}
    after = change.get("after") if isinstance(change.get("after"), Mapping) else {}
    before = change.get("before") if isinstance(change.get("before"), Mapping) else None
    variable = (plan.get("variables", {}).get("pipelines") or {}).get("value") or []
    order = [str(item.get("key")) for item in variable if isinstance(item, Mapping)]
    keys = [k for k in order if k in after] + sorted(k for k in after if k not in order)
    alarms: dict[str, int] = {}
    pending = [plan.get("planned_values", {}).get("root_module", {})]
    while pending:
        module = pending.pop()
        for resource in module.get("resources", []):
            if resource.get("type") == "aws_cloudwatch_metric_alarm":
                endpoint = ((resource.get("values") or {}).get("dimensions") or {}).get("Endpoint")
                alarms[endpoint] = alarms.get(endpoint, 0) + 1
        pending += module.get("child_modules", [])

    def planned(key: str, names: Mapping[str, Any], status: str) -> PlannedPipeline:
        endpoint = str((names.get("endpoint_names") or {}).get("default", "?"))
        return PlannedPipeline(
            key=key,
            pipeline_name=str(names.get("pipeline_name", "?")),
            model_package_group_name=str(names.get("model_package_group_name", "?")),
            endpoint_name=endpoint,
            drift_alarms=alarms.get(endpoint, 0) if status != "removed" else 0,
            first=bool(order) and key == order[0] and status != "removed",
            status=status,
        )

    found = [
        planned(k, after[k], "new" if before is not None and k not in before else "") for k in keys
    ]
    found += [planned(k, before[k], "removed") for k in sorted(before or {}) if k not in after]
    return tuple(found)


def planning_account(plan: Mapping[str, Any]) -> str | None:
    """The account the plan was made in: ``aws_caller_identity`` as read while planning."""
    pending = [plan.get("prior_state", {}).get("values", {}).get("root_module", {})]
    while pending:
        module = pending.pop()
        for resource in module.get("resources", []):
            if resource.get("type") == "aws_caller_identity" and resource.get("mode") == "data":
                account = (resource.get("values") or {}).get("account_id")
                if account:
                    return str(account)
        pending += module.get("child_modules", [])
    return None


def other_accounts(statement: Mapping[str, Any], own_account: str | None) -> list[str]:
    """Accounts other than ``own_account`` that an Allow statement names as principals."""
    if own_account is None or statement.get("Effect", "Allow") != "Allow":
        return []
    principal = statement.get("Principal")
    names = _as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []
    accounts = {m.group(1) for m in map(_ACCOUNT_IN_PRINCIPAL.match, names) if m}
    return sorted(accounts - {own_account})


# --- security notes -------------------------------------------------------------------


def security_note(change: ResourceChange, own_account: str | None = None) -> SecurityNote | None:
    state = change.before if change.action == "delete" else change.after
    state = state or {}
    lines: list[str] = []
    warnings: list[str] = []

    for attribute in _POLICY_ATTRIBUTES.get(change.type, ()):
        if change.after_unknown.get(attribute) and change.action != "delete":
            lines.append(f"`{attribute}`: {UNKNOWN}")
            continue
        document = _parse_policy(state.get(attribute))
        if document is None:
            continue
        before_doc = _parse_policy((change.before or {}).get(attribute))
        if change.action == "update" and before_doc == document:
            continue
        lines.append(f"`{attribute}`:")
        # On an update, each statement says whether it is new, gone or as it was.
        before_statements = (
            _statements(before_doc) if change.action == "update" and before_doc else None
        )
        for removed in _missing(before_statements or [], _statements(document)):
            lines.append("  - **removed:** " + describe_statement(removed))
        for statement in _statements(document):
            mark = ""
            if before_statements is not None:
                mark = "**added:** " if _missing([statement], before_statements) else "unchanged: "
            lines.append("  - " + mark + describe_statement(statement))
            # In a key policy, Resource "*" means the key itself; only the principal matters.
            key_policy = change.type == "aws_kms_key"
            warnings.extend(statement_warnings(statement, resource_scoped=key_policy))
            accounts = other_accounts(statement, own_account)
            if accounts and change.action != "delete":
                sid = statement.get("Sid") or "(no Sid)"
                actions = ", ".join(_as_list(statement.get("Action")))
                warnings.append(
                    f"cross-account grant: {sid} lets account(s) {', '.join(accounts)} "
                    f"use `{actions}`"
                )

    if change.type == "aws_iam_role_policy_attachment":
        arn = state.get("policy_arn") or UNKNOWN
        lines.append(f"attaches managed policy `{arn}`")
        if isinstance(arn, str) and arn.startswith("arn:aws:iam::aws:policy/"):
            name = arn.rsplit("/", 1)[-1]
            if name in {"AdministratorAccess", "PowerUserAccess"} or name.endswith("FullAccess"):
                warnings.append(f"broad AWS managed policy {name} attached")

    if change.type == "aws_s3_bucket_public_access_block":
        flags = {flag: state.get(flag) for flag in _PUBLIC_ACCESS_FLAGS}
        lines.append(", ".join(f"`{k}` = {str(v).lower()}" for k, v in flags.items()))
        off = [k for k, v in flags.items() if v is False]
        if off and change.action != "delete":
            warnings.append("public access block disabled: " + ", ".join(off))
        if change.action == "delete":
            warnings.append("public access block removed")

    if change.type == "aws_s3_bucket_server_side_encryption_configuration":
        for rule in state.get("rule") or []:
            for default in rule.get("apply_server_side_encryption_by_default") or []:
                key = default.get("kms_master_key_id") or (
                    UNKNOWN
                    if default.get("sse_algorithm") == "aws:kms" and change.action != "delete"
                    else "-"
                )
                lines.append(f"default encryption `{default.get('sse_algorithm')}`, key `{key}`")
        if change.action == "delete":
            warnings.append("default bucket encryption removed")

    if change.type == "aws_s3_bucket_versioning":
        for config in state.get("versioning_configuration") or []:
            status = config.get("status")
            lines.append(f"versioning `{status}`")
            if status != "Enabled" and change.action != "delete":
                warnings.append(f"versioning {status}")

    if change.type == "aws_kms_key" and change.action != "delete":
        rotation = state.get("enable_key_rotation")
        lines.append(f"key rotation `{str(rotation).lower()}`")
        if rotation is False:
            warnings.append("KMS key rotation disabled")

    if change.type == "aws_s3_bucket_acl":
        lines.append(f"ACL `{state.get('acl')}`")
        if state.get("acl") in {"public-read", "public-read-write", "authenticated-read"}:
            warnings.append(f"bucket ACL {state.get('acl')}")

    if change.type == "aws_s3_bucket_ownership_controls":
        for rule in state.get("rule") or []:
            lines.append(f"object ownership `{rule.get('object_ownership')}`")

    _monitoring_lines(change, state, lines, warnings)
    if not lines and not warnings:
        return None
    return SecurityNote(change.address, change.action, tuple(lines), tuple(warnings))


def _monitoring_lines(
    change: ResourceChange, state: Mapping[str, Any], lines: list[str], warnings: list[str]
) -> None:
    """SNS topics (encryption), their subscriptions and the alarms that notify them."""
    deleting = change.action == "delete"
    if change.type == "aws_sns_topic":
        key = state.get("kms_master_key_id") or (
            UNKNOWN if change.after_unknown.get("kms_master_key_id") else None
        )
        lines.append(f"SNS topic `{state.get('name')}`, encrypted with key `{key or '-'}`")
        if not key and not deleting:
            warnings.append("SNS topic not encrypted")
    if change.type == "aws_sns_topic_subscription":
        lines.append(f"subscription `{state.get('protocol')}` to `{state.get('endpoint')}`")
        if state.get("protocol") == "http" and not deleting:
            warnings.append("plain-http subscription: notifications travel unencrypted")
    if change.type == "aws_cloudwatch_metric_alarm":
        dimensions = ", ".join(
            f"{k}={v}" for k, v in sorted((state.get("dimensions") or {}).items())
        )
        actions = state.get("alarm_actions") or []
        target = (
            ", ".join(actions)
            if actions
            else UNKNOWN
            if change.after_unknown.get("alarm_actions")
            else "nothing"
        )
        lines.append(
            f"alarm `{state.get('alarm_name')}`: {state.get('statistic')} of "
            f"`{state.get('namespace')} {state.get('metric_name')}` ({dimensions}) "
            f"{state.get('comparison_operator')} {state.get('threshold')} notifies {target}"
        )


def _missing(
    statements: list[Mapping[str, Any]], among: list[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The statements not in ``among`` (compared whole, key order aside)."""
    present = {json.dumps(s, sort_keys=True) for s in among}
    return [s for s in statements if json.dumps(s, sort_keys=True) not in present]


# --- attribute changes of an update ---------------------------------------------------


def attribute_changes(change: ResourceChange) -> list[tuple[str, str, str]]:
    """(attribute, before, after) of each top-level attribute an update or replacement
    changes; policies are shown statement by statement in the security section."""
    if change.action not in ("update", "replace"):
        return []
    before, after = change.before or {}, change.after or {}
    policies = set(_POLICY_ATTRIBUTES.get(change.type, ()))
    found = []
    for name in sorted(set(before) | set(after) | set(change.after_unknown)):
        if name in policies or name == "tags_all":
            continue
        if name in change.sensitive:
            if before.get(name) != after.get(name) or change.after_unknown.get(name):
                found.append((name, "(sensitive)", "(sensitive)"))
            continue
        if change.after_unknown.get(name) is True:
            if name in before and before.get(name) is not None:
                found.append((name, _short(before.get(name)), UNKNOWN))
            continue
        if before.get(name) != after.get(name):
            found.append((name, _short(before.get(name)), _short(after.get(name))))
    return found


def _short(value: Any, limit: int = 120) -> str:
    text = (
        "null"
        if value is None
        else value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_policy(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def describe_statement(statement: Mapping[str, Any]) -> str:
    sid = statement.get("Sid") or "(no Sid)"
    effect = statement.get("Effect", "Allow")
    actions = _as_list(statement.get("Action")) or [
        f"NOT {a}" for a in _as_list(statement.get("NotAction"))
    ]
    resources = _as_list(statement.get("Resource")) or [
        f"NOT {r}" for r in _as_list(statement.get("NotResource"))
    ]
    principal = statement.get("Principal")
    parts = [f"**{sid}** {effect} `{', '.join(actions)}`"]
    if resources:
        parts.append(f"on `{', '.join(resources)}`")
    if principal is not None:
        parts.append(f"for `{json.dumps(principal, sort_keys=True)}`")
    if statement.get("Condition"):
        parts.append(f"when `{json.dumps(statement['Condition'], sort_keys=True)}`")
    return " ".join(parts)


def statement_warnings(statement: Mapping[str, Any], *, resource_scoped: bool = False) -> list[str]:
    """Warnings for an Allow statement; ``resource_scoped`` for policies attached to one
    resource (key policies), where Resource "*" means that resource."""
    if statement.get("Effect", "Allow") != "Allow":
        return []
    sid = statement.get("Sid") or "(no Sid)"
    actions = _as_list(statement.get("Action"))
    resources = [] if resource_scoped else _as_list(statement.get("Resource"))
    warnings: list[str] = []
    if "*" in actions and "*" in resources:
        warnings.append(f"{sid} allows every action on every resource (*:*)")
    elif "*" in actions:
        warnings.append(f"{sid} allows every action")
    elif any(a.endswith(":*") for a in actions) and "*" in resources:
        warnings.append(f"{sid} allows a whole service on every resource")
    if statement.get("NotAction") or statement.get("NotResource"):
        warnings.append(f"{sid} uses NotAction/NotResource")
    principal = statement.get("Principal")
    anyone = principal == "*" or (
        isinstance(principal, Mapping) and "*" in _as_list(principal.get("AWS"))
    )
    if anyone and not statement.get("Condition"):
        warnings.append(f"{sid} allows any principal without a condition")
    return warnings


# --- rendering ------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedCheck:
    check: str
    reason: str
    resource: str  # the block the skip comment sits in
    file: str


_SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+):(.*)$")
_BLOCK = re.compile(r'^\s*(resource|data|module)\s+"([^"]+)"(?:\s+"([^"]+)")?')


def skipped_checks(code_dir: Path) -> list[SkippedCheck]:
    """The checkov checks the code skips inline (``#checkov:skip=ID:reason``), each with
    its justification and the block it sits in."""
    found = []
    for path in sorted(code_dir.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        block = "?"
        for line in path.read_text().splitlines():
            if opened := _BLOCK.match(line):
                kind, first, second = opened.groups()
                block = f"{first}.{second}" if kind == "resource" else f"{kind}.{first}"
            if skip := _SKIP.search(line):
                relative = path.relative_to(code_dir).as_posix()
                found.append(SkippedCheck(skip[1], skip[2].strip(), block, relative))
    return found


def render_markdown(
    summary: PlanSummary,
    *,
    title: str,
    checkov: CheckovSummary | None = None,
    skipped: list[SkippedCheck] | tuple[SkippedCheck, ...] = (),
) -> str:
    lines = [f"## {title}", ""]
    if not summary.has_changes:
        lines += ["**No changes.** The infrastructure matches the configuration.", ""]
    else:
        counts = ", ".join(
            f"{len(summary.by_action(a))} to {a}" for a in ACTION_ORDER if summary.by_action(a)
        )
        lines += [f"**Plan:** {counts}.", ""]
        icons = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}
        for action in ACTION_ORDER:
            items = summary.by_action(action)
            if not items:
                continue
            lines.append(f"### {action.capitalize()} ({len(items)})")
            lines.append("")
            for item in items:
                lines.append(f"- `{icons[action]}` `{item.address}`")
                lines += [
                    f"  - `{name}`: `{old}` → `{new}`" for name, old, new in attribute_changes(item)
                ]
            lines.append("")

    if summary.pipelines:
        lines += _pipeline_lines(summary.pipelines)

    if summary.security:
        lines += ["### Security-relevant changes", ""]
        if summary.warnings:
            lines += [f"> :warning: {w}" for w in summary.warnings] + [""]
        for note in summary.security:
            lines.append(f"- **{note.action}** `{note.address}`")
            lines += [
                f"  {line}" if line.startswith("  ") else f"  - {line}" for line in note.lines
            ]
        lines.append("")
    elif summary.has_changes:
        lines += ["### Security-relevant changes", "", "None.", ""]

    if summary.output_changes:
        lines += ["### Output changes", "", ", ".join(f"`{o}`" for o in summary.output_changes), ""]

    if checkov is not None:
        lines += ["### checkov", "", checkov.markdown(), ""]
    if skipped:
        lines += ["Skipped inline, with the code's justification:", ""]
        lines += [f"- `{s.check}` on `{s.resource}` ({s.file}): {s.reason}" for s in skipped]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _pipeline_lines(pipelines: tuple[PlannedPipeline, ...]) -> list[str]:
    lines = [
        f"### Pipelines ({sum(p.status != 'removed' for p in pipelines)})",
        "",
        "Each has its own SageMaker pipeline (also its jobs' and artifacts' prefix), model "
        "package group, endpoints and drift alarms; the execution role may use them all.",
        "",
        "| pipeline | SageMaker pipeline | model package group | endpoint | drift alarms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in pipelines:
        notes = [
            *(["first: the environment's own names; automation acts on it"] if p.first else []),
            *([f"**{p.status}**"] if p.status else []),
        ]
        key = f"`{p.key}`" + (f" ({'; '.join(notes)})" if notes else "")
        lines.append(
            f"| {key} | `{p.pipeline_name}` | `{p.model_package_group_name}` "
            f"| `{p.endpoint_name}` | {p.drift_alarms} |"
        )
    return [*lines, ""]


@dataclass(frozen=True)
class CheckovSummary:
    passed: int
    failed: int
    skipped: int
    failures: tuple[str, ...] = ()
    error: str | None = None

    def markdown(self) -> str:
        if self.error:
            return f"Not run: {self.error}"
        text = f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped."
        if self.failures:
            text += "\n\n" + "\n".join(f"- :x: {f}" for f in self.failures)
        return text


def summarize_checkov(report: Any) -> CheckovSummary:
    """Summarise checkov's JSON report (one framework object or a list of them)."""
    reports = report if isinstance(report, list) else [report]
    passed = failed = skipped = 0
    failures: list[str] = []
    for item in reports:
        if not isinstance(item, Mapping):
            continue
        summary = item.get("summary", {})
        passed += int(summary.get("passed", 0))
        failed += int(summary.get("failed", 0))
        skipped += int(summary.get("skipped", 0))
        for check in item.get("results", {}).get("failed_checks", []):
            failures.append(
                f"{check.get('check_id')} {check.get('check_name')} ({check.get('resource')})"
            )
    return CheckovSummary(passed, failed, skipped, tuple(sorted(failures)))
