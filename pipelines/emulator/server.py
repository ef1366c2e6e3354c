"""Entrypoint of the emulator process: moto's WSGI app, with the compat layer applied,
served over HTTPS by cheroot.

Run as ``python -m pipelines.emulator.server --port N --ssl-cert C --ssl-key K``.
It always binds 127.0.0.1: the emulator accepts any credentials, so it must never
be reachable from another machine. cheroot rather than werkzeug's development
server because werkzeug closes the connection after every response, and a new TLS
handshake per request tripled the latency of every AWS call a run makes.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
from types import FrameType

LOOPBACK = "127.0.0.1"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pipelines.emulator.server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ssl-cert", required=True)
    parser.add_argument("--ssl-key", required=True)
    parser.add_argument("--threads", type=int, default=16)
    return parser.parse_args(argv)


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Read by moto when the IAM backend is created; the role module can attach
    # AWS managed policies (opt-in) and the provider validates their ARNs.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    os.environ["MOTO_PORT"] = str(args.port)

    from cheroot.ssl.builtin import BuiltinSSLAdapter
    from cheroot.wsgi import Server
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from pipelines.emulator.compat import RequestConditionsMiddleware, apply_patches

    apply_patches()
    app = RequestConditionsMiddleware(DomainDispatcherApplication(create_backend_app))
    server = Server((LOOPBACK, args.port), app, numthreads=args.threads)
    adapter = BuiltinSSLAdapter(args.ssl_cert, args.ssl_key)
    # The bucket policy denies TLS < 1.2; the server never offers it either.
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    server.ssl_adapter = adapter
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    try:
        server.start()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
