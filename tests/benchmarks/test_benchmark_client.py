"""benchmarks/endpoint.py's raw-socket client: it reads each response to its end by its
Content-Length however the server splits its writes, so back-to-back requests on one
connection are timed one response at a time."""

from __future__ import annotations

import importlib
import socket
import threading

import pytest

from pipelines.config.settings import PROJECT_ROOT


@pytest.fixture
def endpoint_benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "benchmarks"))
    return importlib.import_module("endpoint")


def test_responses_split_across_writes_are_read_one_at_a_time(endpoint_benchmark):
    server, client = socket.socketpair()
    body = b"x" * 70_000  # more than one recv

    def answer() -> None:
        server.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Len")
        server.sendall(b"gth: %d\r\n\r\n" % len(body) + body[:10])
        server.sendall(body[10:] + b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    writer = threading.Thread(target=answer)
    writer.start()
    pending = bytearray()
    assert endpoint_benchmark._read_response(client, pending) == 503
    assert endpoint_benchmark._read_response(client, pending) == 200
    assert pending == b""
    writer.join()
    server.close()
    with pytest.raises(ConnectionError, match="closed the connection mid-response"):
        endpoint_benchmark._read_response(client, pending)
    client.close()
