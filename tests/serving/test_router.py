"""The router's request-size limit, for declared and chunked bodies."""

from __future__ import annotations

import io

import pytest

from pipelines.serving.router import PayloadTooLarge, read_body


def environ(body: bytes, *, chunked: bool = False) -> dict:
    values = {"wsgi.input": io.BytesIO(body)}
    if chunked:
        values["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        values["CONTENT_LENGTH"] = str(len(body))
    return values


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_at_the_limit_is_read_whole(chunked):
    assert read_body(environ(b"x" * 100, chunked=chunked), limit=100) == b"x" * 100


# The rest of a refused body is read and dropped (so the client sees the 413 instead of
# a broken pipe), never kept.
def test_a_declared_body_over_the_limit_is_refused():
    stream = environ(b"x" * 101)
    with pytest.raises(PayloadTooLarge, match="request body is 101 bytes; the limit is 100 bytes"):
        read_body(stream, limit=100)
    assert stream["wsgi.input"].tell() == 101


def test_a_chunked_body_over_the_limit_is_refused():
    stream = environ(b"x" * 10_000, chunked=True)
    with pytest.raises(PayloadTooLarge, match="larger than that; the limit is 100 bytes"):
        read_body(stream, limit=100)
    assert stream["wsgi.input"].tell() == 10_000


def test_no_body_is_empty():
    assert read_body({"wsgi.input": io.BytesIO(b"")}, limit=100) == b""
