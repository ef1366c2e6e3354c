"""The local endpoint's front: owns the endpoint's port for the endpoint's whole life.

``python -m pipelines.serving.front --port P --endpoint-name N ...`` (started in the
endpoint's folder)

It binds 127.0.0.1:P once and hands that listening socket to each model server that asks
(over the Unix socket ``front.sock`` in the endpoint's folder, to this user only). The
model servers' workers accept from it directly, so a request takes one hop, and the port
never closes while versions come and go: connections wait in the one accept queue until a
worker of the current version takes them. The front is not on the request path; it also
ships the workers' capture spool files to S3 (:mod:`pipelines.serving.capture_upload`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import selectors
import signal
import socket
import struct
import time
from pathlib import Path
from types import FrameType

from pipelines.core.aws import AwsConnection
from pipelines.core.processes import LOOPBACK
from pipelines.serving.capture import CaptureSettings
from pipelines.serving.capture_upload import CaptureUploader

log = logging.getLogger("front")

HANDOUT = "front.sock"
BACKLOG = 1024
_SHIP_SECONDS = 1.0


class Front:
    def __init__(self, port: int, handout: Path, uploader: CaptureUploader | None) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOOPBACK, port))
        self.listener.listen(BACKLOG)
        handout.unlink(missing_ok=True)
        self.handout = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket file is created 0600: this user only
        try:
            self.handout.bind(str(handout))
        finally:
            os.umask(old_umask)
        self.handout.listen(16)
        self.handout_path = handout
        self.uploader = uploader
        self.stopping = False

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.handout, selectors.EVENT_READ)
        shipped_at = time.monotonic()
        try:
            while not self.stopping:
                for _ in selector.select(timeout=0.2):
                    self._hand_over()
                if self.uploader is not None and time.monotonic() - shipped_at >= _SHIP_SECONDS:
                    self.uploader.ship()
                    shipped_at = time.monotonic()
        finally:
            selector.close()
            self.handout.close()
            self.handout_path.unlink(missing_ok=True)
            self.listener.close()
            if self.uploader is not None:
                self.uploader.ship()  # what the stopped model servers spooled last

    def _hand_over(self) -> None:
        connection, _ = self.handout.accept()
        with connection:
            credentials = connection.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
            )
            _, uid, _ = struct.unpack("3i", credentials)
            if uid != os.getuid():
                log.warning("refused the listening socket to uid %s", uid)
                return
            with contextlib.suppress(OSError):  # the model server gave up waiting
                socket.send_fds(connection, [b"L"], [self.listener.fileno()])

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipelines.serving.front")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--capture-uri", default="")
    parser.add_argument("--capture-spool", type=Path, default=None)
    parser.add_argument("--emulator-endpoint", default="")
    parser.add_argument("--ca-bundle", default="")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    uploader = None
    if args.capture_uri and args.capture_spool is not None:
        connection = AwsConnection.for_emulator(
            args.emulator_endpoint, Path(args.ca_bundle), args.region
        )
        uploader = CaptureUploader(
            CaptureSettings(args.capture_uri, 100.0, args.endpoint_name),
            args.capture_spool,
            connection.client("s3"),
        )
    front = Front(args.port, Path(HANDOUT), uploader)
    signal.signal(signal.SIGTERM, front.request_stop)
    signal.signal(signal.SIGINT, front.request_stop)
    log.info("endpoint %s on %s:%s (pid %s)", args.endpoint_name, LOOPBACK, args.port, os.getpid())
    front.serve()


if __name__ == "__main__":
    main()
