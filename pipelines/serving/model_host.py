"""Serve one SageMaker Model for a batch transform job, with the endpoint's own servers.

``python -m pipelines.serving.model_host --spec SPEC.json`` (started by the local executor's
transform step, :mod:`pipelines.executor.transform`, which sits below this package and so
reaches it only as a process)

The spec names the model's container (``Image``, ``ModelDataUrl``, ``Environment``: what
DescribeModel returns), the folder to serve from, the emulator and the runtime cache. This
process starts a front and a model server there on a free loopback port, exactly as a
deploy does (:meth:`LocalEndpoint.serve_model`), writes ``{"port": P}`` to the spec's
``ready`` file (or ``{"error": ...}`` when serving fails) and serves until SIGTERM or until
the process that started it is gone; then it stops them. The front watches this process
too (``--owner-pid``), and the model server watches the front, so even a kill -9 of this
process leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.core.files import write_json_atomically
from pipelines.core.processes import LOOPBACK
from pipelines.serving.local_endpoint import LocalEndpoint, stop_endpoint_processes

_POLL_SECONDS = 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipelines.serving.model_host")
    parser.add_argument("--spec", required=True, type=Path)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    ready = Path(spec["ready"])
    starter = os.getppid()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    emulator = spec["emulator"]
    endpoint = LocalEndpoint(
        Path(spec["state_dir"]),
        AwsConnection.for_emulator(
            emulator["endpoint"], Path(emulator["ca_bundle"]), emulator["region"]
        ),
        name=spec["name"],
        port=free_port(),
        role_arn="",
        runtime_cache=Path(spec["runtime_cache"]) if spec.get("runtime_cache") else None,
        host_runtime=bool(spec.get("host_runtime")),
    )
    endpoint.owner_pid = os.getpid()
    try:
        endpoint.serve_model(spec["container"], timeout=float(spec.get("timeout", 300)))
    except MlopsError as error:
        write_json_atomically(ready, {"error": str(error)})
        return 1
    write_json_atomically(ready, {"port": endpoint.port})
    try:
        while not stop.wait(_POLL_SECONDS):
            if os.getppid() != starter:  # the job's process died: nothing will stop us
                break
    finally:
        stop_endpoint_processes(endpoint.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
