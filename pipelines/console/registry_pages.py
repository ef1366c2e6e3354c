"""The registry page: the model package group's versions with their metrics, checks,
baselines and approval, and a form that approves or rejects one with a reason (through the
action `model-approve` / `model-reject` use, so the approver is recorded the same way)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.console.page import Page
from pipelines.core.errors import MlopsError

if TYPE_CHECKING:
    from pipelines.console.source import Source

# What Registry.set_status writes into the ApprovalDescription (SageMaker keeps the latest
# one only, so this is the version's approval record).
_DECISION = re.compile(r"^(approved|rejected) by (.+?) at (\S+?)(?:: (.*))?$", re.DOTALL)
DECISIONS = {"approve": True, "reject": False}


@dataclass
class Decision:
    verb: str = ""
    who: str = ""
    when: str = ""
    reason: str = ""
    text: str = ""  # the description as recorded, when it is not in the form above


def decision_of(description: str | None) -> Decision | None:
    if not description:
        return None
    found = _DECISION.match(description)
    if not found:
        return Decision(text=description)
    verb, who, when, reason = found.groups()
    return Decision(verb, who, when.replace("T", " ").replace("Z", " UTC"), reason or "")


@dataclass
class Metric:
    name: str
    value: float
    spread: float | None = None  # the report's standard deviation
    delta: float | None = None  # against the champion
    verdict: str = ""  # better, worse, same


@dataclass
class VersionRow:
    version: int
    status: str
    created: float
    metrics: list[Metric]
    champion: bool
    checks: str
    check_lines: list[str]
    baselines: str
    execution: str
    commit: str
    decision: Decision | None
    pending: bool
    model_data: str = ""
    notes: list[str] = field(default_factory=list)


def version_rows(listing: Any) -> list[VersionRow]:
    from pipelines.registry import PENDING, compare_metrics
    from pipelines.ui.registry_views import check_summary, checks_count

    champion = listing.champion
    best = listing.metrics.get(champion.version, {}) if champion else {}
    rows = []
    for version in listing.versions:  # newest first, as Registry.versions returns them
        values = listing.metrics.get(version.version, {})
        is_champion = champion is not None and version.version == champion.version
        deltas = {} if is_champion else {d.name: d for d in compare_metrics(values, best)}
        steps = listing.steps.get(version.version)
        checked = [s for s in steps or [] if s.type in ("QualityCheck", "ClarifyCheck")]
        rows.append(
            VersionRow(
                version=version.version,
                status=version.status,
                created=version.created_at,
                metrics=[
                    Metric(
                        name,
                        value,
                        listing.spreads.get(version.version, {}).get(name),
                        deltas[name].delta if name in deltas else None,
                        deltas[name].verdict if name in deltas else "",
                    )
                    for name, value in sorted(values.items())
                ],
                champion=is_champion,
                checks=(
                    "records gone"
                    if steps is None and version.version in listing.steps
                    else checks_count(steps or [])
                ),
                check_lines=[check_summary(s) for s in checked],
                baselines=", ".join(version.drift_baselines) or "none",
                execution=version.execution_id or "",
                commit=(version.commit or "")[:12],
                decision=decision_of(version.approval_description),
                pending=version.status == PENDING,
                model_data=version.model_data_url,
            )
        )
    return rows


def registry(source: Source, query: Mapping[str, str]) -> Page:
    listing = source.model_versions()
    return Page(
        "Registry",
        "registry.html",
        {
            # The group, from a version's ARN (``...:model-package/<group>/<version>``).
            "group": listing.versions[0].arn.rsplit("/", 2)[-2] if listing.versions else "",
            "versions": version_rows(listing),
            "champion": listing.champion.version if listing.champion else None,
        },
        section="registry",
    )


def approve_or_reject(source: Source, form: Mapping[str, Any]) -> tuple[Page, str]:
    """The approve / reject form: checked first (nothing changes on bad input), then the
    same action as `model-approve` / `model-reject`."""
    decision = str(form.get("decision", ""))
    if decision not in DECISIONS:
        raise MlopsError(f"Unknown decision {decision!r}: the form approves or rejects.")
    text = str(form.get("version", "")).strip()
    if not text.isdigit() or int(text) < 1:
        raise MlopsError(f"The version to {decision} must be a whole number, got {text!r}.")
    reason = str(form.get("reason", "")).strip()
    if decision == "reject" and not reason:
        raise MlopsError(
            f"Say why version {text} is rejected in the reason field: it is recorded with the "
            "rejection. Nothing was changed."
        )
    changed = source.set_approval(int(text), DECISIONS[decision], reason)
    flash = f"Version {changed.version}: {changed.status} ({changed.approval_description})"
    return registry(source, {}), flash


def exported(source: Source) -> Iterable[tuple[str, dict[str, str]]]:
    yield "registry", {}
