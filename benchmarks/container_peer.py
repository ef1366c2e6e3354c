"""The peer: the SageMaker scikit-learn container 1.2-1's serving stack, without nginx.

What the container runs for a single model (``sagemaker_sklearn_container.serving`` on top of
``sagemaker_containers`` 2.8.6.post2, ``_server.start``, ``_worker``, ``_transformer``):
gunicorn with gevent workers serving a Flask app; in each worker the first request builds
the app, which imports the user module and calls its ``model_fn`` once; ``POST /invocations``
reads the body (as text for text/csv and application/json), the ``ContentType`` or
``Content-Type`` header (application/json when absent) and ``Accept`` (application/json
when absent or ``*/*``), calls ``input_fn -> predict_fn -> output_fn`` and turns a
``(body, content_type)`` tuple into the response; ``GET /ping`` answers 200.

One departure, on error paths only: the container wraps a handler's exception in its
``ClientError`` and Flask answers 500; the peer answers the handler's
``InferenceError.status_code`` (as the local endpoint does), with the container's error body.

This module has two halves. ``main`` (the WSGI entry) runs inside the peer's runtime,
Python 3.9 with the 1.2-1 pins and :data:`PEER_EXTRAS`, so the module's top imports only
the standard library; :func:`running_peer` (the launcher) runs in the project's venv and
imports the project inside its functions.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# The container's serving packages, from aws/sagemaker-scikit-learn-container's
# requirements.txt at c59fb77e58e802b7458aade5f9e20b9546c6d304 (the commit the 1.2-1 pins
# cite; docker/1.2-1/final/Dockerfile.cpu installs that file over the base image).
# Older trees (scikit-learn 1.0-1 era) pinned gunicorn 20.0.4 and Werkzeug 0.15.6; the 1.2-1
# image was rebuilt with these. gevent is pinned there too (23.9.1, which has cp39 wheels).
PEER_EXTRAS = (
    "Flask==1.1.1",
    "Werkzeug==2.0.3",
    "jinja2==3.0.3",
    "MarkupSafe==2.1.1",
    "itsdangerous==2.0.1",
    "gunicorn==23.0.0",
    "gevent==23.9.1",
)
WORKERS = 2  # the container's default is one per CPU: 2 on this machine's 2 cores
TIMEOUT_SECONDS = 60  # SAGEMAKER_MODEL_SERVER_TIMEOUT's default
HERE = Path(__file__).resolve().parent

# sagemaker_containers._content_types
JSON = "application/json"
CSV = "text/csv"
ANY = "*/*"
UTF8_TYPES = (JSON, CSV)

# --------------------------------------------------------------------------------------------
# Inside the peer's runtime: the WSGI app gunicorn serves
# --------------------------------------------------------------------------------------------

app = None


def main(environ, start_response):
    """gunicorn's entry, as ``sagemaker_sklearn_container.serving:main``: each worker builds
    its app on its first request."""
    global app
    if app is None:
        app = build_app(os.environ["SAGEMAKER_PROGRAM"], os.environ["SM_MODEL_DIR"])
    return app(environ, start_response)


def build_app(program: str, model_dir: str):
    import flask

    # The code folder is on gunicorn's --pythonpath, as the container puts /opt/ml/code.
    module = importlib.import_module(Path(program).stem)
    model = module.model_fn(model_dir)
    worker = flask.Flask(module.__name__)

    @worker.route("/ping")
    def ping():
        return flask.Response(status=200)

    @worker.route("/invocations", methods=["POST"])
    def invocations():
        request = flask.request
        content_type = (
            request.headers.get("ContentType") or request.headers.get("Content-Type") or JSON
        )
        accept = request.headers.get("Accept")
        if not accept or accept == ANY:
            accept = JSON  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT's default
        content = request.get_data(as_text=content_type in UTF8_TYPES)
        try:
            data = module.input_fn(content, content_type)
            result = module.output_fn(module.predict_fn(data, model), accept)
        except Exception as error:
            status = getattr(error, "status_code", None)
            if status is None:
                raise
            body = {"error": type(error).__name__, "error-message": str(error)}
            return flask.Response(json.dumps(body), status=status, mimetype=JSON)
        if isinstance(result, tuple):
            return flask.Response(response=result[0], mimetype=result[1])
        return result

    return worker


# --------------------------------------------------------------------------------------------
# In the project's venv: build the runtime, start, wait, stop
# --------------------------------------------------------------------------------------------


def peer_runtime(image: str, cache_root: Path, notify=lambda line: None):
    """The container's runtime: the image's profile (Python 3.9, its pins) plus the
    serving packages, built once per cache with the project's environment cache."""
    from pipelines.containers.environments import EnvironmentCache
    from pipelines.containers.profiles import profile_for_image

    profile = profile_for_image(image)
    if profile is None:
        raise SystemExit(f"no runtime profile for the image {image}")
    return EnvironmentCache(cache_root, progress=notify).ensure(profile, extras=PEER_EXTRAS)


@contextlib.contextmanager
def running_peer(
    release: Path, program: str, python: str, port: int, log: Path, timeout: float = 120.0
) -> Iterator[int]:
    """Serve ``release`` (its ``model/`` and ``code/``) with the peer on 127.0.0.1:``port``
    until the block ends; yields the port once /ping answers. On the way out (also on
    Ctrl-C or an error) the whole process group gets SIGTERM and is waited for."""
    from pipelines.core.processes import log_tail, spawn

    command = [
        python, "-m", "gunicorn",
        "--timeout", str(TIMEOUT_SECONDS),
        "-k", "gevent",
        "--pythonpath", str(release / "code"),
        "-b", f"127.0.0.1:{port}",
        "--worker-connections", str(1000 * WORKERS),
        "-w", str(WORKERS),
        "--log-level", "info",
        "--chdir", str(HERE),
        "container_peer:main",
    ]  # fmt: skip
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
    env.update(
        SAGEMAKER_PROGRAM=program,
        SM_MODEL_DIR=str(release / "model"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    process = spawn(command, log, env=env)  # its own session: its own process group
    try:
        _wait_for_ping(port, process, timeout, lambda: log_tail(log))
        yield port
    finally:
        _stop_group(process)


def _wait_for_ping(port: int, process: subprocess.Popen, timeout: float, tail) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the peer exited with {process.returncode}:\n{tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the peer did not answer /ping within {timeout:.0f} s:\n{tail()}")


def _stop_group(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM to gunicorn's master and workers; SIGKILL what is left after ``timeout``."""
    group = process.pid  # start_new_session: the group id is the master's pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    # A worker that outlived its master (or a master that ignored SIGTERM).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait()
