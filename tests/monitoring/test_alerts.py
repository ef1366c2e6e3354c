"""The alert webhook cannot be led past its address check (issue 27, item 8): real local
HTTP servers that redirect, a proxy the variables point at, and a host name whose second
resolution would point elsewhere."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.core.errors import MlopsError
from pipelines.monitoring import alerts


class Recorder(BaseHTTPRequestHandler):
    """Records each request; answers with the server's ``reply`` (status, headers)."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append(  # type: ignore[attr-defined]
            (self.command, self.path, self.headers.get("Host"), self.rfile.read(length))
        )
        status, headers = self.server.reply  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve() -> Iterator:
    started = []

    def start(status: int = 200, headers: dict[str, str] | None = None) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.seen = []  # type: ignore[attr-defined]
        server.reply = (status, headers or {})  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_a_redirect_is_not_followed_and_is_a_failure_naming_its_target(serve):
    target = serve()
    redirecting = serve(302, {"Location": f"http://127.0.0.1:{target.server_port}/elsewhere"})
    (result,) = alerts.call_hooks(
        {"violations": [1]}, webhook=f"http://127.0.0.1:{redirecting.server_port}/hook"
    )
    assert not result.ok
    assert "HTTP 302: redirects are not followed" in result.detail
    assert f"127.0.0.1:{target.server_port}/elsewhere" in result.detail
    assert [seen[:2] for seen in redirecting.seen] == [("POST", "/hook")]
    assert target.seen == []


def test_a_redirect_to_the_metadata_address_reaches_nothing(serve):
    redirecting = serve(307, {"Location": "http://169.254.169.254/latest/meta-data/"})
    (result,) = alerts.call_hooks({}, webhook=f"http://127.0.0.1:{redirecting.server_port}/")
    assert not result.ok
    assert "169.254.169.254" in result.detail


def test_proxy_variables_are_not_read(serve, monkeypatch):
    receiver = serve()
    proxy = serve()
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    (result,) = alerts.call_hooks(
        {"violations": [2]}, webhook=f"http://127.0.0.1:{receiver.server_port}/x?a=1"
    )
    assert result.ok, result.detail
    assert proxy.seen == []
    ((method, path, _, body),) = receiver.seen
    assert (method, path, json.loads(body)) == ("POST", "/x?a=1", {"violations": [2]})


def test_the_post_goes_to_the_address_that_was_checked(serve, monkeypatch):
    """DNS rebinding: the name resolves to loopback when checked and to the metadata
    address afterwards; the request still goes to the checked address, once resolved."""
    receiver = serve()
    real = socket.getaddrinfo
    answers = ["127.0.0.1", "169.254.169.254"]
    asked = []

    def rebinding(host, port, *args, **kwargs):
        if host != "hook.example":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    (result,) = alerts.call_hooks({}, webhook=f"http://hook.example:{receiver.server_port}/a")
    assert result.ok, result.detail
    assert asked == ["hook.example"]
    assert receiver.seen[0][2] == f"hook.example:{receiver.server_port}"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://169.254.170.2/v2/credentials", "link-local"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://[::ffff:169.254.169.254]/x", "169.254.169.254"),
        ("http://0.0.0.0:8080/x", "reserved"),
        ("http://100.100.100.200/latest/meta-data/", "public address"),
        ("https://8.8.8.8/hook", "public address"),
    ],
)
def test_metadata_link_local_and_public_addresses_are_refused(url, why):
    with pytest.raises(MlopsError, match=why):
        alerts.check_webhook(url)


def test_private_networks_stay_allowed():
    hook = alerts.check_webhook("https://10.1.2.3/hooks/mlops?x=1")
    assert (hook.address, hook.port, hook.path) == ("10.1.2.3", 443, "/hooks/mlops?x=1")
