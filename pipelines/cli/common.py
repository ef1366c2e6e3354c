"""What every task shares: the task decorator, settings, target options, confirmation.

Task modules import only this, ``arguments`` and invoke at load time; each task imports
what it calls (``pipelines.actions``, ``pipelines.ui``) when it runs, so `invoke --list`
and `--help` cost what invoke costs, not the SageMaker SDK's or pandas' import time.
"""

from __future__ import annotations

import sys
from typing import Any

import invoke

from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError

TARGET_HELP = {
    "target": "local (the emulator, default) or aws",
    "env": "environment: local for the local target; dev, prod, ... for aws (default dev)",
}
PIPELINE_HELP = {
    "pipeline": "which pipeline: a name in invoke.yaml's mlops.pipelines, or a module not "
    "listed yet as path/to/file.py:get_pipeline or package.module:get_pipeline "
    "(default: mlops.default_pipeline)",
}
PIPELINE_TARGET_HELP = {**TARGET_HELP, **PIPELINE_HELP}
STAGE_HELP = {
    **PIPELINE_TARGET_HELP,
    "stage": "staging or prod (local: its own endpoint; aws: its Terraform environment); "
    "default: the environment's endpoint",
}


def task(*args: Any, **kwargs: Any) -> Any:
    """invoke's ``@task`` without automatic short flags: invoke derives them from each
    task's own parameters, so ``-t`` would mean ``--target`` in one task and ``--to`` in
    another. Every option is spelled out; ``-h`` stays help."""
    kwargs.setdefault("auto_shortflags", False)
    return invoke.task(*args, **kwargs)


def settings(c: invoke.Context, pipeline: str | None = None) -> Settings:
    """The project's settings; ``pipeline`` (--pipeline) chooses the pipeline they act on."""
    loaded = Settings.load(c.config.get("mlops"))
    return loaded.with_pipeline(pipeline) if pipeline else loaded


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
