"""The AWS-hosts proxy: AWS's host names answered by the emulator, everything else refused,
the certificates it issues, and the in-process environment for third-party builds."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pipelines.config.settings import PROJECT_ROOT
from pipelines.core.errors import MlopsError
from pipelines.emulator.aws_proxy import AwsHostsProxy, allowed_target, local_aws_environment
from pipelines.emulator.tls import TlsFiles, ensure_certificates, host_certificate

BUCKET = "aws-proxy-tests"


# --- which tunnels it opens (no server) ----------------------------------------------------


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("s3.amazonaws.com:443", "s3.amazonaws.com"),
        ("my-bucket.s3.amazonaws.com:443", "my-bucket.s3.amazonaws.com"),
        (
            "my.dotted.bucket.s3.us-east-1.amazonaws.com:443",
            "my.dotted.bucket.s3.us-east-1.amazonaws.com",
        ),
        ("STS.AmazonAWS.com:443", "sts.amazonaws.com"),
        ("sagemaker.us-east-1.amazonaws.com", "sagemaker.us-east-1.amazonaws.com"),
        ("example.com:443", None),
        ("amazonaws.com:443", None),
        ("s3.amazonaws.com.example.com:443", None),
        ("s3.amazonaws.com:80", None),
        ("s3.amazonaws.com:8443", None),
        ("127.0.0.1:443", None),
        ("evil_host.amazonaws.com:443", None),
        ("-bad.amazonaws.com:443", None),
    ],
)
def test_only_aws_hosts_on_443_are_tunnelled(authority, host):
    assert allowed_target(authority) == host


# --- the certificates (no server) ----------------------------------------------------------


def _handshake(server_pem: Path, ca: Path, name: str) -> None:
    """A TLS handshake for ``name`` between a server using ``server_pem`` and a client that
    trusts only ``ca``; raises what the client raises."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server_pem)
    client_context = ssl.create_default_context(cafile=str(ca))
    left, right = socket.socketpair()

    def serve() -> None:
        try:
            with server_context.wrap_socket(left, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(right, server_hostname=name):
            pass
    finally:
        right.close()
        thread.join(5)


def test_host_certificates_verify_against_the_emulators_ca_and_stay_private(tmp_path):
    files = ensure_certificates(TlsFiles.in_dir(tmp_path))
    pem = host_certificate(files, "my-bucket.s3.amazonaws.com")
    _handshake(pem, files.ca_cert, "my-bucket.s3.amazonaws.com")
    for private in (pem, files.hosts_ca_key):
        assert oct(private.stat().st_mode & 0o777) == "0o600"
    # One per host, reused.
    assert host_certificate(files, "my-bucket.s3.amazonaws.com").read_bytes() == pem.read_bytes()
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(pem, files.ca_cert, "other.s3.amazonaws.com")
    with pytest.raises(ValueError, match=r"not a host name under amazonaws\.com"):
        host_certificate(files, "example.com")


def test_the_issuing_key_cannot_vouch_for_any_name_outside_amazonaws_com(tmp_path):
    """The issuing CA's key is on disk (the proxy needs it); its name constraint makes a
    certificate it signs for another name fail every client's verification."""
    files = ensure_certificates(TlsFiles.in_dir(tmp_path))
    issuer = x509.load_pem_x509_certificate(files.hosts_ca_cert.read_bytes())
    issuer_key = serialization.load_pem_private_key(files.hosts_ca_key.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("example.com")]), False)
        .sign(issuer_key, hashes.SHA256())
    )
    pem = tmp_path / "forged.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + forged.public_bytes(serialization.Encoding.PEM)
        + files.hosts_ca_cert.read_bytes()
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="permitted subtree violation"):
        _handshake(pem, files.ca_cert, "example.com")


def test_tls_folders_of_an_older_emulator_say_how_to_get_the_issuing_ca(tmp_path):
    files = ensure_certificates(TlsFiles.in_dir(tmp_path))
    files.hosts_ca_key.unlink()
    with pytest.raises(MlopsError, match="invoke emulator-down"):
        AwsHostsProxy(files, 1).start()
    # The next emulator start makes the whole set again.
    assert ensure_certificates(files).hosts_ca_key.is_file()


# --- against the emulator ------------------------------------------------------------------


@pytest.fixture
def proxy(emulator):
    instance, info = emulator
    lines: list[str] = []
    with AwsHostsProxy(instance.tls, info.port, log=lines.append) as running:
        running.lines = lines
        yield running


def _connect(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096)


@pytest.mark.parametrize(
    "request_line",
    [
        b"CONNECT example.com:443 HTTP/1.1",
        b"CONNECT s3.amazonaws.com:80 HTTP/1.1",
        b"GET http://s3.amazonaws.com/ HTTP/1.1",
    ],
)
def test_anything_but_a_tunnel_to_an_aws_host_is_refused_and_logged(proxy, request_line):
    answer = _connect(proxy.port, request_line + b"\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    assert b"nothing leaves the machine" in answer
    assert proxy.lines == [f"aws-hosts proxy: refused {request_line.decode()!r}"]


def test_it_listens_on_loopback_only(proxy):
    outside = [
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET and not address.address.startswith("127.")
    ]
    if not outside:
        pytest.skip("this machine has no IPv4 address but loopback")
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex((outside[0], proxy.port)) != 0


def test_every_kind_of_aws_host_reaches_moto(emulator_connection):
    """Virtual-hosted and path-style S3, a regional S3 host, STS and SageMaker: moto routes
    each by the Host header the client sent, and the emulator checks the signature made
    for that host."""
    admin = emulator_connection.client("s3")
    admin.create_bucket(Bucket=BUCKET)
    admin.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"a,b\n1,2\n")
    with local_aws_environment(emulator_connection):
        session = boto3.Session(region_name="us-east-1")
        virtual = session.client("s3", config=Config(s3={"addressing_style": "virtual"}))
        path = session.client("s3", config=Config(s3={"addressing_style": "path"}))
        regional = session.client("s3", endpoint_url="https://s3.us-east-1.amazonaws.com")
        assert virtual.get_object(Bucket=BUCKET, Key="in/data.csv")["Body"].read() == b"a,b\n1,2\n"
        virtual.put_object(Bucket=BUCKET, Key="out/virtual", Body=b"v")
        path.put_object(Bucket=BUCKET, Key="out/path", Body=b"p")
        regional.put_object(Bucket=BUCKET, Key="out/regional", Body=b"r")
        account = session.client("sts").get_caller_identity()["Account"]
        groups = session.client("sagemaker").list_model_package_groups()
    assert account == "123456789012"
    assert "ModelPackageGroupSummaryList" in groups
    for key, body in (("out/virtual", b"v"), ("out/path", b"p"), ("out/regional", b"r")):
        assert admin.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body


def test_a_build_sees_the_emulator_inside_and_its_own_environment_after(
    emulator_connection, monkeypatch
):
    monkeypatch.setenv("AWS_PROFILE", "someones-real-profile")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://somewhere.example")
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    before = dict(os.environ)
    emulator_connection.client("s3").create_bucket(Bucket=BUCKET)
    with local_aws_environment(emulator_connection):
        names = [
            b["Name"]
            for b in boto3.Session(region_name="us-east-1").client("s3").list_buckets()["Buckets"]
        ]
        assert "AWS_PROFILE" not in os.environ
    assert BUCKET in names
    assert dict(os.environ) == before

    with (
        pytest.raises(RuntimeError, match="the build failed"),
        local_aws_environment(emulator_connection),
    ):
        raise RuntimeError("the build failed")
    assert dict(os.environ) == before


def test_the_proxy_ends_with_the_process_that_started_it(emulator, tmp_path):
    """It is a thread of its starter: when that process is killed (SIGKILL, no clean-up
    at all), nothing is left listening."""
    instance, info = emulator
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from pipelines.emulator.aws_proxy import AwsHostsProxy\n"
        "from pipelines.emulator.tls import TlsFiles\n"
        "proxy = AwsHostsProxy(TlsFiles.in_dir(Path(sys.argv[1])), int(sys.argv[2])).start()\n"
        "print(proxy.port, flush=True)\n"
        "time.sleep(600)\n"
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", script, str(instance.tls.ca_cert.parent), str(info.port)],
        stdout=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        text=True,
    )
    try:
        port = int(starter.stdout.readline())
        answer = _connect(port, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 403")
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait(10)
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))
