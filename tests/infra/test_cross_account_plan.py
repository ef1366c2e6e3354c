"""Cross-account sharing for staging and prod (plan only): the model package group, the
bucket's objects and the KMS key are shared with the given deploying accounts and no
one else, only when accounts are given, and the plan review flags every grant."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tftest

from pipelines.stack.plan_review import render_markdown, summarize_plan
from tests.infra.conftest import PlanFn, resources_by_address

STAGING, PROD = "111122223333", "444455556666"
OWN = "123456789012"  # the emulator's account
GROUP_POLICY = "module.model_registry.aws_sagemaker_model_package_group_policy.this[0]"
BUCKET_POLICY = "module.artifact_bucket.aws_s3_bucket_policy.this"
KEY = "module.artifact_bucket.aws_kms_key.this[0]"
GROUP_ARN = f"arn:aws:sagemaker:us-east-1:{OWN}:model-package-group/mlops-local-models"
BUCKET_ARN = "arn:aws:s3:::mlops-local-artifacts-123456789012-us-east-1"


@pytest.fixture(scope="module")
def shared(plan_infra: PlanFn) -> tftest.TerraformPlanOutput:
    return plan_infra(deploying_account_ids=[STAGING, PROD])


def statements(policy_json: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(policy_json)["Statement"]}


def principals(statement: dict[str, Any]) -> set[str]:
    names = statement["Principal"]["AWS"]
    return {names} if isinstance(names, str) else set(names)


def as_set(value: Any) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


ROOTS = {f"arn:aws:iam::{STAGING}:root", f"arn:aws:iam::{PROD}:root"}


def test_nothing_is_shared_by_default(plan_infra: PlanFn):
    planned = resources_by_address(plan_infra())
    assert GROUP_POLICY not in planned
    assert set(statements(planned[BUCKET_POLICY]["policy"])) == {
        "DenyInsecureTransport",
        "DenyOutdatedTls",
    }
    assert set(statements(planned[KEY]["policy"])) == {"AccountAdministersKeyThroughIam"}


def test_the_group_policy_lets_only_the_deploying_accounts_read_versions(shared):
    policy = statements(resources_by_address(shared)[GROUP_POLICY]["resource_policy"])
    group, versions = (
        policy["DeployingAccountsReadTheGroup"],
        policy["DeployingAccountsReadTheVersions"],
    )
    assert principals(group) == principals(versions) == ROOTS
    assert as_set(group["Action"]) == {"sagemaker:DescribeModelPackageGroup"}
    assert as_set(group["Resource"]) == {GROUP_ARN}
    assert as_set(versions["Action"]) == {
        "sagemaker:DescribeModelPackage",
        "sagemaker:ListModelPackages",
    }
    assert as_set(versions["Resource"]) == {
        f"arn:aws:sagemaker:us-east-1:{OWN}:model-package/mlops-local-models/*"
    }


def test_the_bucket_lets_the_deploying_accounts_read_objects_only(shared):
    policy = statements(resources_by_address(shared)[BUCKET_POLICY]["policy"])
    read = policy["DeployingAccountsReadArtifacts"]
    assert read["Effect"] == "Allow"
    assert principals(read) == ROOTS
    assert as_set(read["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    # Models and code only: no datasets, capture, reports or sources.
    assert as_set(read["Resource"]) == {
        f"{BUCKET_ARN}/mlops-local-pipeline/models/*",
        f"{BUCKET_ARN}/mlops-local-pipeline/code/*",
    }
    # The TLS denials still apply to everyone, the deploying accounts included.
    assert {"DenyInsecureTransport", "DenyOutdatedTls"} <= set(policy)


def test_the_key_lets_the_deploying_accounts_decrypt_through_s3_only(shared):
    policy = statements(resources_by_address(shared)[KEY]["policy"])
    decrypt = policy["DeployingAccountsDecryptThroughS3"]
    assert principals(decrypt) == ROOTS
    assert as_set(decrypt["Action"]) == {"kms:Decrypt", "kms:DescribeKey"}
    assert decrypt["Condition"] == {
        "StringEquals": {
            "kms:ViaService": "s3.us-east-1.amazonaws.com",
            "kms:EncryptionContext:aws:s3:arn": BUCKET_ARN,
        }
    }
    assert principals(policy["AccountAdministersKeyThroughIam"]) == {f"arn:aws:iam::{OWN}:root"}


def test_the_plan_review_flags_each_cross_account_grant(shared):
    summary = summarize_plan(shared)
    grants = [w for w in summary.warnings if "cross-account grant" in w]
    flagged = {w.split(":", 1)[0] for w in grants}
    assert flagged == {GROUP_POLICY, BUCKET_POLICY, KEY}
    assert all(f"{PROD}, {STAGING}" in w or f"{STAGING}, {PROD}" in w for w in grants)
    markdown = render_markdown(summary, title="Plan: aws/dev")
    warning = next(
        line
        for line in markdown.splitlines()
        if line.startswith(f"> :warning: {GROUP_POLICY}: cross-account grant: ")
        and "DeployingAccountsReadTheVersions" in line
    )
    assert f"lets account(s) {STAGING}, {PROD} use `" in warning
    assert "sagemaker:DescribeModelPackage" in warning
    assert "sagemaker:ListModelPackages" in warning
    assert f"- **create** `{GROUP_POLICY}`" in markdown
    # The account's own key administration is not a cross-account grant.
    assert not any("AccountAdministersKeyThroughIam" in w for w in grants)


def test_a_plan_without_sharing_flags_no_grant(plan_infra: PlanFn):
    assert not [w for w in summarize_plan(plan_infra()).warnings if "cross-account" in w]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["12345"], "deploying_account_ids must be 12-digit AWS account ids"),
        (["arn:aws:iam::111122223333:root"], "deploying_account_ids must be 12-digit"),
        ([STAGING, STAGING], "deploying_account_ids must not repeat an account id"),
    ],
)
def test_bad_account_ids_are_refused(plan_infra: PlanFn, value, message):
    with pytest.raises(tftest.TerraformTestError) as failure:
        plan_infra(deploying_account_ids=value)
    assert message in " ".join(str(failure.value).split())
