"""Entrypoint of the emulator process: moto's server with the compat layer applied.

Run as ``python -m pipelines.emulator.server --port N --ssl-cert C --ssl-key K``.
It always binds 127.0.0.1: the emulator accepts any credentials, so it must never
be reachable from another machine.
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
    return parser.parse_args(argv)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # The bucket policy denies TLS < 1.2; the server never offers it either.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Read by moto when the IAM backend is created; the role module can attach
    # AWS managed policies (opt-in) and the provider validates their ARNs.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    os.environ["MOTO_PORT"] = str(args.port)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    from pipelines.emulator.compat import (
        RequestConditionsMiddleware,
        TlsAwareRequestHandler,
        apply_patches,
    )

    apply_patches()
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        LOOPBACK,
        args.port,
        RequestConditionsMiddleware(app),
        threaded=True,
        ssl_context=tls_context(args.ssl_cert, args.ssl_key),
        request_handler=TlsAwareRequestHandler,
    )


if __name__ == "__main__":
    main()
