"""The SageMaker inference contract, as a pure function of a request: ``/ping`` and
``/invocations`` through the model's own ``input_fn``, ``predict_fn`` and ``output_fn``.

No sockets here: the model server's HTTP layer (:mod:`pipelines.serving.http_worker`) parses
requests and writes responses; this module decides them, so the contract is tested without
a server. Runs in the model's own runtime (Python 3.9 for the 1.2-1 image): standard
library only, plus whatever the model's handlers import.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

log = logging.getLogger("model_server")

VERSION_HEADER = "X-Mlops-Model-Version"
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"
# InvokeEndpoint's InferenceId: 1-64 characters, the first not a space, all printable.
_INFERENCE_ID = re.compile(r"^\S[\x20-\x7e]{0,63}$")
# SageMaker refuses InvokeEndpoint payloads over 6 MB; the local endpoint does the same.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def accept(self) -> str | None:
        return self.headers.get("accept")

    @property
    def inference_id(self) -> str | None:
        return self.headers.get(INFERENCE_ID_HEADER)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return REASONS.get(self.status, "Error")


def json_error(status: int, message: str) -> Response:
    return Response(status, json.dumps({"error": message}).encode("utf-8"))


def too_large(length: int | None, limit: int = MAX_PAYLOAD_BYTES) -> Response:
    size = f"{length:,} bytes" if length is not None else "larger than that"
    return json_error(
        413,
        f"request body is {size}; the limit is {limit:,} bytes (SageMaker's real-time "
        "InvokeEndpoint payload limit): split the rows over several requests",
    )


def load_handlers(code_dir: Path, program: str) -> ModuleType:
    """Import the entry point the way the container does: by file, with its folder on
    sys.path so it can import its neighbours."""
    path = code_dir / program
    if not path.is_file():
        raise FileNotFoundError(f"The model's code has no entry point {program!r} in {code_dir}.")
    sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(Path(program).stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot import {path}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for handler in ("model_fn", "input_fn", "predict_fn", "output_fn"):
        if not callable(getattr(module, handler, None)):
            raise ImportError(f"{path} does not define {handler}().")
    return module


class InferenceService:
    """One model version's answers: ``model_fn`` once, then the three handlers per request."""

    def __init__(self, handlers: ModuleType, model_dir: Path, version: str = "") -> None:
        self.handlers = handlers
        self.model = handlers.model_fn(str(model_dir))
        self.version = version

    def check(self, request: Request) -> Response | None:
        """The refusal a request gets before any routing, or None."""
        inference_id = request.inference_id
        if inference_id is not None and not _INFERENCE_ID.match(inference_id):
            return json_error(
                400, "InferenceId must be 1-64 printable characters, not a leading space"
            )
        return None

    def answer(self, request: Request) -> Response:
        if request.path == "/ping":
            if request.method != "GET":
                return json_error(405, f"{request.method} /ping: use GET")
            return self._stamped(Response(200, b"\n", "text/plain"))
        if request.path == "/invocations":
            if request.method != "POST":
                return json_error(405, f"{request.method} /invocations: use POST")
            return self._stamped(self.check(request) or self._invoke(request))
        return self._stamped(json_error(404, f"no route for {request.method} {request.path}"))

    def _invoke(self, request: Request) -> Response:
        content_type = request.content_type or "application/json"
        accept = request.accept or "application/json"
        try:
            data = self.handlers.input_fn(request.body, content_type)
            prediction = self.handlers.predict_fn(data, self.model)
            result = self.handlers.output_fn(prediction, accept)
        except Exception as error:
            status = getattr(error, "status_code", None)
            if isinstance(status, int) and 400 <= status < 500:
                return json_error(status, str(error))
            log.error("invocation failed:\n%s", traceback.format_exc())
            return json_error(500, f"internal error: {type(error).__name__}")
        payload, returned_type = result if isinstance(result, tuple) else (result, accept)
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        return Response(200, bytes(payload), returned_type)

    def _stamped(self, response: Response) -> Response:
        response.headers[VERSION_HEADER] = self.version
        return response


def serialize(response: Response, keep_alive: bool) -> bytes:
    """The response's bytes on the wire (HTTP/1.1)."""
    head = [
        f"HTTP/1.1 {response.status} {response.reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
    ]
    head += [f"{name}: {value}" for name, value in response.headers.items()]
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
