"""The local endpoint's front: owns the endpoint's port for the endpoint's whole life.

``python -m pipelines.serving.front --port P --endpoint-name N ...`` (started in the
endpoint's folder)

It binds 127.0.0.1:P once and hands that listening socket to each model server that asks
(over the Unix socket ``front.sock`` in the endpoint's folder, to this user only). The
model servers' workers accept from it directly, so a request takes one hop, and the port
never closes while versions come and go: connections wait in the one accept queue until a
worker of the current version takes them. The front is not on the request path; it also
ships the workers' capture spool files to S3 (:mod:`pipelines.serving.capture_upload`).

It also supervises the serving model server (:class:`Restarter`): when the server the
endpoint's state names has died (kill -9, out of memory), the front starts the same
command again (the deploy left it in the release's ``server.json``) and names the new
server in the state; its workers take over from the dead server's, which serve on until
then. If nothing at all is left to accept (the workers died too), the front answers the
waiting requests itself with 503 and ``Retry-After`` until a server is back, so a client
never hangs on the accept queue.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import select
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from pipelines.core.aws import AwsConnection
from pipelines.core.files import write_json_atomically
from pipelines.core.processes import LOOPBACK
from pipelines.serving.capture import CaptureSettings
from pipelines.serving.capture_upload import CaptureUploader
from pipelines.serving.router import process_alive

log = logging.getLogger("front")

HANDOUT = "front.sock"
STATE = "endpoint.json"
LOCK = "endpoint.lock"
SERVER_SPEC = "server.json"  # in a release: how to start its model server again
BACKLOG = 1024
_SHIP_SECONDS = 1.0
_RETRY_SECONDS = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)  # between restarts that fail in a row
_BUSY = json.dumps(
    {"error": "the endpoint's model server is restarting: retry in a moment"}
).encode()
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
    + str(len(_BUSY)).encode()
    + b"\r\n\r\n"
    + _BUSY
)


def read_state(path: Path) -> dict[str, Any] | None:
    """The endpoint's state, or None when it is missing or damaged."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def serving(pid: int | None, socket_path: str) -> bool:
    """``pid`` is a live model server on ``socket_path`` (a recorded pid may be reused)."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return socket_path in process.cmdline() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Restarter:
    """Puts a new model server in the place of the primary one when it dies.

    Runs in the front's loop, so in the endpoint's folder. A deploy or a down of the endpoint
    holds the endpoint's lock and decides which servers run: the front takes the lock only
    briefly (never waiting for it) to start a server and to name it in the state, and
    re-reads the state each time, so it never undoes what a deploy did meanwhile.
    """

    def __init__(self, listener: socket.socket, directory: Path = Path(".")) -> None:
        self.listener = listener
        self.state_file = directory / STATE
        self.lock_file = directory / LOCK
        self.directory = directory
        self.pending: tuple[subprocess.Popen[bytes], int, Path, float] | None = None
        self.started: list[subprocess.Popen[bytes]] = []  # reaped once they exit
        self.failures = 0
        self.next_try = 0.0
        self.refuser: threading.Thread | None = None
        self.refusing = threading.Event()
        self.scanned = 0.0

    def check(self) -> None:
        self.started = [process for process in self.started if process.poll() is None]
        state = read_state(self.state_file)
        dead = state.get("model_server_pid") if state else None
        upstream = str(state.get("upstream", "")) if state else ""
        if state is None or not dead or serving(dead, upstream):
            self.refusing.clear()
            self.stop()
            return
        now = time.monotonic()
        if not self.refusing.is_set() and now - self.scanned >= 0.5:
            self.scanned = now
            if not self._workers_left(upstream):
                self._refuse()  # nothing accepts: answer 503 rather than let requests queue
        if self.pending is not None:
            self._poll(dead)
        elif time.monotonic() >= self.next_try:
            self._start(state, dead)

    def _start(self, state: dict[str, Any], dead: int) -> None:
        release = Path(str(state.get("release", "")))
        try:
            spec = json.loads((release / SERVER_SPEC).read_text())
        except (OSError, ValueError) as error:
            log.error("cannot restart the model server of %s: %s", release, error)
            self._failed()
            return
        with self._locked() as locked:
            if not locked or (read_state(self.state_file) or {}).get("model_server_pid") != dead:
                return
            ready = Path(spec["ready"])
            ready.unlink(missing_ok=True)
            with (release / "model_server.log").open("ab") as output:
                process = subprocess.Popen(
                    spec["command"],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=spec["env"],
                    cwd=self.directory,
                )
        log.warning(
            "the model server of version %s (pid %s) died; started pid %s in its place",
            state.get("version"),
            dead,
            process.pid,
        )
        self.started.append(process)
        self.pending = (process, dead, ready, time.monotonic() + float(spec.get("timeout", 120)))

    def _poll(self, dead: int) -> None:
        assert self.pending is not None
        process, _, ready, deadline = self.pending
        if process.poll() is not None or time.monotonic() > deadline:
            log.error("the model server started in place of pid %s did not come up", dead)
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()
            self.pending = None
            self._failed()
            return
        if read_state(ready) is None:
            return
        with self._locked() as locked:
            if not locked:
                return  # a deploy or a down is deciding: ask again next turn
            state = read_state(self.state_file)
            if state is not None and state.get("model_server_pid") == dead:
                write_json_atomically(
                    self.state_file,
                    {**state, "model_server_pid": process.pid, "restarted_at": time.time()},
                )
                log.info("model server pid %s serves in place of pid %s", process.pid, dead)
                self.failures, self.pending = 0, None
                self.refusing.clear()
                return
        self.stop()  # the state moved on meanwhile: this server is not wanted

    def stop(self) -> None:
        """Stop a server started and not yet named in the state."""
        if self.pending is not None:
            process = self.pending[0]
            with contextlib.suppress(OSError):
                process.terminate()
            process.wait()
            self.pending = None

    def _failed(self) -> None:
        self.failures += 1
        pause = _RETRY_SECONDS[min(self.failures, len(_RETRY_SECONDS) - 1)]
        self.next_try = time.monotonic() + pause

    @contextlib.contextmanager
    def _locked(self) -> Any:
        with self.lock_file.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _workers_left(self, socket_path: str) -> bool:
        """Some worker of the dead server still runs (and so still accepts)."""
        if not socket_path:
            return False
        me = os.getuid()
        for process in psutil.process_iter(["cmdline", "uids"]):
            info = process.info
            if info["uids"] is None or info["uids"].real != me:
                continue
            command = info["cmdline"] or []
            if socket_path in command and "--socket" in command:
                with contextlib.suppress(psutil.Error):
                    if process.status() != psutil.STATUS_ZOMBIE:
                        return True
        return False

    def _refuse(self) -> None:
        self.refusing.set()
        if self.refuser is None or not self.refuser.is_alive():
            self.refuser = threading.Thread(target=self._answer_unavailable, daemon=True)
            self.refuser.start()

    def _answer_unavailable(self) -> None:
        """Answer what waits on the port with 503 while no model server accepts."""
        while self.refusing.is_set():
            with contextlib.suppress(OSError):
                readable, _, _ = select.select([self.listener], [], [], 0.2)
                if not readable:
                    continue
                try:
                    connection, _ = self.listener.accept()
                except BlockingIOError:
                    continue  # a worker took it
                with connection:
                    connection.settimeout(1.0)
                    head = b""
                    with contextlib.suppress(OSError):
                        while b"\r\n\r\n" not in head and len(head) < 65536:
                            chunk = connection.recv(65536)
                            if not chunk:
                                break
                            head += chunk
                    connection.sendall(_UNAVAILABLE)
                    connection.shutdown(socket.SHUT_WR)


class Front:
    def __init__(
        self,
        port: int,
        handout: Path,
        uploader: CaptureUploader | None,
        owner_pid: int | None = None,
    ) -> None:
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
        self.restarter = Restarter(self.listener, handout.parent)
        self.stopping = False
        # A batch transform's front lives as long as the job that serves through it.
        self.owner_pid = owner_pid

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.handout, selectors.EVENT_READ)
        shipped_at = time.monotonic()
        try:
            while not self.stopping:
                for _ in selector.select(timeout=0.2):
                    self._hand_over()
                self.restarter.check()
                if self.owner_pid is not None and not process_alive(self.owner_pid):
                    log.warning("its owner (pid %s) is gone; the front stops", self.owner_pid)
                    self.stopping = True
                if self.uploader is not None and time.monotonic() - shipped_at >= _SHIP_SECONDS:
                    self.uploader.ship()
                    shipped_at = time.monotonic()
        finally:
            self.restarter.refusing.clear()
            self.restarter.stop()
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
    parser.add_argument("--owner-pid", type=int, default=None, help="stop when it is gone")
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
    front = Front(args.port, Path(HANDOUT), uploader, args.owner_pid)
    signal.signal(signal.SIGTERM, front.request_stop)
    signal.signal(signal.SIGINT, front.request_stop)
    log.info("endpoint %s on %s:%s (pid %s)", args.endpoint_name, LOOPBACK, args.port, os.getpid())
    front.serve()


if __name__ == "__main__":
    main()
