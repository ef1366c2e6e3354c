"""Only this checkout's clients may use its emulator: every request must be signed
(AWS Signature Version 4) with the checkout's key (pipelines.core.aws.emulator_credentials).

moto's server accepts any credentials and checks no signature, and 127.0.0.1 is
reachable by every user of the machine: without this check any of them could read
the datasets and models, approve a version or reset the whole emulator. The check
recomputes the signature the way AWS does (canonical request, string to sign,
derived signing key) and compares it in constant time; a request without one, with
another key or with a signature that does not match is answered 403 in the error
format its protocol expects, before moto (or the durable state's lock) sees it.

Only the signature is checked, not the payload's hash against the body: the body
comes over TLS from the signer itself, and S3 bodies stream (hashing them here
would hold each one in memory twice). Presigned URLs (query-string signatures) are
refused: nothing in the project uses them.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from pipelines.core.aws import EmulatorCredentials

# Answered without a signature, by this layer: whether the server is up says nothing
# about what it holds.
HEALTH_PATH = "/mlops-emulator/health"

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


class SignatureCheck:
    """WSGI middleware: pass on only requests signed with ``credentials``."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        credentials: EmulatorCredentials,
        log: Callable[[str], None] = print,
    ) -> None:
        self.app = app
        self.credentials = credentials
        self.log = log

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == HEALTH_PATH and environ.get("REQUEST_METHOD") == "GET":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
            return [b"ok\n"]
        refusal = check_signature(environ, self.credentials)
        if refusal is None:
            return self.app(environ, start_response)
        code, message = refusal
        self.log(f"refused {environ.get('REQUEST_METHOD')} {_path(environ)}: {code}")
        return _refuse(environ, start_response, code, message)


def check_signature(
    environ: dict[str, Any], credentials: EmulatorCredentials
) -> tuple[str, str] | None:
    """None when the request is signed with ``credentials``; else (error code, message)."""
    match = _AUTHORIZATION.fullmatch(environ.get("HTTP_AUTHORIZATION", "").strip())
    if match is None:
        return (
            "AccessDenied",
            "This emulator answers only requests signed (AWS Signature Version 4, in the "
            "Authorization header) with the key of the checkout that started it.",
        )
    scope = match["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return "IncompleteSignature", "The credential scope of the signature is malformed."
    key_id, day, region, service, _ = scope
    if not hmac.compare_digest(key_id.encode(), credentials.access_key_id.encode()):
        return (
            "InvalidAccessKeyId",
            f"The access key id {key_id} is not this checkout's: the emulator accepts only "
            "the key its checkout made (pipelines.core.aws.emulator_credentials).",
        )
    canonical = canonical_request(environ, match["headers"].split(";"), service)
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            _timestamp(environ),
            "/".join(scope[1:]),
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{credentials.secret_access_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        return (
            "SignatureDoesNotMatch",
            "The request signature does not match the one computed with this checkout's key.",
        )
    return None


def canonical_request(environ: dict[str, Any], signed_headers: list[str], service: str) -> str:
    """SigV4's canonical request, rebuilt from what the server received."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or _path(environ)
    path, _, query = raw.partition("?")
    if service != "s3":
        # Every service but S3 signs the normalised path, URI-encoded once more.
        from botocore.utils import normalize_url_path

        path = quote(normalize_url_path(path), safe="/~")
    # Clients send the query already in its canonical encoding (botocore's
    # serialisers, and the Go SDK rewrites it to what it signed): sort it, as sent.
    pairs = sorted(part.partition("=")[::2] for part in query.split("&") if part)
    headers = "".join(f"{name}:{_header(environ, name)}\n" for name in signed_headers)
    return "\n".join(
        [
            environ.get("REQUEST_METHOD", "GET").upper(),
            path or "/",
            "&".join(f"{name}={value}" for name, value in pairs),
            headers,
            ";".join(signed_headers),
            environ.get("HTTP_X_AMZ_CONTENT_SHA256") or _body_hash(environ),
        ]
    )


def _header(environ: dict[str, Any], name: str) -> str:
    key = name.upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key
    return " ".join(str(environ.get(key, "")).split())


def _timestamp(environ: dict[str, Any]) -> str:
    stamp = environ.get("HTTP_X_AMZ_DATE")
    if stamp:
        return str(stamp)
    # Signed with a Date header instead (allowed by SigV4): the same instant, reformatted.
    try:
        return parsedate_to_datetime(environ.get("HTTP_DATE", "")).strftime("%Y%m%dT%H%M%SZ")
    except (TypeError, ValueError):
        return ""


def _body_hash(environ: dict[str, Any]) -> str:
    """sha256 of the body, which is put back for the application to read."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return hashlib.sha256(b"").hexdigest()
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    body = stream.read() if chunked else stream.read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return hashlib.sha256(body).hexdigest()


def _path(environ: dict[str, Any]) -> str:
    return quote(str(environ.get("PATH_INFO", "")), safe="/~")


def _refuse(
    environ: dict[str, Any], start_response: Callable[..., Any], code: str, message: str
) -> list[bytes]:
    """403 in the shape the caller's protocol parses: JSON for the JSON protocols,
    S3's XML for S3, the query protocols' XML otherwise."""
    if environ.get("HTTP_X_AMZ_TARGET") or "json" in str(environ.get("CONTENT_TYPE", "")):
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    elif "/s3/" in environ.get("HTTP_AUTHORIZATION", "") or not environ.get("CONTENT_TYPE"):
        body = f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>".encode()
        content_type = "application/xml"
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{escape(message)}</Message></Error></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    start_response(
        "403 Forbidden",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("x-amzn-ErrorType", code),
        ],
    )
    return [body]
