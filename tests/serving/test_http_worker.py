"""The model server worker's HTTP layer over real loopback sockets (no emulator, no model
runtime): the inference contract, request limits, keep-alive, routing between versions,
draining on a switch, and data capture."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from pipelines.serving.capture import CaptureSpool, closed_spool_files
from pipelines.serving.http_worker import Worker
from pipelines.serving.invocations import (
    INFERENCE_ID_HEADER,
    VERSION_HEADER,
    InferenceService,
    Request,
    load_handlers,
)
from pipelines.serving.router import RouteTable

HANDLERS = """
def model_fn(model_dir):
    with open(model_dir + "/scale") as handle:
        return float(handle.read())

def input_fn(body, content_type):
    if content_type != "text/csv":
        error = ValueError(f"unsupported content type {content_type}")
        error.status_code = 415
        raise error
    try:
        return [float(value) for value in body.decode().split(",")]
    except ValueError:
        error = ValueError("values must be numbers")
        error.status_code = 400
        raise error

def predict_fn(data, model):
    if data == [13.0]:
        raise RuntimeError("unlucky")
    return [value * model for value in data]

def output_fn(prediction, accept):
    return ",".join(repr(value) for value in prediction) + "\\n", "text/csv"
"""
LIMIT = 4096


class Server:
    """A worker on its own event-loop thread: a private port, and the shared public one."""

    def __init__(self, root: Path, public: socket.socket, version: str, scale: float) -> None:
        model = root / f"model-{version}"
        model.mkdir()
        (model / "scale").write_text(str(scale))
        code = root / "code"
        if not code.exists():
            code.mkdir()
            (code / "handlers.py").write_text(HANDLERS)
        self.private = socket.socket()
        self.private.bind(("127.0.0.1", 0))
        self.private.listen(64)
        self.port = self.private.getsockname()[1]
        self.spool = root / "capture"
        self.worker = Worker(
            InferenceService(load_handlers(code, "handlers.py"), model, version),
            RouteTable(root / "endpoint.json", self.port),
            public.dup(),
            self.private,
            spool=CaptureSpool(self.spool, 100, writer=version, rotate_seconds=0.1),
            max_payload_bytes=LIMIT,
        )
        self.thread = threading.Thread(
            target=asyncio.run, args=(self.worker.serve(handle_signals=False),)
        )
        self.thread.start()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        while self.worker._loop is None:  # the thread has not started serving yet
            time.sleep(0.01)
        self.worker.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@pytest.fixture
def endpoint(tmp_path):
    public = socket.socket()
    public.bind(("127.0.0.1", 0))
    public.listen(64)
    servers: list[Server] = []
    servers_started = servers

    class Endpoint:
        port = public.getsockname()[1]
        state_file = tmp_path / "endpoint.json"
        servers = servers_started

        def start(self, version: str, scale: float) -> Server:
            server = Server(tmp_path, public, version, scale)
            servers.append(server)
            return server

        def route(self, primary: Server, *weighted: tuple[Server, float]) -> None:
            state = {"upstream_port": primary.port, "version": primary.worker.service.version}
            if weighted:
                state["variants"] = [
                    {"port": s.port, "version": s.worker.service.version, "weight": w}
                    for s, w in weighted
                ]
            pending = self.state_file.with_suffix(".tmp")
            pending.write_text(json.dumps(state))
            pending.replace(self.state_file)
            time.sleep(0.3)  # workers re-read the state every 50 ms

        def captured(self) -> list[dict]:
            # Each worker closes its spool file 0.1 s after its first record (on its own
            # thread: the capture happens just after the response is written).
            time.sleep(0.5)
            return [
                json.loads(line)
                for path in closed_spool_files(tmp_path / "capture")
                for line in path.read_text().splitlines()
            ]

    yield Endpoint()
    for server in servers:
        server.stop()
    public.close()


def post(connection: http.client.HTTPConnection, body: bytes, **headers: str):
    connection.request(
        "POST", "/invocations", body=body, headers={"Content-Type": "text/csv", **headers}
    )
    response = connection.getresponse()
    return response.status, response.getheader(VERSION_HEADER), response.read(), response


def test_the_contract_over_one_kept_connection(endpoint):
    endpoint.route(endpoint.start("1", 2.0))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    connection.request("GET", "/ping")
    ping = connection.getresponse()
    assert (ping.status, ping.getheader(VERSION_HEADER), ping.read()) == (200, "1", b"\n")
    status, version, body, response = post(connection, b"1.5,2")
    assert (status, version, body) == (200, "1", b"3.0,4.0\n")
    assert response.getheader("Content-Type") == "text/csv"
    assert response.getheader("Connection") is None  # kept alive
    status, _, body, _ = post(connection, b"a,b")
    assert status == 400
    assert json.loads(body) == {"error": "values must be numbers"}
    connection.request("POST", "/invocations", body=b"1", headers={"Content-Type": "text/x"})
    response = connection.getresponse()
    assert response.status == 415
    assert "unsupported content type" in json.loads(response.read())["error"]
    status, _, body, _ = post(connection, b"13")
    assert status == 500
    assert json.loads(body) == {"error": "internal error: RuntimeError"}
    connection.request("GET", "/nowhere")
    response = connection.getresponse()
    assert (response.status, response.read()) == (404, b'{"error": "no route for GET /nowhere"}')
    connection.request("GET", "/invocations")
    assert connection.getresponse().status == 405
    connection.close()


def raw(port: int, payload: bytes, expect_closed: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        if not expect_closed:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_bodies_over_the_limit_are_refused_declared_or_chunked(endpoint):
    endpoint.route(endpoint.start("1", 1.0))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    at_limit = b"1" * LIMIT
    status, _, body, _ = post(connection, at_limit)
    assert status == 200
    status, _, body, _ = post(connection, b"1" * (LIMIT + 1))
    assert status == 413
    assert f"request body is {LIMIT + 1:,} bytes; the limit is {LIMIT:,}" in body.decode()
    # Chunked: the size is only known while reading.
    connection.request(
        "POST",
        "/invocations",
        body=iter([b"1" * 3000, b"1" * 3000]),
        headers={"Content-Type": "text/csv"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    assert "larger than that" in response.read().decode()
    # The connection is still good after each refusal.
    assert post(connection, b"2")[0] == 200
    connection.close()


def test_expect_continue_is_answered_before_the_body(endpoint):
    endpoint.route(endpoint.start("1", 1.0))
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n"
    )
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
        sock.sendall(head + b"Content-Length: 3\r\n\r\n")
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"2,3")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK")
    # Too large: refused at once, without waiting for a body the client holds back.
    reply = raw(endpoint.port, head + f"Content-Length: {LIMIT + 1}\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 413 Payload Too Large")


def test_pipelined_requests_are_answered_in_order_and_malformed_ones_refused(endpoint):
    endpoint.route(endpoint.start("1", 10.0))
    one = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Content-Length: 1\r\n\r\n"
    )
    reply = raw(endpoint.port, one + b"1" + one + b"2" + b"GET /ping HTTP/1.0\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200 OK") == 3
    assert reply.index(b"10.0\n") < reply.index(b"20.0\n")
    assert reply.endswith(b"Connection: close\r\n\r\n\n")  # HTTP/1.0: not kept alive
    assert raw(endpoint.port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")


def test_inference_ids_are_captured_and_bad_ones_refused(endpoint):
    endpoint.route(endpoint.start("1", 1.0))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    assert post(connection, b"4", **{"X-Amzn-SageMaker-Inference-Id": "row-1"})[0] == 200
    assert post(connection, b"5")[0] == 200
    # (A leading space cannot cross HTTP: parsers strip it. The check refuses it below.)
    for bad in ("x" * 65, "tab\there"):
        status, _, body, _ = post(connection, b"6", **{"X-Amzn-SageMaker-Inference-Id": bad})
        assert status == 400
        assert b"InferenceId" in body
    assert post(connection, b"13")[0] == 500  # failed invocations are not captured
    connection.close()
    records = endpoint.captured()
    assert [r["captureData"]["endpointInput"]["data"] for r in records] == ["4", "5"]
    assert records[0]["eventMetadata"]["inferenceId"] == "row-1"
    assert "inferenceId" not in records[1]["eventMetadata"]
    service = endpoint.servers[0].worker.service
    assert service.check(Request("POST", "/invocations", {INFERENCE_ID_HEADER: " x"})).status == 400
    assert service.check(Request("POST", "/invocations", {INFERENCE_ID_HEADER: "x" * 64})) is None
    assert records[0]["captureData"]["endpointOutput"] == {
        "observedContentType": "text/csv",
        "mode": "OUTPUT",
        "data": "4.0\n",
        "encoding": "CSV",
    }


def test_a_canary_share_is_forwarded_per_request_and_a_dead_canary_is_served_around(endpoint):
    stable, canary = endpoint.start("1", 1.0), endpoint.start("2", 2.0)
    endpoint.route(stable, (stable, 0.7), (canary, 0.3))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    answers = [post(connection, b"1")[1:3] for _ in range(400)]
    # One kept connection, yet each request is routed by weight: per request, not per client.
    assert set(answers) == {("1", b"1.0\n"), ("2", b"2.0\n")}
    assert sum(version == "2" for version, _ in answers) / 400 == pytest.approx(0.3, abs=0.08)
    records = endpoint.captured()
    assert len(records) == 400  # the stable workers capture what they forwarded too
    canary.stop()
    answers = [post(connection, b"1")[:2] for _ in range(50)]
    assert answers == [(200, "1")] * 50
    connection.close()


def test_a_switch_moves_kept_connections_without_a_failed_request(endpoint):
    old = endpoint.start("1", 1.0)
    endpoint.route(old)
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    assert post(connection, b"1")[1] == "1"
    new = endpoint.start("2", 2.0)
    endpoint.route(new)
    # The old worker answers the request it is asked on its kept connection, and closes it...
    status, version, _, response = post(connection, b"1")
    assert (status, version, response.getheader("Connection")) == (200, "1", "close")
    # ...so the client's next request opens a connection that the new version accepts.
    seen = [post(connection, b"1")[:2] for _ in range(20)]
    assert seen == [(200, "2")] * 20
    # A connection left idle on the old worker is closed after the grace period.
    connection.close()
    assert old.worker.connections == set()


def test_a_connection_accepted_as_its_worker_retires_is_still_answered(endpoint):
    # Each switch retires the serving worker while clients keep opening connections, so
    # some are accepted in the very loop turn that retires it; each must be answered.
    # (asyncio's own server drops those silently once closed: the client sees a reset.)
    servers = [endpoint.start(str(n), float(n)) for n in range(1, 41)]
    endpoint.route(servers[0])
    failures: list[str] = []
    answered: set[bytes] = set()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
            try:
                status, _, body, _ = post(connection, b"1")
                assert status == 200, body
                answered.add(body)
            except (OSError, http.client.HTTPException, AssertionError) as error:
                failures.append(repr(error))
            finally:
                connection.close()

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    for server in servers[1:]:
        pending = endpoint.state_file.with_suffix(".tmp")
        pending.write_text(json.dumps({"upstream_port": server.port}))
        pending.replace(endpoint.state_file)
        time.sleep(0.08)
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(answered) > 20  # most of the servers really served in turn


def test_a_draining_worker_waits_for_the_first_request_of_a_fresh_connection(endpoint):
    old = endpoint.start("1", 1.0)
    endpoint.route(old)
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
        time.sleep(0.2)  # accepted by the old worker, no request sent yet
        endpoint.route(endpoint.start("2", 2.0))
        time.sleep(1.5)  # past the grace a kept-alive idle connection gets
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert f"{VERSION_HEADER}: 1".encode() in reply
    assert b"Connection: close" in reply
