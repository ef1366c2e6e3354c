"""`data-upload`: the new-data prefix comes from the applied rule's pattern (stubbed
EventBridge, requests validated); file names the builds would refuse are refused first."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.core.errors import MlopsError
from pipelines.launch.datasets import NEW_DATA_PREFIX, check_new_data_file, new_data_rule

RULE = "mlops-local-new-data-retraining"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:mlops-local-automation"


class Connection:
    def __init__(self, events) -> None:
        self.events = events

    def client(self, service: str):
        assert service == "events"
        return self.events


def stubbed(pattern: dict, state: str = "ENABLED") -> tuple[Connection, Stubber]:
    events = boto3.Session(region_name="us-east-1").client("events")
    stubber = Stubber(events)
    stubber.add_response(
        "describe_rule", {"Name": RULE, "EventPattern": json.dumps(pattern), "State": state},
        {"Name": RULE},
    )  # fmt: skip
    stubber.add_response(
        "list_targets_by_rule", {"Targets": [{"Id": "agent", "Arn": QUEUE}]}, {"Rule": RULE}
    )
    return Connection(events), stubber


def pattern(prefix: str) -> dict:
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["b"]}, "object": {"key": [{"prefix": prefix}]}},
    }


def test_the_prefix_state_and_targets_come_from_the_applied_rule():
    connection, stubber = stubbed(pattern("datasets/arrivals/"), "DISABLED")
    with stubber:
        rule = new_data_rule(connection, RULE)  # type: ignore[arg-type]
    assert (rule.name, rule.prefix, rule.enabled, rule.targets) == (
        RULE, "datasets/arrivals/", False, (QUEUE,),
    )  # fmt: skip


def test_without_automation_the_default_prefix_and_no_rule():
    rule = new_data_rule(None, None)  # type: ignore[arg-type]
    assert (rule.name, rule.prefix, rule.enabled) == (None, NEW_DATA_PREFIX, False)
    assert NEW_DATA_PREFIX == "datasets/incoming/"


def test_a_rule_without_a_key_prefix_is_named():
    connection, stubber = stubbed({"source": ["aws.s3"]})
    with stubber, pytest.raises(MlopsError, match=f"rule {RULE} matches no key prefix"):
        new_data_rule(connection, RULE)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["new data.csv", "-x.csv", "données.csv"])
def test_a_file_name_the_builds_would_refuse_is_refused_before_any_upload(tmp_path, name):
    path = tmp_path / name
    path.write_text("a,b\n1,2\n")
    with pytest.raises(MlopsError, match="must be named with letters, digits"):
        check_new_data_file(path)
    with pytest.raises(MlopsError, match="does not exist"):
        check_new_data_file(tmp_path / "missing.csv")
    good = tmp_path / "houses_2026-03.csv"
    good.write_text("a\n1\n")
    assert check_new_data_file(good) == good
