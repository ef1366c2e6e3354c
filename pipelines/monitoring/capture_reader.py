"""Reading the endpoint's data capture: which files a time window covers, and their records.

Capture files are SageMaker's layout (``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``),
written by the local endpoint or by SageMaker itself. Files are read one at a time and their
records handed on in chunks, so memory holds one chunk, never the whole window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.documents import prediction_value
from pipelines.core.errors import MlopsError
from pipelines.core.s3io import parse_s3_uri

VARIANT = "AllTraffic"
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``"90m"``, ``"1h"``, ``"2d"``, ``"30s"`` as a timedelta; anything else is refused."""
    match = _DURATION.match(str(text))
    if not match or int(match.group(1)) == 0:
        raise MlopsError(
            f"Invalid duration {text!r}: use a positive whole number with s, m, h or d "
            "(e.g. 30m, 1h, 2d)."
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def describe_duration(duration: timedelta) -> str:
    """As a person says it: ``1 minute``, ``2 hours``, ``1 hour 30 minutes``."""
    seconds, parts = int(duration.total_seconds()), []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts) or "0 seconds"


@dataclass(frozen=True)
class Window:
    """[start, end] in UTC."""

    start: datetime
    end: datetime

    @classmethod
    def since(cls, duration: timedelta, now: datetime | None = None) -> Window:
        end = now or datetime.now(UTC)
        return cls(end - duration, end)

    def hours(self) -> list[datetime]:
        """The capture folders (one per hour) the window touches, oldest first."""
        hour = self.start.replace(minute=0, second=0, microsecond=0)
        found = []
        while hour <= self.end:
            found.append(hour)
            hour += timedelta(hours=1)
        return found

    def contains(self, inference_time: str) -> bool:
        # ISO-8601 UTC with a Z: string order is time order, and parsing costs. SageMaker
        # writes whole seconds (...:03Z); milliseconds (...:03.123Z) are read too.
        fraction = inference_time[19:23] if inference_time[19:20] == "." else ".000"
        return self._bounds[0] <= inference_time[:19] + fraction <= self._bounds[1]

    @cached_property
    def _bounds(self) -> tuple[str, str]:
        return (
            self.start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23],
            self.end.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23],
        )


class CaptureSource(Protocol):
    """Where capture files are: S3 (the endpoint's destination) or a local folder."""

    def files(self, endpoint: str, window: Window) -> list[str]: ...

    def read(self, name: str) -> bytes: ...


@dataclass(frozen=True)
class S3CaptureSource:
    s3: Any
    destination: str  # s3://bucket/datacapture

    def files(self, endpoint: str, window: Window) -> list[str]:
        bucket, prefix = parse_s3_uri(self.destination)
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for hour in window.hours():
                folder = "/".join(
                    p
                    for p in (prefix.strip("/"), endpoint, VARIANT, hour.strftime("%Y/%m/%d/%H"))
                    if p
                )
                for page in paginator.paginate(Bucket=bucket, Prefix=folder + "/"):
                    keys += [o["Key"] for o in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as error:
            raise MlopsError(
                f"Listing the data capture in {self.destination} failed: {error}"
            ) from error
        return sorted(keys)

    def read(self, name: str) -> bytes:
        bucket, _ = parse_s3_uri(self.destination)
        try:
            return self.s3.get_object(Bucket=bucket, Key=name)["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise MlopsError(f"Reading s3://{bucket}/{name} failed: {error}") from error


@dataclass(frozen=True)
class FolderCaptureSource:
    """The same layout in a local folder (a synced copy, or the benchmark's data)."""

    root: Path

    def files(self, endpoint: str, window: Window) -> list[str]:
        found: list[str] = []
        for hour in window.hours():
            folder = self.root / endpoint / VARIANT / hour.strftime("%Y/%m/%d/%H")
            if folder.is_dir():
                found += [str(p) for p in folder.iterdir() if p.suffix == ".jsonl"]
        return sorted(found)

    def read(self, name: str) -> bytes:
        return Path(name).read_bytes()


@dataclass
class CaptureChunk:
    """Up to a chunk's worth of records: the CSV request bodies, and for each request its
    inference id and response body (for joining ground truth)."""

    csv_inputs: list[str] = field(default_factory=list)
    inference_ids: list[str | None] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (data, encoding)
    skipped: int = 0  # records whose input is not CSV

    def __len__(self) -> int:
        return len(self.csv_inputs)


def read_chunks(
    source: CaptureSource,
    endpoint: str,
    window: Window,
    chunk_records: int = 50_000,
    keep_outputs: bool = False,
) -> Iterator[CaptureChunk]:
    """The window's records, file by file, in chunks of about ``chunk_records``."""
    chunk = CaptureChunk()
    decode = json.JSONDecoder().decode
    for name in source.files(endpoint, window):
        for line in source.read(name).decode("utf-8").splitlines():
            if not line.strip():
                continue
            _add(chunk, decode(line), window, keep_outputs)
            if len(chunk) >= chunk_records:
                yield chunk
                chunk = CaptureChunk()
    if len(chunk) or chunk.skipped:
        yield chunk


def _add(chunk: CaptureChunk, record: dict[str, Any], window: Window, keep_outputs: bool) -> None:
    metadata = record.get("eventMetadata", {})
    if not window.contains(str(metadata.get("inferenceTime", ""))):
        return
    data = record.get("captureData", {})
    request = data.get("endpointInput", {})
    if request.get("encoding") != "CSV":
        chunk.skipped += 1
        return
    chunk.csv_inputs.append(request.get("data", ""))
    if keep_outputs:
        response = data.get("endpointOutput", {})
        chunk.inference_ids.append(metadata.get("inferenceId"))
        chunk.outputs.append((response.get("data", ""), response.get("encoding", "")))


def predictions_of(data: str, encoding: str) -> list[float]:
    """The predictions in a captured response: JSON ``{"predictions": [...]}`` or CSV."""
    if encoding == "JSON":
        document = json.loads(data)
        values: Iterable[Any] = (
            document.get("predictions", []) if isinstance(document, dict) else document
        )
        return [prediction_value(v) for v in values]
    if encoding == "CSV":
        return [float(line.split(",")[0]) for line in data.splitlines() if line.strip()]
    raise MlopsError(f"A captured response has the {encoding} encoding; expected JSON or CSV.")
