"""A local HTTPS proxy that answers AWS's host names with the emulator.

A job's script calls AWS itself with the boto3 of its image (AWS's template
preprocess does ``boto3.resource("s3").Bucket(b).download_file(...)``), and old
botocore releases (the XGBoost 1.7-1 image's 1.20.52) ignore ``AWS_ENDPOINT_URL``:
they connect to ``s3.amazonaws.com``, ``sts.amazonaws.com``... whatever the job
does. Every botocore honours ``HTTPS_PROXY`` and ``AWS_CA_BUNDLE``, so the job gets
both: its client asks this proxy for a tunnel (HTTP ``CONNECT``) to the AWS host,
the proxy answers the TLS handshake itself with a certificate for that host from the
emulator's CA (pipelines.emulator.tls.host_certificate), and passes the decrypted
bytes unchanged to the emulator over TLS. The ``Host`` header and the signature
stay as the client made them: moto routes by host (``bucket.s3.amazonaws.com`` is
virtual-hosted S3) and the emulator checks the signature against that host.

Only ``*.amazonaws.com:443`` is tunnelled, and only to the emulator: any other
request is answered 403 and logged, so nothing a proxy-aware client sends leaves the
machine. The proxy listens on 127.0.0.1 only, on a port the system picks, and runs
in a thread of the process that needs it (the executor's worker for a run, a build
for its duration): it cannot outlive that process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from pipelines.core.aws import AwsConnection, emulator_process_env
from pipelines.core.errors import MlopsError
from pipelines.core.processes import LOOPBACK
from pipelines.emulator.tls import AWS_DOMAIN, TlsFiles, host_certificate

# A DNS name under amazonaws.com (bucket names with dots included), lower case.
_AWS_HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+" + re.escape(AWS_DOMAIN) + r"\Z"
)
_HEAD_TIMEOUT = 30.0
# Read size and stream buffer limit (which also bounds a CONNECT request's head).
_CHUNK = 256 * 1024


class ProxyError(MlopsError):
    """The AWS-hosts proxy cannot start."""


def allowed_target(authority: str) -> str | None:
    """The host of a ``CONNECT`` authority (``host:port``) the proxy tunnels, or None."""
    host, _, port = authority.rpartition(":")
    if not host:
        host, port = authority, "443"
    host = host.lower()
    if port != "443" or len(host) > 253 or not _AWS_HOST.match(host):
        return None
    return host


class AwsHostsProxy:
    """The proxy, serving in a daemon thread from :meth:`start` to :meth:`stop`.

    ``tls``: the emulator's TLS folder (its CA and the AWS-hosts issuing CA);
    ``upstream_port``: the emulator's port on 127.0.0.1; ``log`` receives a line per
    refusal or failed tunnel.
    """

    def __init__(
        self, tls: TlsFiles, upstream_port: int, *, log: Callable[[str], None] = print
    ) -> None:
        self.tls = tls
        self.upstream_port = upstream_port
        self.log = log
        self.port: int | None = None
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._upstream = ssl.create_default_context(cafile=str(tls.ca_cert))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @classmethod
    def for_connection(
        cls, connection: AwsConnection, *, log: Callable[[str], None] = print
    ) -> AwsHostsProxy:
        """The proxy to the emulator ``connection`` reaches (its CA names its TLS folder)."""
        if connection.endpoint_url is None or connection.ca_bundle is None:
            raise ProxyError("The AWS-hosts proxy needs the emulator's connection.")
        port = connection.endpoint_url.rstrip("/").rsplit(":", 1)[-1]
        if not port.isdigit():
            raise ProxyError(f"The emulator endpoint {connection.endpoint_url} names no port.")
        return cls(TlsFiles.in_dir(connection.ca_bundle.parent), int(port), log=log)

    @property
    def url(self) -> str:
        if self.port is None:
            raise ProxyError("The AWS-hosts proxy is not running.")
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> AwsHostsProxy:
        if not (self.tls.hosts_ca_cert.is_file() and self.tls.hosts_ca_key.is_file()):
            host_certificate(self.tls, "s3.amazonaws.com")  # raises: how to fix it
        self._thread = threading.Thread(target=self._run, name="aws-hosts-proxy", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise ProxyError(f"The AWS-hosts proxy could not start: {self._failure}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.port = None

    def __enter__(self) -> AwsHostsProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the server thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to start(), which re-raises it
            self._failure = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        tunnels: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tunnels.add(task)
            try:
                await self._handle(reader, writer)
            except asyncio.CancelledError:
                # The proxy is stopping. Ending normally: asyncio's stream callback would
                # report a cancelled connection task as an error.
                pass
            finally:
                tunnels.discard(task)

        server = await asyncio.start_server(accept, LOOPBACK, 0, limit=_CHUNK)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for task in list(tunnels):
                task.cancel()
            await asyncio.gather(*tunnels, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, _, rest = request_line.partition(" ")
            authority = rest.rpartition(" ")[0]
            host = allowed_target(authority) if method == "CONNECT" else None
            if host is None:
                self.log(f"aws-hosts proxy: refused {request_line[:200]!r}")
                await _answer(writer, 403, f"refused {request_line[:200]}: {_ONLY_AWS}")
                return
            try:
                context = self._context_for(host)
                up_reader, upstream = await asyncio.open_connection(
                    LOOPBACK,
                    self.upstream_port,
                    ssl=self._upstream,
                    server_hostname=LOOPBACK,
                    limit=_CHUNK,
                )
            except (OSError, ssl.SSLError, MlopsError) as error:
                self.log(f"aws-hosts proxy: no tunnel to {host}: {error}")
                await _answer(writer, 502, f"the local AWS emulator is not reachable: {error}")
                return
            await _answer(writer, 200, None)
            await writer.start_tls(context)
            await _relay(reader, writer, up_reader, upstream)
        except (ConnectionError, ssl.SSLError) as error:
            self.log(f"aws-hosts proxy: tunnel ended: {error}")
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()

    def _context_for(self, host: str) -> ssl.SSLContext:
        context = self._contexts.get(host)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            # As the emulator (and the bucket policy's aws:SecureTransport): TLS 1.2 or newer.
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(host_certificate(self.tls, host))
            self._contexts[host] = context
        return context


_ONLY_AWS = (
    "this proxy tunnels only to *.amazonaws.com:443, and only to the local AWS emulator "
    "(nothing leaves the machine)"
)
_REASONS = {200: "Connection established", 403: "Forbidden", 502: "Bad Gateway"}


async def _answer(writer: asyncio.StreamWriter, status: int, text: str | None) -> None:
    head = f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
    if text is None:
        writer.write(f"{head}\r\n".encode())
    else:
        body = f"{text}\n".encode()
        writer.write(
            f"{head}Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
    await writer.drain()


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Bytes both ways until either side closes (TLS cannot half-close, and HTTP over
    one connection never needs it)."""

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()

    directions = [
        asyncio.create_task(pipe(client_reader, upstream_writer)),
        asyncio.create_task(pipe(upstream_reader, client_writer)),
    ]
    try:
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in directions:
            task.cancel()
        results = await asyncio.gather(*directions, return_exceptions=True)
    for result in results:
        if isinstance(result, (ConnectionError, ssl.SSLError)):
            raise result


# --- what a process needs to use it -------------------------------------------------------


def proxied_aws_environment(
    base: Mapping[str, str], *, proxy_url: str, ca_bundle: Path, region: str
) -> dict[str, str]:
    """``base`` plus what makes any boto3 reach the emulator through the proxy: the
    emulator's key and region, its CA as the only trusted one, AWS's hosts through the
    proxy (loopback direct), no endpoint override and none of the user's AWS settings."""
    env = emulator_process_env(base, ca_bundle=ca_bundle, region=region)
    loopback = f"{LOOPBACK},localhost"
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        # http:// too: a plain-HTTP request to any host is refused, not sent.
        env[name] = proxy_url
    env["NO_PROXY"] = env["no_proxy"] = loopback
    return env


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def local_aws_environment(connection: AwsConnection) -> Iterator[str]:
    """While inside, this process's plain ``boto3.Session(region_name=...)`` (and the
    SageMaker SDK sessions made from it, their STS endpoints included) reach the
    emulator of ``connection`` with its key; the environment is restored on leaving,
    error or not. Yields the proxy's URL.

    For building a third-party ``get_pipeline(...)`` module on the local target: run the
    build and everything that uses the sessions it made (``definition()``, uploads) inside.
    Clients made inside keep the proxy's address, which stops working on leaving.
    ``os.environ`` is the process's: no other thread should make AWS clients meanwhile.
    """
    if connection.ca_bundle is None:
        raise ProxyError("local_aws_environment needs the emulator's connection.")
    with AwsHostsProxy.for_connection(connection, log=_to_stderr) as proxy:
        wanted = proxied_aws_environment(
            os.environ,
            proxy_url=proxy.url,
            ca_bundle=connection.ca_bundle,
            region=connection.region,
        )
        removed = set(os.environ) - set(wanted)
        changed = {name for name, value in wanted.items() if os.environ.get(name) != value}
        saved = {name: os.environ.get(name) for name in removed | changed}
        try:
            for name in removed:
                del os.environ[name]
            os.environ.update(wanted)
            yield proxy.url
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
