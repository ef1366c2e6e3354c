"""One model server worker: HTTP/1.1 on asyncio with httptools' parser, one event loop per process.

A worker serves two listening sockets it inherited from its model server:
- the endpoint's public socket (owned by the endpoint's front process and shared by every
  worker of every version), accepted from only while the endpoint's state names this
  server as the primary; the kernel hands each new connection to one waiting worker, so a
  request takes a single hop from the client to the model;
- the server's private Unix socket (0600, this user only), for health checks and for the
  requests another server's worker forwards here during a canary or linear shift.

On the public socket each invocation is routed by the shift's weights (:mod:`router`): a
request drawn for another version is forwarded to that server's socket over a kept
connection, and served here if that server is gone. Whichever worker runs the model
captures the exchange (:mod:`capture`) after the response is written, so no door to a
model skips the data capture.

Every connection is held to limits, as the container's nginx holds its own: a request line
of at most 8 KiB (414), at most 100 header fields of 8 KiB and 32 KiB in all (431), a
``Host`` that names this machine's loopback (421 otherwise: a page elsewhere cannot reach
the endpoint through DNS rebinding), the head within :data:`HEADER_TIMEOUT_SECONDS` and the
body within :data:`BODY_TIMEOUT_SECONDS` (408), a kept-alive connection closed after
:data:`KEEPALIVE_SECONDS` idle.

When the endpoint switches to another server, or on SIGTERM, the worker stops accepting
and drains: each kept-alive connection gets ``Connection: close`` on its next response,
idle ones are closed after a grace period, and the worker exits when none remain. If its
model server dies, the worker serves on until the endpoint's front has started another
and named it in the state, then drains the same way. The prediction runs on the event
loop, as in a synchronous server: a worker process is one request at a time, and there
is one worker per core.

Runs in the model's own runtime (Python 3.9 for the 1.2-1 image): standard library and
httptools only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import httptools

from pipelines.serving.capture import CaptureSpool
from pipelines.serving.invocations import (
    MAX_PAYLOAD_BYTES,
    VERSION_HEADER,
    InferenceService,
    Request,
    Response,
    json_error,
    serialize,
    too_large,
)
from pipelines.serving.router import RouteTable, process_alive

log = logging.getLogger("model_server")

LOOPBACK = "127.0.0.1"
TICK_SECONDS = 0.05
# A draining worker closes a kept-alive connection once it has been idle this long: a
# busy client has sent its next request (and got "Connection: close") well before.
IDLE_GRACE_SECONDS = 1.0
# A connection that has not sent its first request yet gets longer: its client has just
# connected and is about to send, even on a loaded machine.
FRESH_GRACE_SECONDS = 5.0
# Connections taken per wake-up: small, so the workers sharing a socket share the load.
ACCEPT_BATCH = 16
STOP_TIMEOUT_SECONDS = 10.0
# Past this much refused body the connection is closed rather than read to the end.
DRAIN_BYTES = 64 * 1024 * 1024
# The container's nginx: large_client_header_buffers 4 8k; gunicorn: at most 100 fields.
MAX_URL_BYTES = 8 * 1024
MAX_FIELD_BYTES = 8 * 1024
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADER_FIELDS = 100
# httptools holds a header field until it is complete, so an endless one is cut off by
# counting what arrives before the head ends: at most the head plus one read of asyncio's
# transport (256 KiB), which may carry body bytes too.
_HEAD_GUARD_BYTES = MAX_HEAD_BYTES + 256 * 1024
HEADER_TIMEOUT_SECONDS = 10.0  # from the connection (or the request's first byte)
BODY_TIMEOUT_SECONDS = 30.0  # from the end of the head
KEEPALIVE_SECONDS = 60.0  # idle between requests on a kept connection
_SWEEP_SECONDS = 0.5
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_MAX_QUEUED = 16
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Refused(Exception):
    """Raised from a parser callback: answer ``response`` and close the connection."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _fields_too_large() -> Response:
    return json_error(
        431,
        f"the request's header fields are too large: at most {MAX_HEADER_FIELDS} fields of "
        f"{MAX_FIELD_BYTES:,} bytes, {MAX_HEAD_BYTES:,} bytes in all",
    )


def loopback_host(host: str, port: int | None) -> bool:
    """``host`` (a Host header) names this machine's loopback, with ``port`` if any."""
    name, _, given = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name:
        name, given = host, ""
    if name.lower() not in LOOPBACK_NAMES:
        return False
    return not given or (given.isdigit() and (port is None or int(given) == port))


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests in order and writes their responses in order."""

    def __init__(self, worker: Worker, public: bool) -> None:
        self.worker = worker
        self.public = public
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[tuple[asyncio.Future[Response], Request, bool]] = (
            collections.deque()
        )
        self.in_message = False
        self.in_body = False
        self.answered = 0
        self.idle_since = time.monotonic()
        self.phase_since = self.idle_since  # when the head (or the body) began
        self.head_bytes = 0
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.head_size = 0
        self.body: list[bytes] = []
        self.size = 0
        self.refused: Response | None = None

    # --- asyncio ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.worker.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.connections.discard(self)
        for future, _, _ in self.pending:
            future.cancel()
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.head_bytes += len(data)
            if self.head_bytes > _HEAD_GUARD_BYTES:
                self._fail(_fields_too_large())
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(json_error(400, "protocol upgrades are not supported"))
        except httptools.HttpParserError as error:
            # A callback's refusal surfaces as the parser's error, with it as the cause.
            cause = error.__cause__ or error.__context__
            if isinstance(cause, _Refused):
                self._fail(cause.response)
            else:
                self._fail(json_error(400, "malformed HTTP request"))

    # --- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_message = True
        self.phase_since = time.monotonic()
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            raise _Refused(
                json_error(414, f"the request URL is longer than {MAX_URL_BYTES:,} bytes")
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value)
        if (
            len(self.headers) >= MAX_HEADER_FIELDS
            or len(name) + len(value) > MAX_FIELD_BYTES
            or self.head_size > MAX_HEAD_BYTES
        ):
            raise _Refused(_fields_too_large())
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.in_body = True
        self.head_bytes = 0
        self.phase_since = time.monotonic()
        host = self.headers.get("host")
        if host is not None and not loopback_host(host, self.worker.public_port):
            raise _Refused(
                json_error(
                    421,
                    f"Host {host[:100]!r} is not this machine's loopback: the endpoint "
                    f"answers requests for {', '.join(LOOPBACK_NAMES)} only",
                )
            )
        limit = self.worker.max_payload_bytes
        declared = self.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            self.refused = too_large(int(declared), limit)
        if self.headers.get("expect", "").lower() == "100-continue" and self.transport:
            if self.refused is not None:
                # The client waits before sending the body: refuse now, and read no body.
                self._fail(self.refused)
                return
            self.transport.write(_CONTINUE)

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.refused is not None:
            # Read and drop what the client is still sending, so it gets the 413 rather
            # than a broken pipe; past DRAIN_BYTES the connection is simply closed.
            if self.size > DRAIN_BYTES:
                self._fail(self.refused)
            return
        if self.size > self.worker.max_payload_bytes:
            self.refused = too_large(None, self.worker.max_payload_bytes)
            self.body = []
            return
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.in_message = False
        self.in_body = False
        keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method().decode("latin-1")
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        request = Request(method, path, self.headers, b"".join(self.body))
        if self.refused is not None:
            self.reply(request, self.refused, keep_alive)
        else:
            self.worker.handle(self, request, keep_alive)
        self._reset()

    # --- responses -----------------------------------------------------------------------------

    def reply(self, request: Request, response: Response, keep_alive: bool) -> None:
        """Answer now, or after the answers still pending on this connection."""
        if self.pending:
            future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
            future.set_result(response)
            self.defer(future, request, keep_alive)
            return
        self._write(request, response, keep_alive)

    def defer(self, future: asyncio.Future[Response], request: Request, keep_alive: bool) -> None:
        self.pending.append((future, request, keep_alive))
        future.add_done_callback(self._flush)
        if len(self.pending) >= _MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()  # a client pipelining far ahead waits

    def _flush(self, _: object = None) -> None:
        while self.pending and self.pending[0][0].done():
            future, request, keep_alive = self.pending.popleft()
            if future.cancelled():
                return
            self._write(request, future.result(), keep_alive)
        if self.transport is not None and len(self.pending) < _MAX_QUEUED:
            self.transport.resume_reading()

    def _write(self, request: Request, response: Response, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        keep_alive = keep_alive and not self.worker.draining
        self.transport.write(serialize(response, keep_alive))
        self.answered += 1
        self.idle_since = time.monotonic()
        if not keep_alive:
            self.transport.close()
        if not response.forwarded:  # the server that ran the model captures it
            self.worker.captured(request, response)

    def _fail(self, response: Response) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(serialize(response, keep_alive=False))
            self.transport.close()

    def idle_too_long(self, now: float) -> bool:
        """Idle past its grace: safe to close while draining."""
        if self.in_message or self.pending:
            return False
        grace = IDLE_GRACE_SECONDS if self.answered else FRESH_GRACE_SECONDS
        return now - self.idle_since > grace

    def expire(self, now: float) -> None:
        """Close the connection if it overstayed: a head or a body too slow (408), or
        idle too long between requests."""
        if self.pending or self.transport is None or self.transport.is_closing():
            return
        if self.in_body:
            if now - self.phase_since > BODY_TIMEOUT_SECONDS:
                self._fail(
                    json_error(408, f"the request body took over {BODY_TIMEOUT_SECONDS:g} s")
                )
        elif self.in_message or not self.answered:
            # A head under way, or a fresh connection yet to send one.
            if now - max(self.phase_since, self.idle_since) > HEADER_TIMEOUT_SECONDS:
                self._fail(
                    json_error(408, f"the request head took over {HEADER_TIMEOUT_SECONDS:g} s")
                )
        elif now - self.idle_since > KEEPALIVE_SECONDS:
            self.transport.close()


class Acceptor:
    """Takes connections from a listening socket while started, each into a protocol.

    asyncio's own server is not used: closing it to stop accepting drops, without a word,
    the connections it accepted in that same loop turn (their transports can no longer
    attach to it), and their clients see a reset. Stopping an acceptor only stops it
    taking new ones; those already taken are served.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
    ) -> None:
        self.loop, self.sock, self.factory = loop, sock, factory
        self.sock.setblocking(False)
        self.started = False
        # Accepted connections whose transport is being made: not yet in the worker's set.
        self.handshakes: set[asyncio.Future[Any]] = set()

    def start(self) -> None:
        if not self.started:
            self.loop.add_reader(self.sock.fileno(), self._ready)
            self.started = True

    def stop(self) -> None:
        if self.started:
            self.loop.remove_reader(self.sock.fileno())
            self.started = False

    def _resume(self) -> None:
        if self.started:
            self.loop.add_reader(self.sock.fileno(), self._ready)

    def _ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # another worker took it, or none is left
            except ConnectionAbortedError:
                continue  # the client gave up while it waited
            except OSError as error:
                if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # Out of descriptors: pause, so the loop does not spin on a full queue.
                log.warning("cannot accept a connection (%s); pausing for 1 s", error)
                self.loop.remove_reader(self.sock.fileno())
                self.loop.call_later(1.0, self._resume)
                return
            connection.setblocking(False)
            handshake = asyncio.ensure_future(
                self.loop.connect_accepted_socket(self.factory, connection)
            )
            self.handshakes.add(handshake)
            handshake.add_done_callback(self._made)

    def _made(self, handshake: asyncio.Future[Any]) -> None:
        self.handshakes.discard(handshake)
        if not handshake.cancelled() and handshake.exception() is not None:
            log.info("an accepted connection failed before serving: %s", handshake.exception())


class Upstream:
    """A kept connection to another model server's private port, for forwarded requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._reset()

    def _reset(self) -> None:
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def on_message_complete(self) -> None:
        self.complete = True

    async def exchange(self, request: Request) -> tuple[Response, bool]:
        self._reset()
        head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {LOOPBACK}"]
        head += [
            f"{name}: {value}"
            for name, value in request.headers.items()
            if name in ("content-type", "accept", "x-amzn-sagemaker-inference-id")
        ]
        head.append(f"Content-Length: {len(request.body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
        parser = httptools.HttpResponseParser(self)
        while not self.complete:
            data = await self.reader.read(1 << 16)
            if not data:
                raise ConnectionResetError("the other model server closed the connection")
            parser.feed_data(data)
        headers = {
            VERSION_HEADER: self.headers.get(VERSION_HEADER.lower(), ""),
        }
        response = Response(
            parser.get_status_code(),
            b"".join(self.chunks),
            self.headers.get("content-type", "application/json"),
            headers,
            forwarded=True,
        )
        return response, parser.should_keep_alive()

    def close(self) -> None:
        self.writer.close()


class Forwarder:
    """Kept connections to the other servers of a traffic shift, reused across requests."""

    def __init__(self) -> None:
        self.idle: dict[str, list[Upstream]] = {}

    async def send(self, address: str, request: Request) -> Response:
        pooled = self.idle.setdefault(address, [])
        while True:
            reused = bool(pooled)
            upstream = pooled.pop() if pooled else Upstream(*await self._open(address))
            try:
                response, keep_alive = await upstream.exchange(request)
            except (OSError, httptools.HttpParserError):
                upstream.close()
                if reused:
                    continue  # a kept connection the other side closed: try a fresh one
                raise
            if keep_alive:
                pooled.append(upstream)
            else:
                upstream.close()
            return response

    @staticmethod
    async def _open(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_unix_connection(address)

    def close(self) -> None:
        for pooled in self.idle.values():
            for upstream in pooled:
                upstream.close()
        self.idle.clear()


class Worker:
    def __init__(
        self,
        service: InferenceService,
        routes: RouteTable,
        public: socket.socket,
        private: socket.socket,
        *,
        spool: CaptureSpool | None = None,
        parent_pid: int | None = None,
        front_pid: int | None = None,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.service = service
        self.routes = routes
        self.public_socket = public
        self.private_socket = private
        self.spool = spool
        self.parent_pid = parent_pid
        self.front_pid = front_pid
        self.max_payload_bytes = max_payload_bytes
        self.draw = draw
        self.public_port: int | None = (
            public.getsockname()[1] if public.family != socket.AF_UNIX else None
        )
        self.connections: set[HttpConnection] = set()
        self.forwarder = Forwarder()
        self._unreachable: set[str] = set()
        self._swept = 0.0
        self.draining = False
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._public: Acceptor | None = None

    # --- requests ------------------------------------------------------------------------------

    def handle(self, connection: HttpConnection, request: Request, keep_alive: bool) -> None:
        if connection.public and request.path == "/invocations" and request.method == "POST":
            address = self.routes.choose(self.draw())
            if address is not None and self.service.check(request) is None:
                future = asyncio.ensure_future(self._forwarded(address, request))
                connection.defer(future, request, keep_alive)
                return
        connection.reply(request, self.service.answer(request), keep_alive)

    async def _forwarded(self, address: str, request: Request) -> Response:
        try:
            response = await self.forwarder.send(address, request)
        except (OSError, httptools.HttpParserError) as error:
            # That server stopped (a canary that died, a switch just made): answer here.
            if address not in self._unreachable:
                log.warning("forwarding to %s failed (%s); answering here", address, error)
                self._unreachable.add(address)
            return self.service.answer(request)
        self._unreachable.discard(address)
        return response

    def captured(self, request: Request, response: Response) -> None:
        if self.spool is not None and request.path == "/invocations" and response.status == 200:
            self.spool.record(
                request.body,
                request.content_type,
                response.body,
                response.content_type,
                request.inference_id,
            )

    # --- lifecycle -----------------------------------------------------------------------------

    async def serve(self, handle_signals: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._stop.set)
        private = Acceptor(loop, self.private_socket, lambda: HttpConnection(self, public=False))
        private.start()
        public = Acceptor(loop, self.public_socket, lambda: HttpConnection(self, public=True))
        self._public = public
        orphaned = False
        while not self._stop.is_set():
            self.routes.refresh()
            if self.routes.primary and not public.started and not self.draining:
                public.start()
            elif public.started and not self.routes.primary:
                self._retire()
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                # The model server died: serve on while this server is still the one the
                # endpoint names; the front starts another and names it, then this stops.
                if not orphaned:
                    log.warning("the model server is gone; serving until it is replaced")
                    orphaned = True
                if not self.routes.primary:
                    break
                if not process_alive(self.front_pid):
                    # ...and no front is left to start it: nothing would ever stop this one.
                    log.warning("the endpoint's front is gone too; stopping")
                    break
            self._tick()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_SECONDS)
        self._retire()
        private.stop()
        # Closed, so a server forwarding here fails fast and answers itself.
        self.private_socket.close()
        deadline = loop.time() + STOP_TIMEOUT_SECONDS
        while (
            self.connections or public.handshakes or private.handshakes
        ) and loop.time() < deadline:
            self._tick()
            await asyncio.sleep(TICK_SECONDS)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        self.forwarder.close()
        if self.spool is not None:
            self.spool.close_file()

    def stop(self) -> None:
        """Stop as SIGTERM does; callable from another thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def _retire(self) -> None:
        """Stop taking new public connections and let the kept ones finish."""
        if self._public is not None:
            self._public.stop()
        self.draining = True

    def _tick(self) -> None:
        if self.spool is not None:
            self.spool.tick()
        now = time.monotonic()
        if self.draining:
            for connection in list(self.connections):
                if connection.idle_too_long(now) and connection.transport:
                    connection.transport.close()
        if now - self._swept >= _SWEEP_SECONDS:
            self._swept = now
            for connection in list(self.connections):
                connection.expire(now)


def run_worker(worker: Worker) -> None:
    asyncio.run(worker.serve())
