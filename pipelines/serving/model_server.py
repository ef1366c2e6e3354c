"""A model version's server on the local endpoint: the SageMaker inference container's part.

``python -m pipelines.serving.model_server --model-dir M --code-dir C --socket P ...``
(started in the endpoint's folder)

Like the scikit-learn serving container (gunicorn, one worker per CPU by default,
``SAGEMAKER_MODEL_SERVER_WORKERS`` to choose; locally at most 4 by default), it runs
worker processes that each import
the model package's own ``inference.py``, call ``model_fn`` once and answer ``/ping`` and
``/invocations`` through ``input_fn``, ``predict_fn`` and ``output_fn``, unchanged
(:mod:`pipelines.serving.http_worker`).

This process supervises them: it takes the endpoint's public listening socket from the
endpoint's front (over a Unix socket, so the port never closes between versions), binds
its private Unix socket (0600: health checks and a canary's forwarded share; no TCP port
of its own, so no request reaches the model around the endpoint's limits and capture),
forks the workers, writes the ready file once every worker has loaded the model, replaces
a worker that dies, and on SIGTERM stops them, letting them finish what they serve. If it
is killed, its workers serve on until the front has started its replacement. If the front
is gone (``--front-pid``; killed with its process group, say), nothing would replace or stop
them: the server stops its workers and exits, and a worker whose server and front are both
gone exits by itself.

Runs in the model's own runtime (Python 3.9 for the 1.2-1 image): standard library and
httptools only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import select
import signal
import socket
import stat
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from pipelines.serving.capture import CaptureSpool
from pipelines.serving.invocations import InferenceService, load_handlers
from pipelines.serving.router import process_alive

log = logging.getLogger("model_server")

WORKERS_ENVIRON = "SAGEMAKER_MODEL_SERVER_WORKERS"
_STOP_SECONDS = 12.0
_CRASH_LOOP = 3  # workers dying within _CRASH_SECONDS of starting, in a row, stop the server
_CRASH_SECONDS = 5.0


def receive_listener(handout: str) -> socket.socket:
    """The endpoint's public listening socket, passed by the front over a Unix socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.settimeout(10)
        channel.connect(handout)
        _, fds, _, _ = socket.recv_fds(channel, 16, 1)
    if not fds:
        raise RuntimeError(f"the endpoint's front at {handout} sent no socket")
    return socket.socket(fileno=fds[0])


# The container starts one worker per vCPU of its instance; a laptop's cores are shared with
# everything else on it, so the local default stops at this many.
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    configured = os.environ.get(WORKERS_ENVIRON, "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def bind_private(path: str) -> socket.socket:
    """The server's private socket at ``path``, readable and writable by this user only;
    a socket left there by a server that died is replaced."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    private = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        private.bind(path)
    finally:
        os.umask(old_umask)
    private.listen(1024)
    return private


class Supervisor:
    def __init__(self, args: argparse.Namespace, public: socket.socket, private: socket.socket):
        self.args = args
        self.public = public
        self.private = private
        self.children: dict[int, float] = {}  # pid -> start time
        self.stopping = False
        self.crashes = 0

    def start_worker(self, ready_fd: int | None) -> int:
        pid = os.fork()
        if pid:
            self.children[pid] = time.monotonic()
            return pid
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = self._worker(ready_fd)
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _worker(self, ready_fd: int | None) -> int:
        from pipelines.serving.http_worker import Worker, run_worker
        from pipelines.serving.router import RouteTable

        args = self.args
        service = InferenceService(
            load_handlers(args.code_dir, args.program), args.model_dir, str(args.version)
        )
        spool = None
        if args.capture_spool and args.capture_percent > 0:
            spool = CaptureSpool(args.capture_spool, args.capture_percent)
        worker = Worker(
            service,
            RouteTable(args.state_file, args.socket, server_pid=os.getppid()),
            self.public,
            self.private,
            spool=spool,
            parent_pid=os.getppid(),
            front_pid=args.front_pid,
        )
        if ready_fd is not None:
            os.write(ready_fd, b"1")
            os.close(ready_fd)
        run_worker(worker)
        return 0

    def start(self, count: int, timeout: float) -> None:
        """Fork ``count`` workers and wait until each has loaded the model."""
        ready_read, ready_write = os.pipe()
        for _ in range(count):
            self.start_worker(ready_write)
        os.close(ready_write)
        ready, deadline = 0, time.monotonic() + timeout
        while ready < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not load the model within {timeout:.0f} s")
            for pid in list(self.children):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    raise RuntimeError(
                        f"a worker exited while loading the model (exit status {status >> 8})"
                    )
            readable = _wait_readable(ready_read, 0.1)
            if readable:
                ready += len(os.read(ready_read, 64))
        os.close(ready_read)

    def supervise(self) -> None:
        """Replace workers that die; on SIGTERM, stop them all and return."""
        stop_deadline = 0.0
        while self.children:
            if not self.stopping and not process_alive(self.args.front_pid):
                log.error("the endpoint's front is gone; the model server stops")
                self.stopping = True
            if self.stopping and not stop_deadline:
                stop_deadline = time.monotonic() + _STOP_SECONDS
                self._signal_all(signal.SIGTERM)
            if stop_deadline and time.monotonic() > stop_deadline:
                self._signal_all(signal.SIGKILL)
            pid, status = os.waitpid(-1, os.WNOHANG)
            if not pid:
                time.sleep(0.1)
                continue
            started = self.children.pop(pid, time.monotonic())
            if self.stopping:
                continue
            self.crashes = self.crashes + 1 if time.monotonic() - started < _CRASH_SECONDS else 0
            if self.crashes >= _CRASH_LOOP:
                log.error("workers keep dying right after they start; the model server stops")
                self.stopping = True
                continue
            log.warning("worker %s exited (status %s); starting another", pid, status)
            self.start_worker(None)

    def _signal_all(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                self.children.pop(pid, None)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True


def _wait_readable(fd: int, timeout: float) -> bool:
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipelines.serving.model_server")
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--code-dir", required=True, type=Path)
    parser.add_argument("--program", default="inference.py")
    parser.add_argument("--front-socket", required=True, help="the front's Unix socket")
    parser.add_argument("--socket", required=True, help="this server's own Unix socket")
    parser.add_argument("--state-file", required=True, type=Path)
    parser.add_argument("--version", default="")
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=0, help="0: the container's default")
    parser.add_argument("--capture-spool", type=Path, default=None)
    parser.add_argument("--capture-percent", type=float, default=0.0)
    parser.add_argument("--load-timeout", type=float, default=300.0)
    parser.add_argument(
        "--front-pid", type=int, default=None, help="stop when this process (the front) is gone"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    public = receive_listener(args.front_socket)
    private = bind_private(args.socket)
    bound = os.stat(args.socket).st_ino
    supervisor = Supervisor(args, public, private)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    workers = args.workers or default_workers()
    try:
        supervisor.start(workers, args.load_timeout)
    except RuntimeError as error:
        log.error("%s", error)
        supervisor.stopping = True
        supervisor.supervise()
        _unbind(private, args.socket, bound)
        sys.exit(1)
    # Atomically: the starter polls for this file and reads it as soon as it exists.
    pending = args.ready_file.with_name(args.ready_file.name + ".tmp")
    pending.write_text(
        json.dumps(
            {"socket": args.socket, "pid": os.getpid(), "workers": sorted(supervisor.children)}
        )
    )
    pending.replace(args.ready_file)
    log.info("serving %s on %s with %d workers", args.model_dir, args.socket, workers)
    supervisor.supervise()
    _unbind(private, args.socket, bound)


def _unbind(private: socket.socket, path: str, bound: int) -> None:
    """Remove the socket file, unless a server started in this one's place bound it anew."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_ino == bound:
            os.unlink(path)
    private.close()


if __name__ == "__main__":
    main()
