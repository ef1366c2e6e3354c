"""Each compat patch, exercised against a real emulator process over HTTPS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines.emulator.compat import conditions_match, request_condition_keys

TLS_ONLY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::{bucket}", "arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOutdatedTls",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::{bucket}", "arn:aws:s3:::{bucket}/*"],
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
        },
    ],
}


def raw_body(client: Any, event: str) -> dict[str, Any]:
    """Capture the JSON body the emulator sent, before botocore parses it."""
    captured: dict[str, Any] = {}

    def keep(http_response: Any, **_: Any) -> None:
        captured.update(json.loads(http_response.content))

    client.meta.events.register(f"after-call.{event}", keep)
    return captured


def test_codecommit_dates_are_epoch_numbers(emulator_connection):
    codecommit = emulator_connection.client("codecommit")
    body = raw_body(codecommit, "codecommit.CreateRepository")
    codecommit.create_repository(repositoryName="epoch-dates")
    metadata = body["repositoryMetadata"]
    assert isinstance(metadata["creationDate"], float)
    assert isinstance(metadata["lastModifiedDate"], float)


def test_codecommit_tags_round_trip(emulator_connection):
    codecommit = emulator_connection.client("codecommit")
    arn = codecommit.create_repository(repositoryName="tagged", tags={"Project": "mlops"})[
        "repositoryMetadata"
    ]["Arn"]
    assert codecommit.list_tags_for_resource(resourceArn=arn)["tags"] == {"Project": "mlops"}
    codecommit.tag_resource(resourceArn=arn, tags={"Environment": "local"})
    codecommit.untag_resource(resourceArn=arn, tagKeys=["Project"])
    assert codecommit.list_tags_for_resource(resourceArn=arn)["tags"] == {"Environment": "local"}


def test_codecommit_tags_of_a_missing_repository_fail_like_aws(emulator_connection):
    codecommit = emulator_connection.client("codecommit")
    with pytest.raises(codecommit.exceptions.RepositoryDoesNotExistException):
        codecommit.list_tags_for_resource(
            resourceArn="arn:aws:codecommit:us-east-1:123456789012:nowhere"
        )


def test_model_package_group_with_versions_cannot_be_deleted(emulator_connection):
    sagemaker = emulator_connection.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="with-versions")
    arn = sagemaker.create_model_package(
        ModelPackageGroupName="with-versions",
        InferenceSpecification={
            "Containers": [{"Image": "example.com/sklearn:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]

    with pytest.raises(ClientError, match="contains 1 model package"):
        sagemaker.delete_model_package_group(ModelPackageGroupName="with-versions")

    sagemaker.delete_model_package(ModelPackageName=arn)
    sagemaker.delete_model_package_group(ModelPackageGroupName="with-versions")
    with pytest.raises(ClientError, match="does not exist"):
        sagemaker.describe_model_package_group(ModelPackageGroupName="with-versions")


def test_deleting_a_missing_group_says_it_does_not_exist(emulator_connection):
    # The provider treats exactly this message as "already gone" during destroy.
    sagemaker = emulator_connection.client("sagemaker")
    with pytest.raises(ClientError, match="does not exist"):
        sagemaker.delete_model_package_group(ModelPackageGroupName="never-created")


def test_aws_managed_policies_are_loaded(emulator_connection):
    iam = emulator_connection.client("iam")
    policy = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    assert policy["Policy"]["PolicyName"] == "AmazonSageMakerFullAccess"


def test_tls_only_bucket_policy_admits_https_requests(emulator_connection):
    s3 = emulator_connection.client("s3")
    s3.create_bucket(Bucket="tls-only")
    policy = json.dumps(TLS_ONLY_POLICY).replace("{bucket}", "tls-only")
    s3.put_bucket_policy(Bucket="tls-only", Policy=policy)
    s3.put_object(Bucket="tls-only", Key="k", Body=b"v")
    assert s3.get_object(Bucket="tls-only", Key="k")["Body"].read() == b"v"


def test_request_condition_keys_reflect_the_transport():
    assert request_condition_keys({"wsgi.url_scheme": "http"}) == {"aws:SecureTransport": "false"}
    assert request_condition_keys({"wsgi.url_scheme": "https", "SSL_PROTOCOL": "TLSv1.3"}) == {
        "aws:SecureTransport": "true",
        "s3:TlsVersion": "1.3",
    }


@pytest.mark.parametrize(
    ("context", "denied"),
    [
        ({"aws:SecureTransport": "false"}, True),
        ({"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}, False),
        ({"aws:SecureTransport": "true", "s3:TlsVersion": "1.1"}, True),
    ],
)
def test_tls_only_policy_denies_plain_http_and_old_tls(context, denied):
    statements = TLS_ONLY_POLICY["Statement"]
    applies = [conditions_match(s["Condition"], context) for s in statements]
    assert any(applies) is denied


def test_condition_semantics_follow_iam():
    # A key absent from the request fails the condition, unless ...IfExists.
    assert not conditions_match({"StringEquals": {"aws:SourceVpc": "vpc-1"}}, {})
    assert conditions_match({"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}}, {})
    assert conditions_match({"Null": {"aws:SourceVpc": "true"}}, {})
    assert conditions_match({"StringNotEquals": {"k": ["a", "b"]}}, {"k": "c"})
    assert not conditions_match({"StringNotEquals": {"k": ["a", "b"]}}, {"k": "b"})
    assert conditions_match({"StringLike": {"k": "arn:*:role/x"}}, {"k": "arn:aws:role/x"})
    assert conditions_match({"NumericGreaterThanEquals": {"k": "1.2"}}, {"K": "1.3"})
