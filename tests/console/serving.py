"""A real console server in a thread of the test process, on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
import uvicorn

from pipelines.console import app
from pipelines.console.source import Source


@dataclass
class Running:
    base: str
    port: int
    keys: app.Secrets

    def session(self) -> requests.Session:
        """A browser-like session that opened the printed URL (so holds the cookie)."""
        session = requests.Session()
        opened = session.get(app.url(self.port, self.keys))
        opened.raise_for_status()
        return session


@contextmanager
def console_server(source: Source) -> Iterator[Running]:
    sock = app.bind(0)
    port = sock.getsockname()[1]
    keys = app.Secrets()
    config = uvicorn.Config(app.create_app(source, keys, port), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield Running(f"http://127.0.0.1:{port}", port, keys)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
