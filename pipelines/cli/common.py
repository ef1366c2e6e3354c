"""What every task shares: settings from invoke.yaml, target options, confirmation."""

from __future__ import annotations

import sys

from invoke import Context

from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError

TARGET_HELP = {
    "target": "local (the emulator, default) or aws",
    "env": "environment: local for the local target; dev, prod, ... for aws (default dev)",
}


def settings(c: Context) -> Settings:
    return Settings.load(c.config.get("mlops"))


def deployment(target: str | None, env: str | None) -> Deployment:
    return Deployment.parse(target, env)


def confirm(question: str) -> None:
    """Ask on a terminal; refuse without one (scripts pass --yes)."""
    if not sys.stdin.isatty():
        raise MlopsError(f"{question} Refusing without a terminal: pass --yes to confirm.")
    answer = input(f"{question} Type 'yes' to continue: ")
    if answer.strip().lower() != "yes":
        raise MlopsError("Cancelled; nothing was changed.")


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"
