"""Data capture like SageMaker's: sampled requests and responses as JSON lines in S3.

Records follow SageMaker's capture format (``captureData.endpointInput`` /
``endpointOutput``, ``eventMetadata``, ``eventVersion``) under
``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``, so drift checks can
read local and AWS captures the same way.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.s3io import parse_s3_uri


@dataclass(frozen=True)
class CaptureSettings:
    destination: str  # s3://bucket/prefix
    percent: float  # 0..100 of requests captured
    endpoint: str
    variant: str = "AllTraffic"


def _encoded(body: bytes, content_type: str | None) -> dict[str, str]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in ("text/csv", "application/json"):
        try:
            return {
                "data": body.decode("utf-8"),
                "encoding": "CSV" if media == "text/csv" else "JSON",
            }
        except UnicodeDecodeError:
            pass
    return {"data": base64.b64encode(body).decode("ascii"), "encoding": "BASE64"}


def capture_record(
    request: bytes,
    request_type: str | None,
    response: bytes,
    response_type: str | None,
    when: datetime,
    inference_id: str | None = None,
) -> dict[str, Any]:
    metadata = {
        "eventId": str(uuid.uuid4()),
        # SageMaker records the request's InferenceId here (for joining ground truth).
        **({"inferenceId": inference_id} if inference_id else {}),
        "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": request_type or "",
                "mode": "INPUT",
                **_encoded(request, request_type),
            },
            "endpointOutput": {
                "observedContentType": response_type or "",
                "mode": "OUTPUT",
                **_encoded(response, response_type),
            },
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


class DataCapture:
    """Buffers sampled records and writes them to S3 in batches from a background thread."""

    def __init__(
        self,
        settings: CaptureSettings,
        s3: BaseClient,
        *,
        flush_seconds: float = 2.0,
        max_records: int = 100,
        sample: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.flush_seconds = flush_seconds
        self.max_records = max_records
        self._random = sample or random.Random()  # noqa: S311 - sampling, not security
        self._lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="data-capture", daemon=True)
        self.errors = 0

    def start(self) -> DataCapture:
        self._thread.start()
        return self

    def record(
        self,
        request: bytes,
        request_type: str | None,
        response: bytes,
        response_type: str | None,
        inference_id: str | None = None,
    ) -> bool:
        """Capture this exchange if the sample says so; True when it was captured."""
        if self._random.random() * 100 >= self.settings.percent:
            return False
        entry = capture_record(
            request, request_type, response, response_type, datetime.now(UTC), inference_id
        )
        with self._lock:
            self._buffer.append(entry)
            full = len(self._buffer) >= self.max_records
        if full:
            self.flush()
        return True

    def flush(self) -> int:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        now = datetime.now(UTC)
        bucket, prefix = parse_s3_uri(self.settings.destination)
        key = "/".join(
            part
            for part in (
                prefix.rstrip("/"),
                self.settings.endpoint,
                self.settings.variant,
                now.strftime("%Y/%m/%d/%H"),
                f"{now.strftime('%M-%S-%f')}-{uuid.uuid4().hex[:8]}.jsonl",
            )
            if part
        )
        body = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in batch)
        try:
            self.s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"))
        except (ClientError, BotoCoreError):
            self.errors += 1
            with self._lock:  # keep them for the next attempt
                self._buffer[:0] = batch
            return 0
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()
