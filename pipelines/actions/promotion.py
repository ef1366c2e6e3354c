"""The promotion task: gates on the source stage, an explicit approval, the rollout."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.config.settings import Settings
from pipelines.promotion.approval import Approval, check_flags, obtain_approval
from pipelines.promotion.gates import GateResult
from pipelines.promotion.promote import GateFailure, Promotion, promote
from pipelines.registry import ModelVersion

ShowGates = Callable[[list[GateResult], str], None]


def promote_stage(
    settings: Settings,
    from_stage: str,
    to_stage: str,
    target: str | None,
    env: str | None,
    strategy: str | None,
    approved_by: str | None,
    reason: str | None,
    *,
    interactive: bool,
    show_gates: ShowGates,
) -> Promotion:
    """Run a promotion; ``show_gates`` sees the gate report before the approval is asked
    for (and when a gate fails, before the error)."""

    def approve(results: list[GateResult], version: ModelVersion) -> Approval:
        show_gates(results, f"Promotion gates: version {version.version} on {from_stage}")
        return obtain_approval(
            f"Promote version {version.version} from {from_stage} to {to_stage}?",
            approved_by=approved_by,
            reason=reason,
            interactive=interactive,
        )

    check_flags(approved_by, reason, interactive)
    try:
        return promote(
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
        show_gates(failure.results, f"Promotion gates on {from_stage}")
        raise
