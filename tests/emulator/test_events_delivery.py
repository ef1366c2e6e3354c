"""EventBridge on the emulator as on AWS, against a real emulator process over HTTPS:
``aws.*`` sources only from the project's own (signed) emitters, and events delivered to
SQS in AWS's shape."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import boto3
import pytest

from pipelines.core.aws import AwsConnection, emulator_credentials
from pipelines.events.publish import (
    SERVICE_SIGNATURE_HEADER,
    publish,
    service_events_client,
)
from pipelines.events.shapes import put_events_entry
from tests.automation.conftest import sample


@pytest.fixture
def queue(emulator_connection: AwsConnection):
    """A fresh rule -> SQS queue for one source; yields (source, rule, queue URL)."""
    name = f"delivery-{uuid.uuid4().hex[:8]}"
    sqs = emulator_connection.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = emulator_connection.client("events")
    events.put_rule(
        Name=name,
        EventPattern=json.dumps(
            {
                "source": ["aws.sagemaker", "aws.s3", "mlops.test"],
                "resources": [{"prefix": name}, {"prefix": f"arn:aws:s3:::{name}"}],
            }
        ),
    )
    yield name, events, url, arn
    events.remove_targets(
        Rule=name, Ids=[t["Id"] for t in events.list_targets_by_rule(Rule=name)["Targets"]]
    )
    events.delete_rule(Name=name)
    sqs.delete_queue(QueueUrl=url)


def _received(connection: AwsConnection, url: str) -> list[Any]:
    sqs = connection.client("sqs")
    answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def _approval(resource: str) -> dict[str, Any]:
    event = sample("model_package_state_change")
    event["resources"] = [resource]
    event["detail"]["ModelApprovalStatus"] = "Approved"
    return event


def test_a_forged_aws_source_from_a_plain_client_is_refused_as_aws_refuses_it(
    emulator, emulator_connection, queue
):
    """EventBridge: "NotAuthorizedForSourceException: Not authorized for the source." for
    an aws.* source sent by a caller (seen on AWS, e.g. aws-samples/serverless-patterns
    pull request 3089); the other entries of the request are delivered."""
    name, events, url, arn = queue
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    instance, info = emulator
    # A plain boto3 client, even one holding the checkout's own emulator key (a user's
    # script, a job): only the project's service emitters may send aws.* sources.
    credentials = emulator_credentials(instance.tls.ca_cert)
    forger = boto3.client(
        "events",
        region_name="us-east-1",
        endpoint_url=info.endpoint,
        verify=str(instance.tls.ca_cert),
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
    )
    own = {"source": "mlops.test", "detail-type": "t", "detail": {"a": 1}, "resources": [name]}
    answer = forger.put_events(Entries=[put_events_entry(_approval(name)), put_events_entry(own)])
    assert answer["FailedEntryCount"] == 1
    refused, accepted = answer["Entries"]
    assert refused == {
        "ErrorCode": "NotAuthorizedForSourceException",
        "ErrorMessage": "Not authorized for the source.",
    }
    assert "EventId" in accepted
    assert [body["source"] for body in _received(emulator_connection, url)] == ["mlops.test"]


def test_a_wrong_signature_is_refused_and_the_projects_own_is_delivered(
    emulator, emulator_connection, queue
):
    name, events, url, arn = queue
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    instance, info = emulator
    credentials = emulator_credentials(instance.tls.ca_cert)
    forged = boto3.client(
        "events",
        region_name="us-east-1",
        endpoint_url=info.endpoint,
        verify=str(instance.tls.ca_cert),
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
    )
    forged.meta.events.register(
        "before-sign.events.PutEvents",
        lambda request, **_: request.headers.__setitem__(SERVICE_SIGNATURE_HEADER, "0" * 64),
    )
    answer = forged.put_events(Entries=[put_events_entry(_approval(name))])
    assert answer["Entries"][0]["ErrorCode"] == "NotAuthorizedForSourceException"
    assert _received(emulator_connection, url) == []

    event_id = publish(emulator_connection, _approval(name))
    (delivered,) = _received(emulator_connection, url)
    assert delivered["id"] == event_id
    assert (
        service_events_client(emulator_connection).put_events(
            Entries=[put_events_entry(_approval(name))]
        )["FailedEntryCount"]
        == 0
    )


def test_an_sqs_target_gets_the_event_as_eventbridge_delivers_it(emulator_connection, queue):
    """The envelope of AWS's samples ("Automating Amazon SageMaker with Amazon
    EventBridge"): account included, time as 2021-02-24T17:00:14Z, no ingestion-time; an
    input transformer's <aws.events.event.json> is the same event."""
    name, events, url, arn = queue
    events.put_targets(
        Rule=name,
        Targets=[
            {"Id": "whole", "Arn": arn},
            {
                "Id": "transformed",
                "Arn": arn,
                "InputTransformer": {
                    "InputPathsMap": {"group": "$.detail.ModelPackageGroupName"},
                    "InputTemplate": f'{{"rule": "{name}", "group": "<group>", '
                    '"event": <aws.events.event.json>}',
                },
            },
        ],
    )
    sent = _approval(name)
    sent["detail"]["ModelPackageDescription"] = "has <group> and <aws.events.event.json> in it"
    event_id = publish(emulator_connection, sent)
    received = _received(emulator_connection, url)
    whole = next(body for body in received if "rule" not in body)
    transformed = next(body for body in received if "rule" in body)
    assert list(whole) == list(sample("model_package_state_change"))
    assert whole["id"] == event_id
    assert whole["account"] == "123456789012"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", whole["time"])
    assert whole["detail"] == sent["detail"]
    assert transformed == {
        "rule": name,
        "group": sent["detail"]["ModelPackageGroupName"],
        "event": whole,
    }


def test_s3_object_created_has_s3s_shape(emulator_connection, queue):
    """S3 user guide, "EventBridge event message structure", Object created: ``etag``
    (not eTag), ``reason: PutObject``, the bucket owner's ``account``, a fresh ``id``
    per event (the sample is tests/automation/samples/s3_object_created.json)."""
    name, events, url, arn = queue
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    s3 = emulator_connection.client("s3")
    bucket = name  # the rule matches this bucket's ARN
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    try:
        put = s3.put_object(Bucket=bucket, Key="datasets/incoming/a.csv", Body=b"x,y\n")
        s3.copy_object(
            Bucket=bucket,
            Key="datasets/incoming/b.csv",
            CopySource={"Bucket": bucket, "Key": "datasets/incoming/a.csv"},
        )
        created = [
            event
            for event in _received(emulator_connection, url)
            if event["detail-type"] == "Object Created"  # moto adds "Object Tags Added"
        ]
        first, second = sorted(created, key=lambda event: event["detail"]["object"]["key"])
    finally:
        for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
            s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        s3.delete_bucket(Bucket=bucket)
    expected = sample("s3_object_created")
    assert list(first) == list(expected)
    assert list(first["detail"]) == list(expected["detail"])
    assert list(first["detail"]["object"]) == list(expected["detail"]["object"])
    assert (first["source"], first["detail-type"], first["account"]) == (
        "aws.s3",
        "Object Created",
        "123456789012",
    )
    assert first["resources"] == [f"arn:aws:s3:::{bucket}"]
    obj = first["detail"]["object"]
    assert obj["etag"] == put["ETag"].strip('"')
    assert obj["version-id"] == put["VersionId"]
    assert (first["detail"]["reason"], second["detail"]["reason"]) == ("PutObject", "CopyObject")
    assert first["detail"]["requester"] == "123456789012"
    assert first["id"] != second["id"]
