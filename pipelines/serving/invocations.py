"""The SageMaker inference contract, as a pure function of a request: ``/ping`` and
``/invocations`` through the model's own handlers, answered as the scikit-learn 1.2-1
image's serving stack answers.

That stack (``sagemaker_sklearn_container.serving`` on ``sagemaker-containers`` 2.8.6.post2:
nginx, gunicorn, Flask 1.1.1, Werkzeug 2.0.3) decides the answers mirrored here:
- the user's ``input_fn``, ``predict_fn``, ``output_fn`` (or ``transform_fn``) are wrapped
  so any exception they raise becomes a ``ClientError`` (``_functions.error_wrapper``,
  ``_transformer.Transformer.__init__``), which Flask answers with its HTML 500: a client
  of SageMaker sees ``ModelError``; the traceback goes to the log (CloudWatch there, the
  model server's log here);
- only the container's *default* handlers' ``UnsupportedFormatError`` gets its own status:
  415 from ``input_fn``, 406 from ``output_fn`` (``_transformer._default_transform_fn``),
  with a JSON body of the error, its message and the stack trace;
- the body reaches ``input_fn`` as text when the content type is exactly ``text/csv`` or
  ``application/json``, as bytes otherwise; a missing Accept (or ``*/*``) becomes
  ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (``application/json``) (``_worker.Request``);
- a ``(body, mimetype)`` result gets Werkzeug's content type for that mimetype: text types
  gain ``; charset=utf-8`` (``text/csv; charset=utf-8``), ``application/json`` stays as is.

No sockets here: the model server's HTTP layer (:mod:`pipelines.serving.http_worker`) parses
requests and writes responses; this module decides them, so the contract is tested without
a server. Before the handlers run, the local endpoint refuses what SageMaker's runtime would
not pass on or what would only hurt the endpoint (:meth:`InferenceService.check`): a bad
InferenceId and JSON nested deeper than :data:`MAX_JSON_DEPTH`. What the body holds is the
handlers' business, as in the container: this project's ``inference.py`` refuses a CSV
header row (a 500 here and on SageMaker), so none is ever captured.

Runs in the model's own runtime (Python 3.9 for the 1.2-1 image): standard library only,
plus whatever the model's handlers import (and numpy for the container's default handlers).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger("model_server")

VERSION_HEADER = "X-Mlops-Model-Version"
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"
# InvokeEndpoint's InferenceId: 1-64 characters, the first not a space, all printable.
_INFERENCE_ID = re.compile(r"^\S[\x20-\x7e]{0,63}$")
# SageMaker refuses InvokeEndpoint payloads over 6 MB; the local endpoint does the same.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# Deeper JSON is refused before input_fn: json.loads would raise RecursionError near 1,000.
MAX_JSON_DEPTH = 100
CSV, JSON, NPY = "text/csv", "application/json", "application/x-npy"
UTF8_TYPES = (JSON, CSV)  # sagemaker_containers._content_types.UTF8_TYPES
DEFAULT_ACCEPT_ENVIRON = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    413: "Payload Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
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
    # Answered by another model server (a canary's share), which captured it itself.
    forwarded: bool = False

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


# --- the container's answers ---------------------------------------------------------------


def content_type_for(mimetype: str) -> str:
    """Werkzeug 2.0.3's ``get_content_type(mimetype, "utf-8")`` (``utils.py``): text types,
    a few known ones and ``+xml`` gain a charset; ``application/json`` does not."""
    if mimetype.startswith("text/") or mimetype in _CHARSET_MIMETYPES or mimetype.endswith("+xml"):
        return f"{mimetype}; charset=utf-8"
    return mimetype


_CHARSET_MIMETYPES = {
    "application/ecmascript",
    "application/javascript",
    "application/sql",
    "application/xml",
    "application/xml-dtd",
    "application/xml-external-parsed-entity",
}


def werkzeug_error(status: int, name: str, description: str) -> Response:
    """An ``HTTPException`` page as Werkzeug 2.0.3 renders it (``exceptions.py``)."""
    body = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
        f"<title>{status} {name}</title>\n"
        f"<h1>{name}</h1>\n"
        f"<p>{description}</p>\n"
    )
    return Response(status, body.encode("utf-8"), "text/html; charset=utf-8")


def internal_error() -> Response:
    """Flask's answer to an exception from a view (``Flask.handle_exception``)."""
    return werkzeug_error(
        500,
        "Internal Server Error",
        "The server encountered an internal error and was unable to complete your request. "
        "Either the server is overloaded or there is an error in the application.",
    )


def method_not_allowed(allowed: str) -> Response:
    response = werkzeug_error(
        405, "Method Not Allowed", "The method is not allowed for the requested URL."
    )
    response.headers["Allow"] = allowed
    return response


def not_found_in_flask() -> Response:
    return werkzeug_error(
        404,
        "Not Found",
        "The requested URL was not found on the server. If you entered the URL manually "
        "please check your spelling and try again.",
    )


class UnsupportedFormatError(Exception):
    """``sagemaker_containers._errors.UnsupportedFormatError``: raised only by the container's
    default decoders and encoders."""

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"Content type {content_type} is not supported by this framework.\n\n"
            "            Please implement input_fn to to deserialize the request data or an "
            "output_fn to\n            serialize the response. For more information, see the "
            "SageMaker Python SDK README."
        )


class HandlerError(Exception):
    """``sagemaker_containers._errors.ClientError``: what any exception from the user's
    handlers becomes, so the container never mistakes it for its own 415 or 406."""


def _format_error(error: Exception, status: int) -> Response:
    """``Transformer._error_response``: the container's own refusals, as JSON."""
    body = json.dumps(
        {
            "error": type(error).__name__,
            "error-message": str(error),
            "stack-trace": traceback.format_exc(),
        }
    )
    return Response(status, body.encode("utf-8"), JSON)


def _wrapped(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``_functions.error_wrapper(fn, ClientError)``."""

    def call(*args: Any) -> Any:
        try:
            return handler(*args)
        except Exception as error:
            raise HandlerError(error) from error

    return call


# The scikit-learn container's default handlers (sagemaker_sklearn_container/serving.py) and
# the encoders they use (sagemaker_containers/_encoders.py), for a program that leaves one out.


def default_input_fn(input_data: Any, content_type: str) -> Any:
    import numpy as np

    decoder = _DECODERS.get(content_type)
    if decoder is None:
        raise UnsupportedFormatError(content_type)
    array = decoder(input_data)
    return array.astype(np.float32) if content_type in UTF8_TYPES else array


def default_predict_fn(input_data: Any, model: Any) -> Any:
    return model.predict(input_data)


def default_output_fn(prediction: Any, accept: str) -> tuple[Any, str]:
    encoder = _ENCODERS.get(accept)
    if encoder is None:
        raise UnsupportedFormatError(accept)
    return encoder(prediction), accept


def _csv_to_numpy(text: str) -> Any:
    import csv

    import numpy as np

    reader = csv.reader(
        io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True
    )
    array = np.array(list(reader)).squeeze()
    # As in the container: a row that is not numbers (a header) leaves the text array as
    # it is, and default_input_fn's float32 conversion then fails on it: a 500.
    with contextlib.suppress(ValueError):
        array = array.astype(None)
    return array


def _json_to_numpy(text: str) -> Any:
    import numpy as np

    return np.array(json.loads(text))


def _npy_to_numpy(data: bytes) -> Any:
    import numpy as np

    # The container loads with allow_pickle=True, so a request could run code in it; the
    # local endpoint listens to every user of this machine and does not.
    return np.load(io.BytesIO(data), allow_pickle=False)


def _array_to_json(array: Any) -> str:
    def default(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        return json.JSONEncoder().default(value)

    return json.dumps(array, default=default)


def _array_to_csv(array_like: Any) -> str:
    import csv

    import numpy as np

    array = np.array(array_like)
    if len(array.shape) == 1:
        array = np.reshape(array, (array.shape[0], 1))
    stream = io.StringIO()
    writer = csv.writer(
        stream, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True, strict=True
    )
    writer.writerows(array)
    return stream.getvalue()


def _array_to_npy(array_like: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array_like)
    return buffer.getvalue()


_DECODERS: dict[str, Callable[[Any], Any]] = {
    NPY: _npy_to_numpy,
    CSV: _csv_to_numpy,
    JSON: _json_to_numpy,
}
_ENCODERS: dict[str, Callable[[Any], Any]] = {
    NPY: _array_to_npy,
    CSV: _array_to_csv,
    JSON: _array_to_json,
}


# --- what the local endpoint refuses before the handlers -------------------------------------

# A JSON string (escapes included) or a bracket: the tokens that decide nesting depth.
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``body`` nests arrays or objects deeper than ``limit``."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # cannot nest deeper than it has brackets
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


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
    # The container has no default model_fn for scikit-learn; the others have defaults,
    # and transform_fn replaces all three (serving.py, _user_module_transformer).
    if not callable(getattr(module, "model_fn", None)):
        raise ImportError(f"{path} does not define model_fn().")
    if callable(getattr(module, "transform_fn", None)) and any(
        callable(getattr(module, name, None)) for name in ("input_fn", "predict_fn", "output_fn")
    ):
        raise ImportError(
            f"{path}: cannot use transform_fn implementation with input_fn, predict_fn, "
            "and/or output_fn."
        )
    return module


class InferenceService:
    """One model version's answers: ``model_fn`` once, then the handlers per request."""

    def __init__(self, handlers: ModuleType, model_dir: Path, version: str = "") -> None:
        self.handlers = handlers
        self.model = handlers.model_fn(str(model_dir))
        self.version = version
        # A built-in algorithm's handlers (pipelines.serving.algorithms) name their
        # container's defaults; the scikit-learn container's are JSON for both.
        self.default_accept = os.environ.get(DEFAULT_ACCEPT_ENVIRON) or getattr(
            handlers, "DEFAULT_INVOCATIONS_ACCEPT", JSON
        )
        self.default_content_type = getattr(handlers, "DEFAULT_CONTENT_TYPE", JSON)
        transform_fn = getattr(handlers, "transform_fn", None)
        if callable(transform_fn):
            self._transform: Callable[[Any, str, str], Any] = self._user_transform(
                _wrapped(transform_fn)
            )
        else:
            self.input_fn = _user_or(handlers, "input_fn", default_input_fn)
            self.predict_fn = _user_or(handlers, "predict_fn", default_predict_fn)
            self.output_fn = _user_or(handlers, "output_fn", default_output_fn)
            self._transform = self._default_transform

    def check(self, request: Request) -> Response | None:
        """The refusal a request gets before any routing, or None."""
        inference_id = request.inference_id
        if inference_id is not None and not _INFERENCE_ID.match(inference_id):
            return json_error(
                400, "InferenceId must be 1-64 printable characters, not a leading space"
            )
        media = media_type(request.content_type)
        if media == JSON and json_too_deep(request.body):
            return json_error(
                400,
                f"the JSON request nests arrays or objects deeper than {MAX_JSON_DEPTH} "
                "levels; send rows as a list of lists",
            )
        return None

    def answer(self, request: Request) -> Response:
        if request.path == "/ping":
            if request.method in ("GET", "HEAD"):
                return self._stamped(Response(200, b"", JSON))  # _worker.default_healthcheck_fn
            return self._stamped(self._other_method(request, "GET, HEAD, OPTIONS"))
        if request.path == "/invocations":
            if request.method != "POST":
                return self._stamped(self._other_method(request, "OPTIONS, POST"))
            return self._stamped(self.check(request) or self._invoke(request))
        if request.path.startswith(("/ping", "/invocations", "/execution-parameters")):
            # nginx passes these on (``location ~ ^/(ping|invocations|execution-parameters)``)
            # and Flask has no route for them.
            return self._stamped(not_found_in_flask())
        # Everything else: the container's nginx, ``location / { return 404 "{}"; }``.
        return self._stamped(Response(404, b"{}", "application/octet-stream"))

    @staticmethod
    def _other_method(request: Request, allowed: str) -> Response:
        if request.method == "OPTIONS":  # Flask's automatic OPTIONS
            return Response(200, b"", "text/html; charset=utf-8", {"Allow": allowed})
        return method_not_allowed(allowed)

    def _invoke(self, request: Request) -> Response:
        # _worker.Request: the content type defaults to JSON; Accept to the default accept.
        content_type = (
            request.headers.get("contenttype") or request.content_type or self.default_content_type
        )
        accept = request.accept
        if not accept or accept == "*/*":
            accept = self.default_accept
        content: str | bytes = request.body
        if content_type in UTF8_TYPES:  # Request.content: get_data(as_text=True)
            content = request.body.decode("utf-8", "replace")
        try:
            result = self._transform(content, content_type, accept)
            if isinstance(result, Response):  # the container's own 415 or 406
                return result
            return _result_response(result)
        except Exception:
            log.error("invocation failed:\n%s", traceback.format_exc())
            return internal_error()

    def _default_transform(self, content: str | bytes, content_type: str, accept: str) -> Any:
        """``Transformer._default_transform_fn``."""
        try:
            data = self.input_fn(content, content_type)
        except UnsupportedFormatError as error:
            return _format_error(error, 415)
        prediction = self.predict_fn(data, self.model)
        try:
            return self.output_fn(prediction, accept)
        except UnsupportedFormatError as error:
            return _format_error(error, 406)

    def _user_transform(self, transform_fn: Callable[..., Any]) -> Callable[[Any, str, str], Any]:
        return lambda content, content_type, accept: transform_fn(
            self.model, content, content_type, accept
        )

    def _stamped(self, response: Response) -> Response:
        response.headers[VERSION_HEADER] = self.version
        return response


def _user_or(handlers: ModuleType, name: str, default: Callable[..., Any]) -> Callable[..., Any]:
    handler = getattr(handlers, name, None)
    return _wrapped(handler) if callable(handler) else default


def _result_response(result: Any) -> Response:
    """What Flask makes of a handler's result: a ``(body, mimetype)`` tuple is a
    ``_worker.Response`` of that mimetype (``Transformer.transform``); a bare string or
    bytes is Flask's default ``text/html``; a dict is ``jsonify``'d; anything else fails."""
    if isinstance(result, tuple):
        body, content_type = result[0], content_type_for(str(result[1]))
    elif isinstance(result, dict):
        body = json.dumps(result, separators=(",", ":"), sort_keys=True) + "\n"
        content_type = JSON
    else:
        body, content_type = result, "text/html; charset=utf-8"
    if isinstance(body, str):
        return Response(200, body.encode("utf-8"), content_type)
    if isinstance(body, (bytes, bytearray, memoryview)):
        return Response(200, bytes(body), content_type)
    raise TypeError(f"the handlers returned a {type(body).__name__} body, not str or bytes")


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
