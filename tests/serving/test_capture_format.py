"""The spool's fast record line is the capture record, byte for byte."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

import pytest

from pipelines.serving.capture import (
    CaptureSpool,
    Clock,
    EventIds,
    capture_line,
    capture_record,
    closed_spool_files,
    inference_time,
)

WHEN = datetime(2026, 12, 1, 4, 17, 3, 123456, tzinfo=UTC)

BODIES = [
    (b"1,2,3", "text/csv"),
    (b"", "text/csv"),
    (b'{"instances": [[1, 2]]}', "application/json"),
    (b'{"predictions": [3.5]}', "application/json; charset=utf-8"),
    ("r\u00e9sum\u00e9,\u65e5\u672c,\U0001f600".encode(), "text/csv"),  # escaped as \\uXXXX
    (b'a "quoted" \\ back\tslash\r\n\x01', "text/csv"),  # JSON escapes, control chars
    (b"\xff\xfe not utf-8", "text/csv"),  # falls back to base64
    (b"\x00\x01\x02", "application/octet-stream"),
    (b"1,2", None),  # no content type: base64, empty observed type
    (b"1,2", "TEXT/CSV"),  # media types are case-insensitive
]


@pytest.mark.parametrize(("request_body", "request_type"), BODIES)
@pytest.mark.parametrize("inference_id", [None, "abc-1", 'id "with" \\ quotes'])
def test_the_fast_line_is_json_dumps_of_the_record(request_body, request_type, inference_id):
    response, response_type = b"22.1\n", "text/csv"
    record = capture_record(request_body, request_type, response, response_type, WHEN, inference_id)
    event_id = record["eventMetadata"]["eventId"]
    line = capture_line(
        request_body, request_type, response, response_type,
        event_id, inference_time(WHEN), inference_id,
    )  # fmt: skip
    assert line == json.dumps(record, separators=(",", ":"))


def test_the_response_side_is_encoded_the_same_way():
    for body, kind in BODIES:
        record = capture_record(b"1", "text/csv", body, kind, WHEN)
        line = capture_line(
            b"1", "text/csv", body, kind, record["eventMetadata"]["eventId"], inference_time(WHEN)
        )
        assert json.loads(line) == record


def test_event_ids_are_random_version_4_uuids():
    ids = EventIds(batch=4)
    made = [ids.next() for _ in range(1000)]  # crosses many batches
    assert len(set(made)) == len(made)
    for value in made:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_the_clock_stamps_utc_whole_seconds_as_sagemaker_writes_them():
    moments = [
        datetime(2026, 12, 1, 4, 17, 3, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 4, 17, 3, 999999, tzinfo=UTC),  # truncated, not rounded up
        datetime(2026, 12, 1, 4, 17, 4, 1000, tzinfo=UTC),  # the next second: a new prefix
        datetime(2026, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 0, 0, 7000, tzinfo=UTC),
    ]
    timestamps = iter(moment.timestamp() for moment in moments)
    clock = Clock(now=lambda: next(timestamps))
    for moment in moments:
        now, stamp = clock.stamp()
        assert now == moment.timestamp()
        assert stamp == inference_time(moment)
        assert stamp == moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_spooled_records_are_valid_capture_records_in_their_hour_file(tmp_path):
    spool = CaptureSpool(tmp_path, 100, writer="w1", sample=random.Random(3))  # noqa: S311
    before = datetime.now(UTC)
    spool.record(b"1,2", "text/csv", b"3", "text/csv", "id-1")
    spool.record(b"\x00", "application/octet-stream", b"{}", "application/json")
    spool.close_file()
    (path,) = closed_spool_files(tmp_path)
    assert path.name.startswith(f"{before:%Y%m%d%H}-")
    assert path.name.endswith("-w1.jsonl")
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv", "mode": "INPUT", "data": "1,2", "encoding": "CSV"
    }  # fmt: skip
    assert first["eventMetadata"]["inferenceId"] == "id-1"
    assert "inferenceId" not in second["eventMetadata"]
    assert second["captureData"]["endpointInput"]["encoding"] == "BASE64"
    # Whole seconds, as AWS's capture sample (model-monitor-data-capture-view) shows them.
    stamped = datetime.strptime(first["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(stamped.replace(tzinfo=UTC) - before).total_seconds() < 5
    assert first["eventMetadata"]["eventId"] != second["eventMetadata"]["eventId"]
