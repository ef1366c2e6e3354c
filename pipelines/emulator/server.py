"""Entrypoint of the emulator process: moto's WSGI app, with the compat layer applied,
served over HTTPS by cheroot.

Run as ``python -m pipelines.emulator.server --port N --ssl-cert C --ssl-key K
--credentials F``. It always binds 127.0.0.1, and answers only requests signed with
its checkout's key (``F``; pipelines.emulator.signatures): other users of the machine
reach the port too. cheroot rather than werkzeug's development
server because werkzeug closes the connection after every response, and a new TLS
handshake per request tripled the latency of every AWS call a run makes.

The process that serves is the one that owns the emulator: it takes an exclusive
lock on ``<state>/emulator.lock`` before binding, restores the durable state, and
only then writes its own pid to ``<state>/emulator.json``. A second server started
on the same state directory finds the lock taken and exits with ``EXIT_LOCKED``, so
there is never an orphan that holds resources while the pid file names another.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import ssl
import sys
import time
from pathlib import Path
from types import FrameType
from typing import IO

from pipelines.core.files import write_atomically, write_privately
from pipelines.core.processes import LOOPBACK

EXIT_LOCKED = 75  # EX_TEMPFAIL: another emulator already serves this state directory
LOCK_NAME = "emulator.lock"
PID_NAME = "emulator.json"
DATA_NAME = "data"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pipelines.emulator.server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ssl-cert", required=True)
    parser.add_argument("--ssl-key", required=True)
    parser.add_argument("--credentials", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--state-dir", type=Path, default=None)
    return parser.parse_args(argv)


def take_lock(state_dir: Path) -> IO[str] | None:
    """The serving lock, held for the life of the process (the kernel drops it on any
    exit, kill -9 included); None when another process holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / LOCK_NAME).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def lock_is_held(state_dir: Path) -> bool:
    """True while some process serves this state directory."""
    path = state_dir / LOCK_NAME
    if not path.exists():
        return False
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _write_pid_file(state_dir: Path, port: int, restored: bool, recovered: list[str]) -> None:
    record = {
        "pid": os.getpid(),
        "port": port,
        "started_at": time.time(),
        "restored": restored,
        "recovered": recovered,
    }
    write_atomically(state_dir / PID_NAME, json.dumps(record).encode())


def _remove_pid_file(state_dir: Path) -> None:
    path = state_dir / PID_NAME
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (FileNotFoundError, json.JSONDecodeError):
        pass


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


IDLE_CONNECTION_SECONDS = 120  # > Go's http.Transport IdleConnTimeout (90 s)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Snapshots hold KMS key material and every object: for this user only, whoever
    # started the server.
    write_privately(args.state_dir)
    # Read by moto when the IAM backend is created; the role module can attach
    # AWS managed policies (opt-in) and the provider validates their ARNs.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    os.environ["MOTO_PORT"] = str(args.port)

    from cheroot.ssl.builtin import BuiltinSSLAdapter
    from cheroot.wsgi import Server
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from pipelines.core.aws import read_emulator_credentials
    from pipelines.emulator.compat import RequestConditionsMiddleware, apply_patches
    from pipelines.emulator.durability import DurableMiddleware, DurableState, SnapshotRejected
    from pipelines.emulator.events_delivery import trust_service_events
    from pipelines.emulator.signatures import SignatureCheck
    from pipelines.events.publish import service_event_key

    if not args.credentials.is_file():
        print(f"no credentials file {args.credentials}: refusing to serve", file=sys.stderr)
        sys.exit(2)
    credentials = read_emulator_credentials(args.credentials)

    state_dir: Path | None = args.state_dir
    lock = take_lock(state_dir) if state_dir is not None else None
    if state_dir is not None and lock is None:
        print(f"another emulator already serves {state_dir}", file=sys.stderr)
        sys.exit(EXIT_LOCKED)

    apply_patches()
    # The project's emitters sign the aws.* events they send in AWS services' place.
    trust_service_events(service_event_key(credentials))
    app = RequestConditionsMiddleware(DomainDispatcherApplication(create_backend_app))
    durable: DurableState | None = None
    restored = False
    recovered: list[str] = []
    if state_dir is not None:
        try:
            durable = DurableState(state_dir / DATA_NAME)
        except SnapshotRejected as problem:
            # Whoever could change the key could make the server run any code.
            print(f"refusing to serve: {problem}", file=sys.stderr)
            sys.exit(1)
        report = durable.restore()
        restored = bool(report.services)
        recovered = list(report.notes)
        for note in recovered:
            print(note, flush=True)
        print(
            f"restored {', '.join(report.services) or 'nothing'} in {report.seconds:.2f} s",
            flush=True,
        )
        durable.start()
        app = DurableMiddleware(app, durable)
    # Outermost: a refused request never reaches moto nor takes the durable state's lock.
    app = SignatureCheck(app, credentials, log=lambda line: print(line, flush=True))
    server = Server((LOOPBACK, args.port), app, numthreads=args.threads)
    # cheroot closes a kept-alive connection after `timeout` idle seconds (10 by default).
    # Terraform's provider (Go) keeps idle connections 90 s and reuses one at the moment
    # the server closes it: "use of closed network connection" in a POST it won't retry.
    # Closing later than the client does avoids the race.
    server.timeout = IDLE_CONNECTION_SECONDS
    adapter = BuiltinSSLAdapter(args.ssl_cert, args.ssl_key)
    # The bucket policy denies TLS < 1.2; the server never offers it either.
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    server.ssl_adapter = adapter
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    try:
        server.prepare()  # binds; a taken port raises here, before the pid file is written
        if state_dir is not None:
            _write_pid_file(state_dir, args.port, restored, recovered)
        server.serve()
    finally:
        server.stop()
        if durable is not None:
            durable.close()
        if state_dir is not None:
            _remove_pid_file(state_dir)


if __name__ == "__main__":
    main()
