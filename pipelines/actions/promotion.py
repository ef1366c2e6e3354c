"""The promotion task: gates on the source stage, an explicit approval, the rollout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipelines.config.settings import Settings
from pipelines.promotion.approval import Approval, check_flags, obtain_approval
from pipelines.promotion.gates import GateResult
from pipelines.promotion.promote import GateFailure, Promotion, check_promotion, promote
from pipelines.registry import ModelVersion

ShowGates = Callable[[list[GateResult], str], None]


@dataclass(frozen=True)
class PromotionRequest:
    """What `invoke promote` was asked, as typed on the command line."""

    from_stage: str
    to_stage: str
    target: str | None = None
    env: str | None = None
    strategy: str | None = None
    approved_by: str | None = None
    reason: str | None = None
    allow_backward: bool = False
    allow_downgrade: bool = False


def promote_stage(
    settings: Settings,
    request: PromotionRequest,
    *,
    interactive: bool,
    show_gates: ShowGates,
    warn: Callable[[str], None],
) -> Promotion:
    """Run a promotion; ``show_gates`` sees the gate report before the approval is asked
    for (and when a gate fails, before the error); ``warn`` a downgrade before that."""
    from_stage, to_stage = request.from_stage, request.to_stage

    def approve(results: list[GateResult], version: ModelVersion) -> Approval:
        show_gates(results, f"Promotion gates: version {version.version} on {from_stage}")
        return obtain_approval(
            f"Promote version {version.version} from {from_stage} to {to_stage}?",
            approved_by=request.approved_by,
            reason=request.reason,
            interactive=interactive,
        )

    # Every refusal the arguments alone decide comes before anything is opened.
    check_promotion(
        settings, from_stage, to_stage, request.strategy,
        allow_backward=request.allow_backward, reason=request.reason,
    )  # fmt: skip
    check_flags(request.approved_by, request.reason, interactive)
    try:
        return promote(
            settings,
            from_stage=from_stage,
            to_stage=to_stage,
            approve=approve,
            target=request.target,
            env=request.env,
            strategy=request.strategy,
            approved_by=request.approved_by,
            reason=request.reason,
            allow_backward=request.allow_backward,
            allow_downgrade=request.allow_downgrade,
            warn=warn,
        )
    except GateFailure as failure:
        show_gates(failure.results, f"Promotion gates on {from_stage}")
        raise
