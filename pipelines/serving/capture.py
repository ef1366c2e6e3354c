"""Data capture like SageMaker's: sampled requests and responses as JSON lines.

Records follow SageMaker's capture format (``captureData.endpointInput`` /
``endpointOutput``, ``eventMetadata``, ``eventVersion``) under
``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``, so drift checks read local
and AWS captures the same way.

Capture stays off the request path's slow parts: each model server worker appends the
records to a local spool file (:class:`CaptureSpool`) and closes it every second; the
endpoint's front process ships closed files to S3 (:mod:`pipelines.serving.capture_upload`).
A worker writes each record after its response, before reading the next request, so the
spool writes the line directly (:func:`capture_line`, byte for byte what
``json.dumps(capture_record(...))`` gives) with event ids and timestamps made in bulk:
about 7 us a record instead of 23-31.
This module runs in the model's own runtime (Python 3.9 for the 1.2-1 image): standard
library only.
"""

from __future__ import annotations

import base64
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii as _json_string  # json.dumps' own, in C
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
    data, encoding = _data_of(body, content_type)
    return {"data": data, "encoding": encoding}


def _data_of(body: bytes, content_type: str | None) -> tuple[str, str]:
    """The body as capture stores it: text for CSV and JSON, else base64; and its encoding."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in ("text/csv", "application/json"):
        try:
            return body.decode("utf-8"), "CSV" if media == "text/csv" else "JSON"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), "BASE64"


def inference_time(when: datetime) -> str:
    """``2026-12-01T04:17:03Z``: UTC, whole seconds, as SageMaker writes it (developer guide,
    model-monitor-data-capture-view: ``"inferenceTime": "2021-06-28T15:39:55Z"``)."""
    # isoformat is several times faster than strftime.
    return when.isoformat(timespec="seconds")[:19] + "Z"


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
        "inferenceTime": inference_time(when),
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


def capture_line(
    request: bytes,
    request_type: str | None,
    response: bytes,
    response_type: str | None,
    event_id: str,
    when: str,
    inference_id: str | None = None,
) -> str:
    """``json.dumps(capture_record(...), separators=(",", ":"))``, byte for byte, for an
    ``eventId`` and ``inferenceTime`` (see :func:`inference_time`) made by the caller, at a
    fifth of the cost: the record's shape is fixed, so only its strings need encoding."""
    data_in, encoding_in = _data_of(request, request_type)
    data_out, encoding_out = _data_of(response, response_type)
    identity = f',"inferenceId":{_json_string(inference_id)}' if inference_id else ""
    return (
        '{"captureData":{"endpointInput":{"observedContentType":'
        f'{_json_string(request_type or "")},"mode":"INPUT","data":{_json_string(data_in)},'
        f'"encoding":"{encoding_in}"}},"endpointOutput":{{"observedContentType":'
        f'{_json_string(response_type or "")},"mode":"OUTPUT","data":{_json_string(data_out)},'
        f'"encoding":"{encoding_out}"}}}},"eventMetadata":{{"eventId":"{event_id}"{identity},'
        f'"inferenceTime":"{when}"}},"eventVersion":"0"}}'
    )


class EventIds:
    """Random (version 4) UUID strings, as ``str(uuid.uuid4())`` gives, from one read of
    the OS's randomness per ``batch`` ids rather than one read each."""

    _VERSION_MASK = ~(0xF000 << 64 | 0xC000 << 48)
    _VERSION_BITS = 0x4000 << 64 | 0x8000 << 48  # version 4, RFC 4122 variant

    def __init__(self, batch: int = 256) -> None:
        self.batch = batch
        self._pool = b""
        self._at = 0

    def next(self) -> str:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(16 * self.batch), 0
        number = int.from_bytes(self._pool[self._at : self._at + 16], "big")
        self._at += 16
        h = "%032x" % (number & self._VERSION_MASK | self._VERSION_BITS)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Clock:
    """:func:`inference_time` of now, formatting the date and time once a second."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self._second = -1
        self._prefix = ""

    def stamp(self) -> tuple[float, str]:
        """Now (seconds since the epoch) and its ``inferenceTime`` (whole seconds)."""
        now = self.now()
        # Whole microseconds first, rounded as datetime.fromtimestamp rounds, so float
        # error cannot move a stamp across a second; then truncated like isoformat.
        second = round(now * 1_000_000) // 1_000_000
        if second != self._second:
            when = datetime.fromtimestamp(second, timezone.utc)
            self._second, self._prefix = second, when.isoformat()[:19] + "Z"
        return now, self._prefix


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
        self._ids = EventIds()
        self._clock = Clock()
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
        now, when = self._clock.stamp()
        line = capture_line(
            request, request_type, response, response_type, self._ids.next(), when, inference_id
        )
        if self._file is None:
            opened = datetime.fromtimestamp(now, timezone.utc)
            self._path = self.directory / (spool_name(opened, self.writer) + _OPEN_SUFFIX)
            self._file = self._path.open("w", encoding="utf-8")
            self._opened = time.monotonic()
        self._file.write(line + "\n")
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
