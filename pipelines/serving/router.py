"""The local endpoint's front: owns the endpoint's port and forwards to the model server.

``python -m pipelines.serving.router --port P --state-file S ...``

A deploy starts the new model server, checks it, then rewrites the state file; the
router reads the upstream from that file when it changes, so the switch is atomic
and the port never closes. During a canary or linear shift the state file lists
weighted ``variants`` and each request goes to one of them by weight
(:func:`pick_variant`). A request that meets an upstream that has just stopped
is sent again to the current one. The router also does the data capture.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cheroot.wsgi import Server

from pipelines.core.aws import AwsConnection
from pipelines.serving.capture import CaptureSettings, DataCapture
from pipelines.serving.wsgi import LOOPBACK, json_error, serve_until_signalled

VERSION_HEADER = "X-Mlops-Model-Version"
# InvokeEndpoint's InferenceId travels in this header; data capture records it.
INFERENCE_ID_ENVIRON = "HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID"
# InvokeEndpoint's InferenceId: 1-64 characters, the first not a space, all printable.
_INFERENCE_ID = re.compile(r"^\S[\x20-\x7e]{0,63}$")
# SageMaker refuses InvokeEndpoint payloads over 6 MB; the local endpoint does the same.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
DRAIN_BYTES = 64 * 1024 * 1024
log = logging.getLogger("router")


class Upstream:
    """The current model server, re-read from the state file whenever it changes."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._state: dict[str, Any] = {}

    def current(self, force: bool = False) -> dict[str, Any]:
        try:
            mtime = self.state_file.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        with self._lock:
            if force or mtime != self._mtime:
                try:
                    self._state = json.loads(self.state_file.read_text())
                    self._mtime = mtime
                except (OSError, json.JSONDecodeError):
                    pass  # a half-written file is replaced atomically; keep the last one
            return dict(self._state)


def variants_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The model servers a state file routes to, each with a weight: the ``variants`` of a
    traffic shift (canary, linear), or the one upstream otherwise."""
    variants = state.get("variants")
    if variants:
        return [v for v in variants if v.get("port") and float(v.get("weight", 0)) > 0]
    if state.get("upstream_port"):
        return [{"port": state["upstream_port"], "version": state.get("version"), "weight": 1.0}]
    return []


def pick_variant(variants: list[dict[str, Any]], draw: float) -> dict[str, Any] | None:
    """The variant that a uniform ``draw`` in [0, 1) lands on, by weight: a variant of
    weight 0.1 among weights summing to 1 takes draws in its 10 % slice. Pure, so any
    server (router thread, worker process) picks the same way."""
    total = sum(float(v["weight"]) for v in variants)
    if total <= 0:
        return None
    point = draw * total
    for variant in variants:
        point -= float(variant["weight"])
        if point < 0:
            return variant
    return variants[-1]


class RouterApp:
    def __init__(
        self,
        upstream: Upstream,
        capture: DataCapture | None,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.upstream = upstream
        self.capture = capture
        self.max_payload_bytes = max_payload_bytes
        self.connections = UpstreamConnections()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        try:
            body = read_body(environ, self.max_payload_bytes)
        except PayloadTooLarge as error:
            return _reply(start_response, 413, json_error(str(error)), {}, "Payload Too Large")
        headers = {
            name: value
            for name, value in (
                ("Content-Type", environ.get("CONTENT_TYPE")),
                ("Accept", environ.get("HTTP_ACCEPT")),
            )
            if value
        }
        inference_id = environ.get(INFERENCE_ID_ENVIRON)
        if inference_id is not None and not _INFERENCE_ID.match(inference_id):
            return _reply(
                start_response,
                400,
                json_error("InferenceId must be 1-64 printable characters, not a leading space"),
                {},
                "Bad Request",
            )
        state, failed_port = self.upstream.current(), None
        for attempt in range(2):
            variants = variants_of(state)
            # A retry avoids the server that just failed while another variant serves.
            others = [v for v in variants if v["port"] != failed_port]
            variant = pick_variant(others or variants, random.random())  # noqa: S311
            if variant is None:
                return _reply(start_response, 503, json_error("no model deployed"), {})
            try:
                status, reason, response_headers, response = self.connections.forward(
                    variant["port"], method, path, body, headers
                )
                break
            except (OSError, http.client.HTTPException):
                if attempt:
                    return _reply(
                        start_response, 502, json_error("the model server is not answering"), {}
                    )
                # The upstream stopped right after a switch, or a canary died: use another.
                state, failed_port = self.upstream.current(force=True), variant["port"]
        response_headers[VERSION_HEADER] = str(variant.get("version", ""))
        if self.capture is not None and path == "/invocations" and status == 200:
            self.capture.record(
                body,
                headers.get("Content-Type"),
                response,
                response_headers.get("Content-Type"),
                inference_id,
            )
        return _reply(start_response, status, response, response_headers, reason)


class PayloadTooLarge(ValueError):
    pass


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes before it is read into memory."""
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH")
    if declared:
        length = int(declared)
        if length > limit:
            _drain(stream, length)
            raise PayloadTooLarge(_too_large(length, limit))
        return stream.read(length)
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return b""
    body = stream.read(limit + 1)
    if len(body) > limit:
        _drain(stream, DRAIN_BYTES)
        raise PayloadTooLarge(_too_large(None, limit))
    return body


def _drain(stream: Any, length: int) -> None:
    """Read and drop what the client is still sending, so it gets the 413 rather than a
    broken pipe; past DRAIN_BYTES the connection is simply closed."""
    remaining = min(length, DRAIN_BYTES)
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 16))
        if not chunk:
            break
        remaining -= len(chunk)


def _too_large(length: int | None, limit: int) -> str:
    size = f"{length:,} bytes" if length is not None else "larger than that"
    return (
        f"request body is {size}; the limit is {limit:,} bytes (SageMaker's real-time "
        "InvokeEndpoint payload limit): split the rows over several requests"
    )


class UpstreamConnections:
    """Keep-alive connections to the model servers, one per router thread and port.

    Opening a connection per request costs more than the prediction itself. During a
    traffic shift a thread keeps one connection to each variant; a connection to a
    port no longer routed to is closed when it fails or the thread next opens one.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def forward(
        self, port: int, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, dict[str, str], bytes]:
        pool: dict[int, http.client.HTTPConnection] = getattr(self._local, "pool", None) or {}
        self._local.pool = pool
        connection = pool.get(port)
        if connection is None:
            if len(pool) >= 4:  # ports of model servers that have since stopped
                for stale in pool.values():
                    stale.close()
                pool.clear()
            connection = pool[port] = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            pool.pop(port, None)
            raise
        if response.will_close:
            connection.close()
            pool.pop(port, None)
        kept = {
            name: value
            for name, value in response.getheaders()
            if name.lower() in ("content-type",)
        }
        return response.status, response.reason, kept, payload


def _reply(
    start_response: Callable[..., Any],
    status: int,
    body: bytes,
    headers: dict[str, str],
    reason: str = "",
) -> list[bytes]:
    merged = {"Content-Type": "application/json", **headers, "Content-Length": str(len(body))}
    start_response(f"{status} {reason or 'Error'}", list(merged.items()))
    return [body]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipelines.serving.router")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--capture-uri", default="")
    parser.add_argument("--capture-percent", type=float, default=0.0)
    parser.add_argument("--emulator-endpoint", default="")
    parser.add_argument("--ca-bundle", default="")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    capture = None
    if args.capture_uri and args.capture_percent > 0:
        connection = AwsConnection.for_emulator(
            args.emulator_endpoint, Path(args.ca_bundle), args.region
        )
        capture = DataCapture(
            CaptureSettings(args.capture_uri, args.capture_percent, args.endpoint_name),
            connection.client("s3"),
        ).start()
    server = Server(
        (LOOPBACK, args.port),
        RouterApp(Upstream(args.state_file), capture),
        numthreads=args.threads,
    )

    server.prepare()
    log.info("endpoint %s on %s:%s (pid %s)", args.endpoint_name, LOOPBACK, args.port, os.getpid())
    try:
        serve_until_signalled(server)
    finally:
        if capture is not None:
            capture.close()


if __name__ == "__main__":
    main()
