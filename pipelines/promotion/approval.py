"""The explicit approval a promotion needs: a person at a terminal, or named flags."""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines.core.errors import MlopsError

Ask = Callable[[str], str]


@dataclass(frozen=True)
class Approval:
    approved_by: str
    reason: str
    how: str  # "terminal" or "flags"
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NO_TERMINAL = (
    "Promotion needs an explicit approval: run it at a terminal to confirm, or pass "
    "--approved-by NAME --reason TEXT. Nothing was changed."
)


def check_flags(approved_by: str | None, reason: str | None, interactive: bool = True) -> None:
    """--approved-by comes with --reason, and without a terminal it is needed (a --reason
    alone is the terminal approver's); checked before any slow work."""
    if approved_by and not reason:
        raise MlopsError(
            "Automated approval needs both --approved-by NAME and --reason TEXT; "
            "nothing was changed."
        )
    if not approved_by and not interactive:
        raise MlopsError(_NO_TERMINAL)


def obtain_approval(
    question: str,
    *,
    approved_by: str | None,
    reason: str | None,
    interactive: bool,
    ask: Ask = input,
) -> Approval:
    """Who approves and why: the flags when given, else the person at the terminal (with
    the --reason given, or asked for)."""
    check_flags(approved_by, reason, interactive)
    if approved_by and reason:
        return Approval(approved_by.strip(), reason.strip(), "flags")
    if ask(f"{question} Type 'yes' to approve: ").strip().lower() != "yes":
        raise MlopsError("Not approved; the target stage was left as it was.")
    why = (reason or ask("Reason (recorded with the deployment): ")).strip()
    if not why:
        raise MlopsError("An approval needs a reason; the target stage was left as it was.")
    return Approval(getpass.getuser(), why, "terminal")
