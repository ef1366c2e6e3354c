"""The model server worker's HTTP layer over real loopback sockets (no emulator, no model
runtime): the inference contract, request limits, keep-alive, routing between versions,
draining on a switch, and data capture.

Where an answer mirrors the SageMaker scikit-learn 1.2-1 image's serving stack, the test
names the source it follows: aws/sagemaker-containers at v2.8.6.post2 (the image's
``sagemaker-containers==2.8.6.post2``), pallets/werkzeug at 2.0.3 and pallets/flask at
1.1.1 (its pins in aws/sagemaker-scikit-learn-container's ``requirements.txt`` at 1.2-1)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from pipelines.serving import http_worker
from pipelines.serving.capture import CaptureSpool, closed_spool_files
from pipelines.serving.http_worker import Worker
from pipelines.serving.invocations import (
    INFERENCE_ID_HEADER,
    VERSION_HEADER,
    InferenceService,
    Request,
    json_too_deep,
    load_handlers,
)
from pipelines.serving.local_endpoint import UnixHTTPConnection
from pipelines.serving.model_server import bind_private
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
        return [float(value) for value in body.split(",")]  # text: the container decodes CSV
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
    """A worker on its own event-loop thread: a private Unix socket, and the shared public
    port."""

    def __init__(
        self,
        root: Path,
        public: socket.socket,
        version: str,
        scale: float,
        handlers: str = HANDLERS,
    ) -> None:
        model = root / f"model-{version}"
        model.mkdir()
        (model / "scale").write_text(str(scale))
        code = root / f"code-{version}"
        code.mkdir()
        (code / f"handlers{version}.py").write_text(handlers)
        self.address = str(root / f"server-{version}.sock")
        self.private = bind_private(self.address)
        self.spool = root / "capture"
        self.worker = Worker(
            InferenceService(load_handlers(code, f"handlers{version}.py"), model, version),
            RouteTable(root / "endpoint.json", self.address),
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

        def start(self, version: str, scale: float, handlers: str = HANDLERS) -> Server:
            server = Server(tmp_path, public, version, scale, handlers)
            servers.append(server)
            return server

        def route(self, primary: Server, *weighted: tuple[Server, float]) -> None:
            state = {"upstream": primary.address, "version": primary.worker.service.version}
            if weighted:
                state["variants"] = [
                    {"address": s.address, "version": s.worker.service.version, "weight": w}
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


# The container's own default handlers (sklearn serving.py) behind a model with predict().
DEFAULTS = """
class Doubler:
    def predict(self, rows):
        return rows * 2

def model_fn(model_dir):
    return Doubler()
"""
FLASK_500 = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
    b"<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
    b"<p>The server encountered an internal error and was unable to complete your request. "
    b"Either the server is overloaded or there is an error in the application.</p>\n"
)


def ask(connection: http.client.HTTPConnection, method: str, path: str, body=None, **headers):
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type"), response.read(), response


def test_the_contract_over_one_kept_connection(endpoint):
    endpoint.route(endpoint.start("1", 2.0))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    # sagemaker_containers/_worker.py:26-48 (default_healthcheck_fn): 200, no body, and
    # _worker.Response's default mimetype, JSON (lines 118-121).
    status, content_type, body, ping = ask(connection, "GET", "/ping")
    assert (status, content_type, body) == (200, "application/json", b"")
    assert ping.getheader(VERSION_HEADER) == "1"
    status, version, body, response = post(connection, b"1.5,2")
    assert (status, version, body) == (200, "1", b"3.0,4.0\n")
    assert response.getheader("Connection") is None  # kept alive
    connection.close()


def test_any_exception_from_the_users_handlers_is_flasks_500_page(endpoint):
    # sagemaker_containers/_transformer.py:164-171 wraps input_fn, predict_fn and output_fn
    # in _functions.error_wrapper (_functions.py:80-97), so whatever they raise (here a
    # ValueError carrying status_code 400 or 415, and a RuntimeError) is a ClientError,
    # which _default_transform_fn (lines 226-238) does not catch; Flask 1.1.1's
    # handle_exception (app.py:1870-1876) answers werkzeug 2.0.3's InternalServerError
    # (exceptions.py:170-189, 772-787). SageMaker's clients see ModelError.
    endpoint.route(endpoint.start("1", 2.0))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    for body, content_type in ((b"1,b", "text/csv"), (b"1", "text/x"), (b"13", "text/csv")):
        status, returned_type, answer, _ = ask(
            connection, "POST", "/invocations", body, **{"Content-Type": content_type}
        )
        assert (status, returned_type, answer) == (500, "text/html; charset=utf-8", FLASK_500)
    assert post(connection, b"2")[0] == 200  # the connection and the worker serve on
    connection.close()


def test_only_the_containers_default_handlers_answer_415_and_406(endpoint):
    # sagemaker_containers/_transformer.py:226-249: an UnsupportedFormatError from the
    # default input_fn is 415, from the default output_fn 406, with the error as JSON;
    # sklearn serving.py:48-87 and _encoders.py:198-234 raise it for a content type or an
    # accept outside NPY, CSV and JSON (matched exactly: no parameters).
    endpoint.route(endpoint.start("1", 1.0, DEFAULTS))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    status, content_type, body, _ = ask(
        connection, "POST", "/invocations", b"<a/>", **{"Content-Type": "application/xml"}
    )
    assert (status, content_type) == (415, "application/json")
    error = json.loads(body)
    assert error["error"] == "UnsupportedFormatError"
    assert error["error-message"].startswith("Content type application/xml is not supported")
    assert "Traceback" in error["stack-trace"]
    status, content_type, body, _ = ask(
        connection,
        "POST",
        "/invocations",
        b"1,2",
        **{"Content-Type": "text/csv", "Accept": "text/csv; charset=utf-8"},
    )
    assert (status, content_type) == (406, "application/json")
    assert json.loads(body)["error-message"].startswith(
        "Content type text/csv; charset=utf-8 is not supported"
    )
    connection.close()


def test_response_content_types_are_werkzeugs(endpoint):
    # The default output_fn answers mimetype=accept (sklearn serving.py:87), a user's
    # (body, type) tuple becomes _worker.Response(mimetype=type) (_transformer.py:203-205);
    # werkzeug 2.0.3's get_content_type (utils.py:324-346) adds "; charset=utf-8" to text
    # types, not to application/json.
    endpoint.route(endpoint.start("1", 1.0, DEFAULTS))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    csv_answer = ask(
        connection,
        "POST",
        "/invocations",
        b"1,2",
        **{"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert csv_answer[:3] == (200, "text/csv; charset=utf-8", b"2.0\n4.0\n")
    json_answer = ask(
        connection, "POST", "/invocations", b"[[1, 2]]", **{"Content-Type": "application/json"}
    )
    # No Accept: _worker.Request.accept (lines 190-203) gives the default accept, JSON.
    assert json_answer[:3] == (200, "application/json", b"[[2.0, 4.0]]")
    connection.close()


def test_a_bare_string_result_is_flasks_default_html(endpoint):
    # Flask 1.1.1's make_response (app.py:2104-2108): a str (not a tuple) from the handlers
    # is a response of the app's default mimetype, text/html; a dict is jsonify'd.
    handlers = HANDLERS.replace(
        'return ",".join(repr(value) for value in prediction) + "\\n", "text/csv"',
        'return {"x": prediction} if prediction == [4.0] else str(prediction)',
    )
    endpoint.route(endpoint.start("1", 2.0, handlers))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    assert post(connection, b"1")[3].getheader("Content-Type") == "text/html; charset=utf-8"
    status, _, body, response = post(connection, b"2")
    assert (status, response.getheader("Content-Type"), body) == (
        200,
        "application/json",
        b'{"x":[4.0]}\n',
    )
    connection.close()


def test_input_fn_gets_text_for_csv_and_json_and_bytes_otherwise(endpoint):
    # _worker.Request.content (lines 205-216): get_data(as_text=True) when the content type
    # is exactly text/csv or application/json (_content_types.UTF8_TYPES), else bytes.
    handlers = HANDLERS.replace(
        "def input_fn(body, content_type):",
        "def input_fn(body, content_type):\n    return [float(isinstance(body, str))]",
    )
    endpoint.route(endpoint.start("1", 1.0, handlers))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    for content_type, text in (
        ("text/csv", b"1.0\n"),
        ("application/json", b"1.0\n"),
        ("text/csv; charset=utf-8", b"0.0\n"),
        ("application/x-npy", b"0.0\n"),
    ):
        assert post(connection, b"1", **{"Content-Type": content_type})[2] == text
    connection.close()


def test_routes_the_container_does_not_have(endpoint):
    endpoint.route(endpoint.start("1", 1.0))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    # Its nginx (sagemaker-containers etc/nginx.conf.template:27-37) passes on only
    # /ping, /invocations and /execution-parameters; the rest is its "{}" 404.
    assert ask(connection, "GET", "/nowhere")[:3] == (404, "application/octet-stream", b"{}")
    # Flask: /invocations is POST only (_worker.py:101-103), werkzeug's 405 page.
    status, content_type, body, response = ask(connection, "GET", "/invocations")
    assert (status, content_type) == (405, "text/html; charset=utf-8")
    assert b"<title>405 Method Not Allowed</title>" in body
    assert response.getheader("Allow") == "OPTIONS, POST"
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
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
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
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        b"Content-Length: 1\r\n\r\n"
    )
    reply = raw(endpoint.port, one + b"1" + one + b"2" + b"GET /ping HTTP/1.0\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200 OK") == 3
    assert reply.index(b"10.0\n") < reply.index(b"20.0\n")
    assert reply.endswith(b"Connection: close\r\n\r\n")  # HTTP/1.0: not kept alive
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
        "observedContentType": "text/csv; charset=utf-8",  # as the container answered
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
        pending.write_text(json.dumps({"upstream": server.address}))
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
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert f"{VERSION_HEADER}: 1".encode() in reply
    assert b"Connection: close" in reply


# --- limits (issue 27 item 7, issue 28 item 16) ----------------------------------------------


def exchange(port: int, payload: bytes, chunk: int = 65536) -> bytes:
    """Send ``payload`` (as far as the server lets it) and read the answer until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for start in range(0, len(payload), chunk):
                sock.sendall(payload[start : start + chunk])
        except OSError:
            pass  # the server answered and closed before reading it all
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def test_a_url_over_8_kib_is_refused_with_414(endpoint):
    endpoint.route(endpoint.start("1", 1.0))
    reply = exchange(endpoint.port, b"GET /ping?" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 414 URI Too Long")
    assert b"longer than 8,192 bytes" in reply
    ok = exchange(endpoint.port, b"GET /ping?" + b"x" * 8000 + b" HTTP/1.0\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize(
    "fields",
    [
        b"X-Big: " + b"y" * 9000 + b"\r\n\r\n",  # one field over 8 KiB
        b"".join(b"X-F%d: v\r\n" % n for n in range(101)) + b"\r\n",  # over 100 fields
        b"".join(b"X-F%d: %s\r\n" % (n, b"z" * 8000) for n in range(5)) + b"\r\n",  # 40 KB
        b"X-Endless: " + b"w" * (1024 * 1024),  # a 1 MiB field that never ends
    ],
    ids=["long-field", "many-fields", "large-head", "endless-field"],
)
def test_header_fields_over_the_limits_are_refused_with_431(endpoint, fields):
    endpoint.route(endpoint.start("1", 1.0))
    reply = exchange(endpoint.port, b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields)
    assert reply.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert b"Connection: close" in reply
    # The worker serves on.
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    assert post(connection, b"1")[0] == 200
    connection.close()


def test_a_host_other_than_the_loopback_is_refused_with_421(endpoint):
    endpoint.route(endpoint.start("1", 1.0))
    port = endpoint.port
    for host, status in (
        (f"127.0.0.1:{port}", b"200"),
        (f"localhost:{port}", b"200"),
        (f"[::1]:{port}", b"200"),
        ("LOCALHOST", b"200"),
        (f"attacker.example:{port}", b"421"),  # a DNS-rebound name
        (f"127.0.0.1:{port + 1}", b"421"),
        ("127.0.0.1.attacker.example", b"421"),
    ):
        reply = exchange(port, f"GET /ping HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        assert reply.startswith(b"HTTP/1.1 " + status), host
    assert b"is not this machine's loopback" in reply


def test_json_nested_too_deep_gets_a_400_sentence_not_a_500(endpoint):
    endpoint.route(endpoint.start("1", 1.0, DEFAULTS))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    deep = b"[" * 2000 + b"]" * 2000  # within the test's payload limit
    status, _, body, _ = ask(
        connection, "POST", "/invocations", deep, **{"Content-Type": "application/json"}
    )
    assert status == 400
    assert "deeper than 100 levels" in json.loads(body)["error"]
    # Brackets inside strings are not nesting; 100 levels are allowed.
    assert not json_too_deep(b'["' + b"[" * 500 + b'"]')
    assert not json_too_deep(b"[" * 100 + b"]" * 100)
    assert json_too_deep(b"[" * 101 + b"]" * 101)
    assert json_too_deep(b'{"a": ' * 101 + b"1" + b"}" * 101)
    connection.close()


def test_a_handler_error_answers_500_and_is_not_captured(endpoint):
    # Any exception from the user's handlers is Flask's 500 in the container
    # (sagemaker-containers _transformer.py:164-171); only 200s are captured. inference.py
    # refuses a CSV header row this way, on SageMaker as here.
    endpoint.route(endpoint.start("1", 1.0))
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    assert post(connection, b"13")[0] == 500  # predict_fn raises
    assert post(connection, b"2")[0] == 200
    connection.close()
    records = endpoint.captured()
    assert [r["captureData"]["endpointInput"]["data"] for r in records] == ["2"]


def test_requests_on_a_servers_own_socket_are_captured_too(endpoint):
    # No door to a model skips the capture: the private socket (0600) is captured as the
    # public port is (it carries a canary's forwarded share, captured once, there).
    server = endpoint.start("1", 1.0)
    endpoint.route(server)
    assert os.stat(server.address).st_mode & 0o777 == 0o600
    connection = UnixHTTPConnection(Path(server.address), 10)
    assert post(connection, b"7")[0] == 200
    connection.close()
    assert [r["captureData"]["endpointInput"]["data"] for r in endpoint.captured()] == ["7"]


def test_partial_and_idle_connections_are_dropped_after_the_read_timeouts(endpoint, monkeypatch):
    monkeypatch.setattr(http_worker, "HEADER_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(http_worker, "BODY_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(http_worker, "KEEPALIVE_SECONDS", 0.3)
    monkeypatch.setattr(http_worker, "_SWEEP_SECONDS", 0.05)
    endpoint.route(endpoint.start("1", 1.0))
    head = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
    for partial, expected in (
        (b"", b"HTTP/1.1 408"),  # connected, sent nothing
        (b"POST /invocations HTTP/1.1\r\nHost: 127.", b"HTTP/1.1 408"),  # half a head
        (head + b"Content-Length: 10\r\n\r\n1,2", b"HTTP/1.1 408"),  # part of the body
        (head + b"Content-Length: 1\r\n\r\n1", b"HTTP/1.1 200 OK"),  # answered, then idle
    ):
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
            sock.sendall(partial)
            reply = b""
            while data := sock.recv(65536):  # the server closes: recv returns b""
                reply += data
        assert reply.startswith(expected), partial
    assert endpoint.servers[0].worker.connections == set()
