"""Promotion's refusals, decided from the arguments and the stages' versions before any
gate runs: forward only along the stage order, no silent downgrade (no servers)."""

from __future__ import annotations

import pytest

from pipelines.actions.promotion import PromotionRequest, promote_stage
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.promotion.approval import obtain_approval
from pipelines.promotion.promote import check_downgrade, check_promotion
from pipelines.registry import APPROVED, ModelVersion

SETTINGS = Settings.load(None, environ={})


def version(number: int) -> ModelVersion:
    return ModelVersion(
        f"arn:aws:sagemaker:us-east-1:1:model-package/g/{number}", number, APPROVED, 0
    )


def test_promotion_goes_forward_along_the_stages_unless_asked_with_a_reason():
    check_promotion(SETTINGS, "staging", "prod", None)
    with pytest.raises(MlopsError, match=r"goes backward along the stages \(staging → prod\)"):
        check_promotion(SETTINGS, "prod", "staging", None)
    with pytest.raises(MlopsError, match="--allow-backward needs --reason"):
        check_promotion(SETTINGS, "prod", "staging", None, allow_backward=True)
    check_promotion(SETTINGS, "prod", "staging", None, allow_backward=True, reason="prod bug")


def test_a_backward_promotion_is_refused_before_any_stage_is_opened(tmp_path):
    settings = Settings.load(None, environ={"MLOPS_STATE_DIR": str(tmp_path / "state")})
    request = PromotionRequest("prod", "staging", approved_by="ci", reason="x")
    with pytest.raises(MlopsError, match="pass --allow-backward --reason TEXT"):
        promote_stage(
            settings, request, interactive=False, show_gates=pytest.fail, warn=pytest.fail
        )
    assert not (tmp_path / "state").exists()  # no emulator looked for, nothing opened


def test_a_downgrade_is_refused_without_allow_downgrade_and_otherwise_a_warning():
    assert check_downgrade(None, version(3), "prod", allowed=False) is None
    assert check_downgrade(3, version(3), "prod", allowed=False) is None
    assert check_downgrade(2, version(3), "prod", allowed=False) is None
    with pytest.raises(MlopsError, match=r"prod serves version 5, newer than version 3.*--allow"):
        check_downgrade(5, version(3), "prod", allowed=False)
    note = check_downgrade(5, version(3), "prod", allowed=True)
    assert note == "prod serves version 5, newer than version 3: this promotion downgrades prod."


def test_a_reason_given_on_the_command_line_is_the_terminal_approvers():
    asked = []
    approval = obtain_approval(
        "Promote?",
        approved_by=None,
        reason="rolling prod back to staging's version",
        interactive=True,
        ask=lambda question: asked.append(question) or "yes",
    )
    assert approval.how == "terminal"
    assert approval.reason == "rolling prod back to staging's version"
    assert len(asked) == 1  # only the confirmation: the reason was given
    with pytest.raises(MlopsError, match="run it at a terminal"):
        obtain_approval("?", approved_by=None, reason="why", interactive=False)
