"""Events the emulator delivered into the agent's queue survive an emulator restart
(stop, and kill -9): the write that delivered them is acknowledged only once the queue
is on disk, like any other write."""

from __future__ import annotations

import json

import psutil
import pytest

from pipelines.core.aws import AwsConnection
from pipelines.emulator import Emulator
from pipelines.events.publish import service_events_client
from pipelines.events.shapes import put_events_entry
from tests.automation.conftest import sample
from tests.support import free_port


@pytest.fixture
def emulator(tmp_path):
    instance = Emulator(tmp_path / "emulator", free_port())
    instance.start()
    yield instance
    instance.stop()


def _connection(emulator: Emulator) -> AwsConnection:
    info = emulator.require_running()
    return AwsConnection.for_emulator(info.endpoint, emulator.tls.ca_cert, "us-east-1")


@pytest.mark.parametrize("how", ["stop", "kill -9"])
def test_a_delivered_event_waits_in_the_queue_across_a_restart(emulator, how):
    connection = _connection(emulator)
    sqs = connection.client("sqs")
    queue = sqs.create_queue(QueueName="agent")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = service_events_client(connection)  # aws.* sources: the project's own emitters
    events.put_rule(
        Name="approval",
        EventPattern=json.dumps(
            {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"]}
        ),
    )
    events.put_targets(
        Rule="approval",
        Targets=[
            {
                "Id": "agent",
                "Arn": arn,
                "InputTransformer": {
                    "InputTemplate": '{"rule": "approval", "event": <aws.events.event.json>}'
                },
            }
        ],
    )
    approved = sample("model_package_state_change")
    approved["detail"]["ModelApprovalStatus"] = "Approved"
    # The only write: PutEvents (signed for events) delivers into SQS.
    assert events.put_events(Entries=[put_events_entry(approved)])["FailedEntryCount"] == 0

    if how == "stop":
        emulator.stop()
    else:
        info = emulator.require_running()
        psutil.Process(info.pid).kill()
        psutil.Process(info.pid).wait(10)
    _, started = emulator.start()
    assert started

    answer = (
        _connection(emulator)
        .client("sqs")
        .receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    )
    (message,) = answer["Messages"]
    body = json.loads(message["Body"])
    assert body["rule"] == "approval"
    assert body["event"]["detail"]["ModelApprovalStatus"] == "Approved"
