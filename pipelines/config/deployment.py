"""Which stack a command acts on: a target (the local emulator or AWS) and an environment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pipelines.core.errors import MlopsError

TargetName = Literal["local", "aws"]
TARGETS: tuple[TargetName, ...] = ("local", "aws")
LOCAL_ENV = "local"
DEFAULT_AWS_ENV = "dev"
_ENV_NAME = re.compile(r"^[a-z][a-z0-9]{1,9}$")


@dataclass(frozen=True)
class Deployment:
    """One stack: a target plus an environment name (``local``, ``aws/dev``, ...)."""

    target: TargetName
    env: str

    @classmethod
    def parse(cls, target: str | None = None, env: str | None = None) -> Deployment:
        target = (target or "local").lower()
        if target not in TARGETS:
            raise MlopsError(f"Unknown target {target!r}: choose one of {', '.join(TARGETS)}.")
        if target == "local":
            if env not in (None, "", LOCAL_ENV):
                raise MlopsError(
                    f"The local target has one environment, 'local'; got --env {env!r}. "
                    "Use --target aws for dev/prod."
                )
            return cls("local", LOCAL_ENV)
        env = env or DEFAULT_AWS_ENV
        if env == LOCAL_ENV or not _ENV_NAME.match(env):
            raise MlopsError(
                f"Invalid AWS environment {env!r}: use 2-10 lower-case letters or digits "
                "(e.g. dev, prod), other than 'local'."
            )
        return cls("aws", env)

    @property
    def is_local(self) -> bool:
        return self.target == "local"

    @property
    def slug(self) -> str:
        return "local" if self.is_local else f"aws-{self.env}"

    def __str__(self) -> str:
        return "local" if self.is_local else f"aws/{self.env}"
