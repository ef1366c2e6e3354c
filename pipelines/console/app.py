"""The console's web application: Starlette, served by uvicorn on 127.0.0.1 only.

The guards, as notebook servers have them: the server answers only requests whose
``Host`` names the loopback address it listens on (a page elsewhere cannot reach it by
DNS rebinding); every request carries the per-start token (in the URL once, then in an
HttpOnly, SameSite=Strict cookie); a form that changes something also carries the
per-start CSRF token. Pages are read from the records at each request; the handlers run
on the event loop's one thread, so a record store is never shared between threads.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from pipelines.console import pages
from pipelines.console.links import ROUTES, Links
from pipelines.console.source import Source
from pipelines.core.errors import MlopsError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SECURITY_HEADERS = {
    # No script, no outside resource: the pages are HTML and CSS only. A page that embeds
    # a report (monitoring) sets its own policy on the report's response.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; frame-src 'self'; form-action 'self'; frame-ancestors 'self'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token must not leave in a Referer
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Secrets:
    """The per-start tokens: one opens the console, the other guards its forms."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))


def cookie_name(port: int) -> str:
    return f"mlops_console_{port}"  # per port: two consoles on one host do not clash


def host_allowed(host: str | None, port: int) -> bool:
    return host in {f"{name}:{port}" for name in LOOPBACK_NAMES}


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def create_app(source: Source, keys: Secrets, port: int) -> Starlette:
    links = Links()

    def respond(request: Request, body: str, status: int = 200) -> Response:
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def refuse(status: int, message: str) -> Response:
        return PlainTextResponse(message, status_code=status, headers=SECURITY_HEADERS)

    def guarded(handler: Callable) -> Callable:
        async def endpoint(request: Request) -> Response:
            if not host_allowed(request.headers.get("host"), port):
                return refuse(400, "This console answers only on its loopback address.")
            given = request.query_params.get("token")
            if given is not None:
                if not _same(given, keys.token):
                    return refuse(403, "Wrong token: open the URL `invoke ui` printed.")
                rest = urlencode(
                    [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                )
                response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), 303)
                response.set_cookie(
                    cookie_name(port), keys.token, httponly=True, samesite="strict", path="/"
                )
                return response
            if not _same(request.cookies.get(cookie_name(port)), keys.token):
                return refuse(
                    403, "Open the URL `invoke ui` printed: it carries this start's token."
                )
            return await handler(request)

        return endpoint

    def page_endpoint(name: str) -> Callable:
        async def handler(request: Request) -> Response:
            try:
                page = pages.build(name, source, request.query_params, request.path_params)
            except MlopsError as error:
                return respond(request, error_page(source, links, str(error)), 404)
            return respond(request, pages.html(page, source, links, csrf=keys.csrf))

        return guarded(handler)

    def form_endpoint(name: str) -> Callable:
        async def handler(request: Request) -> Response:
            form = await request.form()
            if not _same(str(form.get("csrf", "")), keys.csrf):
                return refuse(403, "The form's CSRF token is missing or wrong: reload the page.")
            try:
                page, flash = pages.submit(name, source, form, request.path_params)
            except MlopsError as error:
                return respond(request, error_page(source, links, str(error)), 400)
            return respond(request, pages.html(page, source, links, csrf=keys.csrf, flash=flash))

        return guarded(handler)

    def document_endpoint(name: str) -> Callable:
        async def handler(request: Request) -> Response:
            try:
                found = pages.DOCUMENTS[name](source, request.query_params, **request.path_params)
            except MlopsError as error:
                return respond(request, error_page(source, links, str(error)), 404)
            headers = {**SECURITY_HEADERS, "Content-Security-Policy": found.policy}
            return HTMLResponse(found.body, headers=headers)

        return guarded(handler)

    routes = [
        Route(
            path,
            (document_endpoint if name in pages.DOCUMENTS else page_endpoint)(name),
            methods=["GET"],
        )
        for name, path in ROUTES.items()
    ]
    routes += [
        Route(path, form_endpoint(name), methods=["POST"])
        for name, path in pages.FORM_ROUTES.items()
    ]
    return Starlette(routes=routes)


def error_page(source: Source, links: Links, message: str) -> str:
    return pages.html(
        pages.Page("Not available", "error.html", {"message": message}), source, links
    )


def bind(port: int) -> socket.socket:
    """The listening socket, bound before the URL is printed (a busy port is a sentence)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as error:
        sock.close()
        raise MlopsError(
            f"Port {port} on 127.0.0.1 is in use ({error.strerror}): pass --port N."
        ) from error
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def url(port: int, keys: Secrets) -> str:
    return f"http://127.0.0.1:{port}/?token={keys.token}"


def open_console(
    source: Source, port: int, open_browser: bool, notify: Callable[[str], None]
) -> None:
    """`invoke ui`: bind, say where, optionally open a browser, serve until Ctrl-C."""
    sock = bind(port)
    keys = Secrets()
    address = url(sock.getsockname()[1], keys)
    notify(f"Console for {source.target_label}: {address}")
    notify("Ctrl-C stops it.")
    if open_browser:
        import webbrowser

        webbrowser.open(address)
    # uvicorn re-raises the Ctrl-C it stopped on: for a console it is the way to stop.
    with contextlib.suppress(KeyboardInterrupt):
        serve(source, sock, keys)
    notify("Console stopped.")


def serve(source: Source, sock: socket.socket, keys: Secrets) -> None:
    """Serve until Ctrl-C (uvicorn stops on SIGINT and SIGTERM and closes the socket)."""
    import uvicorn

    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(source, keys, port), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
