"""Each stage's deployment history: one JSON object per deployment in the stack's bucket.

``s3://<bucket>/deployments/<endpoint>/<UTC time>-v<version>.json``: the same store on
both targets (the emulator's S3 locally, the environment's encrypted bucket on AWS), so
who approved what, when, with which gate results, survives the terminal that ran it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.errors import MlopsError

PREFIX = "deployments"
DEPLOYED = "deployed"


@dataclass(frozen=True)
class DeploymentRecord:
    stage: str
    endpoint: str
    version: int
    package_arn: str
    kind: str  # deploy, promote or rollback
    strategy: str
    outcome: str  # deployed, rolled back: ..., blocked: ..., failed: ...
    at: float = field(default_factory=time.time)
    previous_version: int | None = None
    approval: dict[str, Any] | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def deployed(self) -> bool:
        return self.outcome == DEPLOYED

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class HistoryStore:
    def __init__(self, s3: Any, bucket: str, endpoint: str) -> None:
        self.s3, self.bucket, self.endpoint = s3, bucket, endpoint
        self.prefix = f"{PREFIX}/{endpoint}/"

    def add(self, record: DeploymentRecord) -> None:
        stamp = datetime.fromtimestamp(record.at, UTC).strftime("%Y%m%dT%H%M%S%fZ")
        key = f"{self.prefix}{stamp}-v{record.version}.json"
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=json.dumps(asdict(record), indent=2).encode(),
                ContentType="application/json",
            )
        except (ClientError, BotoCoreError) as error:
            raise MlopsError(
                f"Could not record the deployment in s3://{self.bucket}/{key}: {error}"
            ) from error

    def records(self) -> list[DeploymentRecord]:
        """Oldest first."""
        keys: list[str] = []
        try:
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                keys += [item["Key"] for item in page.get("Contents", [])]
            bodies = [
                self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                for key in sorted(keys)
            ]
        except (ClientError, BotoCoreError) as error:
            raise MlopsError(
                f"Could not read the deployment history s3://{self.bucket}/{self.prefix}: {error}"
            ) from error
        return [DeploymentRecord(**json.loads(body)) for body in bodies]

    def rollback_target(self) -> DeploymentRecord:
        """The version the stage served before its current one."""
        deployed = [r for r in self.records() if r.deployed]
        if not deployed:
            raise MlopsError(f"{self.endpoint} has no recorded deployment to roll back from.")
        current = deployed[-1].version
        for record in reversed(deployed):
            if record.version != current:
                return record
        raise MlopsError(
            f"{self.endpoint} has served only version {current}: there is no previous version "
            "to roll back to."
        )
