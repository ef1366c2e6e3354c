"""The signature check against botocore's own signers, without a server: each request
is signed as a client would, turned into the WSGI environ the server would see, and
checked. Awkward paths and queries are where a canonical request goes wrong."""

from __future__ import annotations

import io
from urllib.parse import unquote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pipelines.core.aws import EmulatorCredentials
from pipelines.emulator.signatures import check_signature

OURS = EmulatorCredentials("MLOPSABCDEFGHIJ12345", "s3cr3t/with+odd=chars")
ENDPOINT = "https://127.0.0.1:4569"


def _environ(service: str, method: str, url: str, body: bytes, headers: dict, signer=None):
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    credentials = Credentials(OURS.access_key_id, OURS.secret_access_key)
    signer = signer or (S3SigV4Auth if service == "s3" else SigV4Auth)
    signer(credentials, service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    environ = {
        "REQUEST_METHOD": method,
        "REQUEST_URI": parts.path + (f"?{parts.query}" if parts.query else ""),
        "PATH_INFO": unquote(parts.path),
        "QUERY_STRING": parts.query,
        "wsgi.input": io.BytesIO(prepared.body or b""),
        "HTTP_HOST": parts.netloc,
    }
    for name, value in prepared.headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return environ


@pytest.mark.parametrize(
    ("service", "method", "url", "body", "headers"),
    [
        ("s3", "GET", f"{ENDPOINT}/bucket/data/a%23b%3F.csv?versionId=abc", b"", {}),
        ("s3", "GET", f"{ENDPOINT}/bucket/sp%20ace/%C3%BC%2Bx%3Dy%26z.txt", b"", {}),
        ("s3", "GET", f"{ENDPOINT}/bucket?list-type=2&prefix=a%20b%2Fc&delimiter=%2F", b"", {}),
        ("s3", "POST", f"{ENDPOINT}/bucket/key?uploads", b"", {}),
        ("s3", "PUT", f"{ENDPOINT}/bucket/key", b"x,y\n1,2\n", {"Content-Type": "text/csv"}),
        (
            "sagemaker",
            "POST",
            f"{ENDPOINT}/",
            b'{"ModelPackageGroupName": "g"}',
            {
                "X-Amz-Target": "SageMaker.ListModelPackages",
                "Content-Type": "application/x-amz-json-1.1",
            },
        ),
        (
            "iam",
            "POST",
            f"{ENDPOINT}/",
            b"Action=GetRole&RoleName=r&Version=2010-05-08",
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        ),
        ("lambda", "GET", f"{ENDPOINT}/2015-03-31/functions/a%3Ab/configuration", b"", {}),
    ],
)
def test_a_request_signed_with_our_key_passes(service, method, url, body, headers):
    environ = _environ(service, method, url, body, headers)
    assert check_signature(environ, OURS) is None
    # The body the signature check read is still there for moto.
    assert environ["wsgi.input"].read() == body


def test_a_changed_request_no_longer_matches_its_signature():
    environ = _environ("s3", "GET", f"{ENDPOINT}/bucket/public.csv", b"", {})
    environ["REQUEST_URI"] = "/bucket/private.csv"
    assert check_signature(environ, OURS)[0] == "SignatureDoesNotMatch"


def test_other_keys_and_unsigned_requests_are_refused():
    environ = _environ("s3", "GET", f"{ENDPOINT}/bucket/key", b"", {})
    other = EmulatorCredentials("AKIAANOTHERUSER00000", OURS.secret_access_key)
    assert check_signature(environ, other)[0] == "InvalidAccessKeyId"
    forged_secret = EmulatorCredentials(OURS.access_key_id, "another-secret")
    assert check_signature(environ, forged_secret)[0] == "SignatureDoesNotMatch"
    del environ["HTTP_AUTHORIZATION"]
    assert check_signature(environ, OURS)[0] == "AccessDenied"
    environ["HTTP_AUTHORIZATION"] = f"AWS {OURS.access_key_id}:c2lnbmF0dXJl"  # SigV2
    assert check_signature(environ, OURS)[0] == "AccessDenied"
