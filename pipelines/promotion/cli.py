"""What ``invoke promote`` shows: the gate report, the approval prompt, the outcome."""

from __future__ import annotations

import sys

from pipelines.config.settings import Settings
from pipelines.promotion.approval import Approval, check_flags, obtain_approval
from pipelines.promotion.gates import GateResult
from pipelines.promotion.promote import GateFailure, promote
from pipelines.promotion.report import gate_table
from pipelines.registry import ModelVersion
from pipelines.ui.console import console


def promote_from_terminal(
    settings: Settings,
    from_stage: str,
    to_stage: str,
    target: str | None,
    env: str | None,
    strategy: str | None,
    approved_by: str | None,
    reason: str | None,
) -> str:
    """Run a promotion, printing the gate report before the approval is asked for."""

    def approve(results: list[GateResult], version: ModelVersion) -> Approval:
        console.print(gate_table(results, _title(version, from_stage)))
        return obtain_approval(
            f"Promote version {version.version} from {from_stage} to {to_stage}?",
            approved_by=approved_by,
            reason=reason,
            interactive=sys.stdin.isatty(),
        )

    check_flags(approved_by, reason, sys.stdin.isatty())
    try:
        done = promote(
            settings,
            from_stage=from_stage,
            to_stage=to_stage,
            approve=approve,
            target=target,
            env=env,
            strategy=strategy,
            approved_by=approved_by,
            reason=reason,
        )
    except GateFailure as failure:
        console.print(gate_table(failure.results, f"Promotion gates on {from_stage}"))
        raise
    approval = done.approval
    return (
        f"Approved by {approval.approved_by} ({approval.how}): {approval.reason}\n"
        f"Promoted version {done.version.version} to {to_stage} "
        f"({done.rollout.record.strategy}). {done.rollout.message}"
    )


def _title(version: ModelVersion, stage: str) -> str:
    return f"Promotion gates: version {version.version} on {stage}"
