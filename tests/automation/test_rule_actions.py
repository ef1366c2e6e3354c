"""The action table and what an event must be for the agent to act on it (no servers)."""

from __future__ import annotations

import pytest

from pipelines.automation.rule_actions import (
    ACTIONS,
    Ignored,
    Scope,
    check_event,
    command_for,
    purpose_of,
    pytest_arguments,
    schedule_parameters,
)
from pipelines.core.errors import MlopsError
from tests.automation.conftest import sample

SCOPE = Scope(
    rule_prefix="mlops-local-",
    group="mlops-local-models",
    bucket="example-bucket",
    dataset_prefix="datasets/incoming/",
    repository="mlops-local",
)


def _approved(version: int = 3) -> dict:
    event = sample("model_package_state_change")
    event["detail"].update(
        ModelApprovalStatus="Approved",
        ModelPackageVersion=version,
        ModelPackageGroupName="mlops-local-models",
    )
    return event


def test_approval_deploys_that_version():
    arguments, why = command_for("approval_deploy", _approved(7))
    assert arguments == ["deploy", "--stage", "staging", "--version", "7"]
    assert why == "model package mlops-local-models/7 was Approved"


def test_new_data_runs_the_pipeline_on_that_object():
    event = sample("s3_object_created")
    event["detail"]["object"]["key"] = "datasets/incoming/july.csv"
    arguments, _ = command_for("new_data_retraining", event)
    assert arguments == [
        "pipeline-run",
        "--trigger",
        "new-data",
        "--data",
        "s3://example-bucket/datasets/incoming/july.csv",
        "--no-wait",
    ]


def test_a_schedule_passes_its_target_parameters():
    arguments, why = command_for(
        "scheduled_retraining",
        {"detail-type": "Scheduled Event", "detail": {}},
        {"NEstimators": "50", "MinTestR2": "0.8"},
        {"expression": "rate(1 minute)", "rule": "r"},
    )
    assert arguments == [
        "pipeline-run",
        "--trigger",
        "schedule",
        "--no-wait",
        "--param",
        "MinTestR2=0.8",
        "--param",
        "NEstimators=50",
    ]
    assert why == "schedule rate(1 minute) of rule r is due"


def test_an_event_without_the_needed_field_is_refused():
    event = _approved()
    del event["detail"]["ModelPackageVersion"]
    with pytest.raises(MlopsError, match="lacks 'version' for the approval_deploy action"):
        command_for("approval_deploy", event)


def test_rule_names_map_to_purposes_by_their_exact_names():
    assert purpose_of("mlops-local-approval-deploy", "mlops-local-") == "approval_deploy"
    assert purpose_of("mlops-dev-new-data-retraining", "mlops-dev-") == "new_data_retraining"
    assert {purpose_of(f"x-y-{p.replace('_', '-')}", "x-y-") for p in ACTIONS} == set(ACTIONS)


@pytest.mark.parametrize(
    "rule",
    [
        "mlops-local-execution-failed",  # a rule of this stack with no action
        "evil-mlops-local-approval-deploy",  # the same suffix, another prefix
        "mlops-dev-approval-deploy",  # another environment's
        "mlops-local-approval-deploy-x",
    ],
)
def test_any_other_rule_is_ignored_naming_this_stacks_rules(rule):
    with pytest.raises(Ignored, match=r"is not one of this stack's rules .*mlops-local-approval"):
        purpose_of(rule, "mlops-local-")


def _object(key: str, bucket: str = "example-bucket") -> dict:
    event = sample("s3_object_created")
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


@pytest.mark.parametrize(
    ("purpose", "event", "why"),
    [
        ("approval_deploy", _approved(), None),
        ("approval_deploy", sample("model_package_state_change"), "is not this stack's"),
        ("new_data_retraining", _object("datasets/incoming/july.csv"), None),
        ("new_data_retraining", _object("datasets/incoming/july.csv", "other"), "Bucket"),
        ("new_data_retraining", _object("datasets/0123/july.csv"), "is not a file under"),
        ("new_data_retraining", _object("datasets/incoming/"), "is not a file under"),
        ("new_data_retraining", _object("datasets/incoming/../../x.csv"), "'..' segment"),
        ("new_data_retraining", _object("datasets/incoming/a\nb.csv"), "control character"),
        ("approval_deploy", _object("datasets/incoming/july.csv"), "is not what"),
        ("commit_build", sample("codecommit_reference_updated"), "Repository"),
    ],
)
def test_only_this_stacks_events_of_the_rules_kind_are_acted_on(purpose, event, why):
    if why is None:
        check_event(purpose, event, SCOPE)
    else:
        with pytest.raises(Ignored, match=why):
            check_event(purpose, event, SCOPE)


def test_an_approval_that_is_not_approved_is_ignored():
    event = _approved()
    event["detail"]["ModelApprovalStatus"] = "Rejected"
    with pytest.raises(Ignored, match="Rejected, not Approved"):
        check_event("approval_deploy", event, SCOPE)


def test_a_schedules_parameters_are_allow_listed():
    kept, dropped = schedule_parameters(
        {
            "NEstimators": "50",
            "MinTestR2": "0.8",
            "ModelApprovalStatus": "Approved",
            "SkipDataQualityCheck": "true",
            "GitCommit": "abc",
            "InputDataUrl": "/home/me/.aws/credentials",
        },
        SCOPE,
    )
    assert kept == {"MinTestR2": "0.8", "NEstimators": "50"}
    assert sorted(why.split(":")[0] for why in dropped) == [
        "GitCommit",
        "InputDataUrl",
        "ModelApprovalStatus",
        "SkipDataQualityCheck",
    ]
    assert any("is not in this stack's bucket" in why for why in dropped)
    own = "s3://example-bucket/datasets/incoming/july.csv"
    assert schedule_parameters({"InputDataUrl": own}, SCOPE) == ({"InputDataUrl": own}, [])


def test_test_tiers():
    assert pytest_arguments("fast") == ["-m", "'not server'", "-q"]
    with pytest.raises(MlopsError, match="Unknown test tier"):
        pytest_arguments("slow")
