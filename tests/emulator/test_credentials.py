"""The emulator answers only its checkout's own key (issue 27, item 3).

Another user of the machine reaches 127.0.0.1 too: with any other key, a wrong
signature or none at all, a request is refused before moto sees it.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pipelines.core.aws import emulator_credentials, emulator_process_env
from pipelines.emulator import Emulator
from tests.support import free_port

BUCKET = "private-bucket"


@pytest.fixture(scope="module")
def private_object(emulator_connection):
    s3 = emulator_connection.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="datasets/train.csv", Body=b"secret,rows\n")
    return BUCKET, "datasets/train.csv"


def _client(emulator, service: str, key_id: str, secret: str):
    instance, info = emulator
    return boto3.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name="us-east-1"
    ).client(
        service,
        endpoint_url=info.endpoint,
        verify=str(instance.tls.ca_cert),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _code(call) -> str:
    with pytest.raises(ClientError) as refused:
        call()
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return refused.value.response["Error"]["Code"]


def test_other_credentials_can_neither_read_nor_write(emulator, private_object):
    bucket, key = private_object
    s3 = _client(emulator, "s3", "AKIAANOTHERUSER00000", "their-secret")
    assert _code(lambda: s3.get_object(Bucket=bucket, Key=key)) == "InvalidAccessKeyId"
    assert _code(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"x")) == "InvalidAccessKeyId"
    sagemaker = _client(emulator, "sagemaker", "AKIAANOTHERUSER00000", "their-secret")
    assert _code(sagemaker.list_model_package_groups) == "InvalidAccessKeyId"
    iam = _client(emulator, "iam", "AKIAANOTHERUSER00000", "their-secret")
    assert _code(iam.list_roles) == "InvalidAccessKeyId"


def test_the_right_key_id_with_a_wrong_secret_is_refused(emulator, private_object):
    instance, _ = emulator
    bucket, key = private_object
    ours = emulator_credentials(instance.tls.ca_cert)
    s3 = _client(emulator, "s3", ours.access_key_id, "guessed-secret")
    assert _code(lambda: s3.get_object(Bucket=bucket, Key=key)) == "SignatureDoesNotMatch"


@pytest.mark.parametrize("path", ["/moto-api/data.json", "/moto-api/reset", f"/{BUCKET}"])
def test_unsigned_requests_are_refused_and_change_nothing(
    emulator, emulator_connection, private_object, path
):
    instance, info = emulator
    context = ssl.create_default_context(cafile=str(instance.tls.ca_cert))
    request = urllib.request.Request(f"{info.endpoint}{path}", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=context)
    assert refused.value.code == 403
    bucket, key = private_object
    body = emulator_connection.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == b"secret,rows\n"


def test_the_projects_clients_sign_with_the_checkouts_key(emulator, emulator_connection):
    instance, _ = emulator
    ours = emulator_credentials(instance.tls.ca_cert)
    assert emulator_connection.session.get_credentials().access_key == ours.access_key_id
    # What a job, Terraform or the endpoint's capture upload is handed.
    env = emulator_process_env({}, ca_bundle=instance.tls.ca_cert, region="us-east-1")
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        ours.access_key_id,
        ours.secret_access_key,
    )
    account = emulator_connection.client("sts").get_caller_identity()["Account"]
    assert account == "123456789012"


@pytest.mark.server  # starts emulators itself, not through a fixture
def test_each_checkout_makes_its_own_private_key_once(tmp_path):
    first = Emulator(tmp_path / "one", free_port())
    second = Emulator(tmp_path / "two", free_port())
    try:
        first.start()
        key = emulator_credentials(first.tls.ca_cert)
        assert oct(first.credentials_file.stat().st_mode & 0o777) == "0o600"
        first.stop()
        first.start()
        assert emulator_credentials(first.tls.ca_cert) == key  # kept across restarts
        second.start()
        assert emulator_credentials(second.tls.ca_cert).access_key_id != key.access_key_id
    finally:
        first.stop()
        second.stop()
