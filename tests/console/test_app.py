"""The console's guards and its export, through a real server on a loopback port: only its
own Host, only with this start's token, forms only with the CSRF token; every page carries
a policy that allows no script and no outside resource."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from pipelines.config.deployment import Deployment
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.console import app
from pipelines.console.export import export
from pipelines.console.links import Links, file_name
from pipelines.console.source import Source
from pipelines.core.errors import MlopsError
from tests.console.serving import console_server
from tests.support import free_port

# A real console server (uvicorn) per test: the server tier, not the fast one.
pytestmark = pytest.mark.server


@pytest.fixture
def source(tmp_path) -> Source:
    settings = Settings.load(None, environ={"MLOPS_STATE_DIR": str(tmp_path / "state")})
    return Source(settings, Deployment.parse("local"))


def test_the_printed_url_opens_the_console_and_sets_a_private_cookie(source):
    with console_server(source) as running:
        session = requests.Session()
        opened = session.get(app.url(running.port, running.keys), allow_redirects=False)
        assert opened.status_code == 303
        assert opened.headers["location"] == "/"  # the token leaves the address bar
        cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        page = session.get(running.base + "/")
        assert page.status_code == 200
        assert "No executions yet" in page.text


def test_without_the_token_or_with_another_one_nothing_is_shown(source):
    with console_server(source) as running:
        assert requests.get(running.base + "/", timeout=10).status_code == 403
        wrong = requests.get(running.base + "/?token=guessed", allow_redirects=False, timeout=10)
        assert wrong.status_code == 403
        cookie = {app.cookie_name(running.port): "guessed"}
        assert requests.get(running.base + "/", cookies=cookie, timeout=10).status_code == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "[::1]"])
def test_a_foreign_host_is_refused_even_with_the_token(source, host):
    """DNS rebinding: a page elsewhere that resolves its own name to 127.0.0.1."""
    with console_server(source) as running:
        session = running.session()
        refused = session.get(running.base + "/", headers={"Host": host.format(port=running.port)})
        assert refused.status_code == 400
        assert "loopback" in refused.text


def test_every_page_forbids_scripts_and_outside_resources(source):
    with console_server(source) as running:
        page = running.session().get(running.base + "/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


def test_a_busy_port_is_a_sentence(source):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(MlopsError, match=f"Port {port} on 127.0.0.1 is in use"):
            app.bind(port)


def test_the_server_listens_on_loopback_only(source):
    sock = app.bind(0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_links_name_server_paths_and_export_files():
    assert Links().url("run", execution="abc") == "/runs/abc"
    assert Links(exported=True).url("run", execution="abc") == "run-abc.html"
    assert Links(exported=True).url("runs") == "index.html"
    assert Links().url("run", execution="a/../b") == "/runs/a%2F..%2Fb"
    with pytest.raises(ValueError, match="cannot name a page"):
        file_name("run", execution="../../etc/passwd")


def test_the_export_writes_pages_that_link_to_each_other(source, tmp_path):
    written = export(source, tmp_path / "site")
    names = {path.name for path in written}
    assert "index.html" in names
    index = (tmp_path / "site" / "index.html").read_text()
    assert "No executions yet" in index
    assert 'href="/' not in index  # every link relative, so the folder opens from disk


@pytest.mark.server  # the task in its own process, as a user starts it
def test_invoke_ui_prints_its_url_serves_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {**os.environ, "MLOPS_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "300"}
    task = subprocess.Popen(
        [sys.executable, "-m", "invoke", "ui", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = task.stdout.readline()
        printed = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", line)
        assert printed, line + task.stderr.read() if task.poll() is not None else line
        assert int(printed.group(1)) == port
        session = requests.Session()
        deadline = time.monotonic() + 30
        while True:
            try:
                page = session.get(printed.group(0), timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the console never answered"
                time.sleep(0.1)
        assert page.status_code == 200
        assert "Runs" in page.text
    finally:
        task.send_signal(signal.SIGINT)
        assert task.wait(timeout=30) == 0
    with socket.socket() as probe:  # nothing left listening
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    app.bind(port).close()  # and the next `invoke ui` can take the port again
