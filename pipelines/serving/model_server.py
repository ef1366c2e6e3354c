"""The SageMaker inference container contract, served locally.

``python -m pipelines.serving.model_server --model-dir M --code-dir C --program inference.py``

It loads the model package's own ``inference.py`` (the one in its code bundle, as
the scikit-learn serving container does), calls ``model_fn`` once, and answers
``GET /ping`` and ``POST /invocations`` through ``input_fn``, ``predict_fn`` and
``output_fn``, unchanged. It listens on 127.0.0.1 only, on a port of its own; the
endpoint's router in front of it owns the public port.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from cheroot.wsgi import Server

from pipelines.serving.wsgi import LOOPBACK, json_error, serve_until_signalled

log = logging.getLogger("model_server")


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


class InferenceApp:
    """The WSGI application: /ping and /invocations."""

    def __init__(self, handlers: ModuleType, model_dir: Path) -> None:
        self.handlers = handlers
        self.model = handlers.model_fn(str(model_dir))

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/ping" and method == "GET":
            return self._respond(start_response, 200, b"\n", "text/plain")
        if path == "/invocations" and method == "POST":
            return self._invoke(environ, start_response)
        return self._error(start_response, 404, f"no route for {method} {path}")

    def _invoke(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        content_type = environ.get("CONTENT_TYPE") or "application/json"
        accept = environ.get("HTTP_ACCEPT") or "application/json"
        try:
            data = self.handlers.input_fn(body, content_type)
            prediction = self.handlers.predict_fn(data, self.model)
            result = self.handlers.output_fn(prediction, accept)
        except Exception as error:
            status = getattr(error, "status_code", None)
            if isinstance(status, int) and 400 <= status < 500:
                return self._error(start_response, status, str(error))
            log.error("invocation failed:\n%s", traceback.format_exc())
            return self._error(start_response, 500, f"internal error: {type(error).__name__}")
        payload, returned_type = result if isinstance(result, tuple) else (result, accept)
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        return self._respond(start_response, 200, payload, returned_type)

    @staticmethod
    def _respond(
        start_response: Callable[..., Any], status: int, body: bytes, content_type: str
    ) -> list[bytes]:
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            406: "Not Acceptable",
            415: "Unsupported Media Type",
            500: "Internal Server Error",
        }.get(status, "Error")
        start_response(
            f"{status} {reason}",
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _error(self, start_response: Callable[..., Any], status: int, message: str) -> list[bytes]:
        return self._respond(start_response, status, json_error(message), "application/json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipelines.serving.model_server")
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--code-dir", required=True, type=Path)
    parser.add_argument("--program", default="inference.py")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    app = InferenceApp(load_handlers(args.code_dir, args.program), args.model_dir)
    server = Server((LOOPBACK, args.port), app, numthreads=args.threads)

    server.prepare()
    port = server.bind_addr[1]
    # Atomically: the starter polls for this file and reads it as soon as it exists.
    pending = args.ready_file.with_name(args.ready_file.name + ".tmp")
    pending.write_text(json.dumps({"port": port}))
    pending.replace(args.ready_file)
    log.info("serving %s on %s:%s", args.model_dir, LOOPBACK, port)
    serve_until_signalled(server)


if __name__ == "__main__":
    main()
