"""Data capture like SageMaker's: sampled requests and responses as JSON lines.

Records follow SageMaker's capture format (``captureData.endpointInput`` /
``endpointOutput``, ``eventMetadata``, ``eventVersion``) under
``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``, so drift checks read local
and AWS captures the same way.

Capture stays off the request path's slow parts: each model server worker appends the
records to a local spool file (:class:`CaptureSpool`) and closes it every second; the
endpoint's front process ships closed files to S3 (:mod:`pipelines.serving.capture_upload`).
This module runs in the model's own runtime (Python 3.9 for the 1.2-1 image): standard
library only.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

SPOOL_SUFFIX = ".jsonl"
_OPEN_SUFFIX = ".open"


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
        # 2026-12-01T04:17:03.123Z (isoformat is several times faster than strftime).
        "inferenceTime": when.isoformat(timespec="milliseconds")[:23] + "Z",
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


def spool_name(opened: datetime, writer: str) -> str:
    """``2026120104-17-03-000123-<writer>.jsonl``: the hour folder the file belongs in,
    then the file name SageMaker-style (minute, second, microsecond, a unique part)."""
    return f"{opened:%Y%m%d%H}-{opened:%M-%S-%f}-{writer}{SPOOL_SUFFIX}"


def spool_key(settings: CaptureSettings, name: str) -> str:
    """The S3 key of a closed spool file (see :func:`spool_name`)."""
    hour, _, rest = name.partition("-")
    prefix = settings.destination.split("://", 1)[-1].partition("/")[2]
    parts = (
        prefix.rstrip("/"),
        settings.endpoint,
        settings.variant,
        f"{hour[:4]}/{hour[4:6]}/{hour[6:8]}/{hour[8:10]}",
        rest,
    )
    return "/".join(part for part in parts if part)


class CaptureSpool:
    """Sampled records appended to a local file, closed (renamed ``.jsonl``) every
    ``rotate_seconds`` or ``max_records`` so the front can ship it; one per worker."""

    def __init__(
        self,
        directory: Path,
        percent: float,
        *,
        writer: str = "",
        rotate_seconds: float = 1.0,
        max_records: int = 1000,
        sample: random.Random | None = None,
    ) -> None:
        self.directory = directory
        self.percent = percent
        self.writer = writer or f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.rotate_seconds = rotate_seconds
        self.max_records = max_records
        self._random = sample or random.Random()  # noqa: S311 - sampling, not security
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._count = 0
        directory.mkdir(parents=True, exist_ok=True)

    def record(
        self,
        request: bytes,
        request_type: str | None,
        response: bytes,
        response_type: str | None,
        inference_id: str | None = None,
    ) -> bool:
        """Capture this exchange if the sample says so; True when it was captured."""
        if self.percent < 100 and self._random.random() * 100 >= self.percent:
            return False
        now = datetime.now(timezone.utc)
        entry = capture_record(request, request_type, response, response_type, now, inference_id)
        if self._file is None:
            self._path = self.directory / (spool_name(now, self.writer) + _OPEN_SUFFIX)
            self._file = self._path.open("w", encoding="utf-8")
            self._opened = time.monotonic()
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._count += 1
        if self._count >= self.max_records:
            self.close_file()
        return True

    def tick(self) -> None:
        """Close the open file once it is ``rotate_seconds`` old (called periodically)."""
        if self._file is not None and time.monotonic() - self._opened >= self.rotate_seconds:
            self.close_file()

    def close_file(self) -> None:
        if self._file is None or self._path is None:
            return
        self._file.close()
        # The rename is what the front waits for: a .jsonl file is complete.
        self._path.rename(self._path.with_name(self._path.name[: -len(_OPEN_SUFFIX)]))
        self._file, self._path, self._count = None, None, 0


def closed_spool_files(directory: Path) -> list[Path]:
    """The spool files ready to ship, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"*{SPOOL_SUFFIX}"))
