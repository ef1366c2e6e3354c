"""The emulator's lifecycle: start, find, health-check, refuse a taken port, stop."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import urllib.request

import psutil
import pytest

from pipelines.emulator import Emulator, EmulatorError
from pipelines.emulator.signatures import HEALTH_PATH
from pipelines.emulator.tls import TlsFiles, ensure_certificates
from tests.support import free_port


@pytest.fixture
def emulator(tmp_path):
    instance = Emulator(tmp_path / "emulator", free_port())
    yield instance
    instance.stop()


def test_start_is_idempotent_and_stop_ends_the_process(emulator):
    info, started = emulator.start()
    assert started is True
    assert json.loads(emulator.pid_file.read_text())["pid"] == info.pid
    assert emulator.status().running

    again, started_again = emulator.start()
    assert started_again is False
    assert again.pid == info.pid

    assert emulator.stop() is True
    assert not emulator.status().running
    assert not emulator.pid_file.exists()
    assert emulator.stop() is False


def test_serves_only_https_on_loopback_with_the_project_ca(emulator):
    info, _ = emulator.start()
    context = ssl.create_default_context(cafile=str(emulator.tls.ca_cert))
    with urllib.request.urlopen(f"{info.endpoint}{HEALTH_PATH}", context=context) as response:
        assert response.status == 200
    # The system trust store does not know the emulator's CA.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(
            f"{info.endpoint}{HEALTH_PATH}", context=ssl.create_default_context()
        )
    listeners = [
        conn.laddr.ip
        for conn in psutil.Process(info.pid).net_connections(kind="tcp")
        if conn.status == "LISTEN"
    ]
    assert listeners == ["127.0.0.1"]


def test_a_port_taken_by_another_program_gives_a_clear_error(emulator):
    with socket.socket() as other:
        other.bind(("127.0.0.1", emulator.port))
        other.listen()
        with pytest.raises(EmulatorError, match=f"Port {emulator.port} .* already in use"):
            emulator.start()
    assert not emulator.pid_file.exists()


def test_a_stale_pid_file_is_reported_and_replaced(emulator):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    emulator.state_dir.mkdir(parents=True)
    emulator.pid_file.write_text(
        json.dumps({"pid": dead.pid, "port": emulator.port, "started_at": 0.0})
    )
    status = emulator.status()
    assert not status.running
    assert "stale" in status.detail

    info, started = emulator.start()
    assert started is True
    assert info.pid != dead.pid


def test_require_running_tells_the_user_what_to_do(emulator):
    with pytest.raises(EmulatorError, match="invoke emulator-up"):
        emulator.require_running()


def test_certificates_are_reused_until_close_to_expiry(tmp_path):
    files = ensure_certificates(TlsFiles.in_dir(tmp_path))
    first = files.server_cert.read_bytes()
    assert ensure_certificates(files).server_cert.read_bytes() == first
    assert oct(files.server_key.stat().st_mode & 0o777) == "0o600"


def test_a_kept_alive_connection_outlives_a_short_idle_time(emulator):
    """Terraform's provider reuses an idle connection for up to 90 s; the emulator closed
    them after 10 s, and a POST on a connection closed under it failed an apply ("use of
    closed network connection"). A connection idle for longer than 10 s still works."""
    import http.client
    import time

    info, _ = emulator.start()
    context = ssl.create_default_context(cafile=str(emulator.tls.ca_cert))
    connection = http.client.HTTPSConnection("127.0.0.1", info.port, context=context, timeout=5)
    connection.request("GET", "/mlops-emulator/health")
    first = connection.getresponse()
    first.read()
    assert first.status == 200
    local_port = connection.sock.getsockname()[1]
    time.sleep(11)
    connection.request("GET", "/mlops-emulator/health")
    second = connection.getresponse()
    second.read()
    assert second.status == 200
    assert connection.sock.getsockname()[1] == local_port  # the same connection, not a new one
    connection.close()
