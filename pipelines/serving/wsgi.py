"""What the endpoint's two servers share: serving until signalled, and JSON errors."""

from __future__ import annotations

import json
import signal
from types import FrameType

from cheroot.wsgi import Server

LOOPBACK = "127.0.0.1"


def json_error(message: str) -> bytes:
    return json.dumps({"error": message}).encode("utf-8")


def _exit(signum: int, frame: FrameType | None) -> None:
    # Raised in the serving thread, so serve() returns and the server is stopped cleanly.
    raise SystemExit(0)


def serve_until_signalled(server: Server) -> None:
    """Serve a prepared server until SIGTERM or SIGINT, then stop it: the socket
    closes at once and the requests in flight finish."""
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    try:
        server.serve()
    except SystemExit:
        pass
    finally:
        server.stop()
