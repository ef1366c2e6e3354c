"""The Markdown plan review: resources by action and security call-outs."""

from __future__ import annotations

import json
from typing import Any

from pipelines.stack.plan_review import (
    classify_actions,
    render_markdown,
    summarize_checkov,
    summarize_plan,
)


def change(address: str, type_: str, actions: list[str], before=None, after=None, unknown=None):
    return {
        "address": address,
        "mode": "managed",
        "type": type_,
        "change": {
            "actions": actions,
            "before": before,
            "after": after,
            "after_unknown": unknown or {},
        },
    }


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


PLAN = {
    "resource_changes": [
        change("aws_s3_bucket.new", "aws_s3_bucket", ["create"], after={"bucket": "b"}),
        change(
            "aws_iam_role_policy.wide",
            "aws_iam_role_policy",
            ["update"],
            before={
                "policy": policy(
                    {
                        "Sid": "Read",
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::b/*",
                    }
                )
            },
            after={
                "policy": policy(
                    {"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"}
                )
            },
        ),
        change(
            "aws_s3_bucket_public_access_block.pab",
            "aws_s3_bucket_public_access_block",
            ["update"],
            before={
                "block_public_acls": True,
                "block_public_policy": True,
                "ignore_public_acls": True,
                "restrict_public_buckets": True,
            },
            after={
                "block_public_acls": True,
                "block_public_policy": False,
                "ignore_public_acls": True,
                "restrict_public_buckets": True,
            },
        ),
        change(
            "aws_s3_bucket_server_side_encryption_configuration.sse",
            "aws_s3_bucket_server_side_encryption_configuration",
            ["delete"],
            before={
                "rule": [
                    {
                        "apply_server_side_encryption_by_default": [
                            {"sse_algorithm": "aws:kms", "kms_master_key_id": "arn:key"}
                        ]
                    }
                ]
            },
        ),
        change(
            "aws_kms_key.k",
            "aws_kms_key",
            ["delete", "create"],
            after={"enable_key_rotation": False},
        ),
        change(
            "aws_iam_role_policy_attachment.full",
            "aws_iam_role_policy_attachment",
            ["create"],
            after={"policy_arn": "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"},
        ),
        change("aws_codecommit_repository.r", "aws_codecommit_repository", ["no-op"], after={}),
        {
            "address": "data.x.y",
            "mode": "data",
            "type": "aws_caller_identity",
            "change": {"actions": ["read"]},
        },
    ],
    "output_changes": {"bucket_name": {"actions": ["create"]}, "same": {"actions": ["no-op"]}},
}


def test_actions_map_to_review_categories():
    assert classify_actions(["create"]) == "create"
    assert classify_actions(["update"]) == "update"
    assert classify_actions(["delete", "create"]) == "replace"
    assert classify_actions(["create", "delete"]) == "replace"
    assert classify_actions(["delete"]) == "delete"
    assert classify_actions(["no-op"]) is None
    assert classify_actions(["read"]) is None


def test_resources_are_grouped_by_action_and_no_ops_dropped():
    summary = summarize_plan(PLAN)
    assert [c.address for c in summary.by_action("create")] == [
        "aws_iam_role_policy_attachment.full",
        "aws_s3_bucket.new",
    ]
    assert [c.address for c in summary.by_action("replace")] == ["aws_kms_key.k"]
    assert [c.address for c in summary.by_action("delete")] == [
        "aws_s3_bucket_server_side_encryption_configuration.sse"
    ]
    assert "aws_codecommit_repository.r" not in [c.address for c in summary.changes]
    assert summary.output_changes == ("bucket_name",)


def test_weakened_security_is_called_out():
    warnings = summarize_plan(PLAN).warnings
    assert "aws_iam_role_policy.wide: Admin allows every action on every resource (*:*)" in warnings
    assert (
        "aws_s3_bucket_public_access_block.pab: public access block disabled: block_public_policy"
        in warnings
    )
    assert (
        "aws_s3_bucket_server_side_encryption_configuration.sse: default bucket encryption removed"
        in warnings
    )
    assert "aws_kms_key.k: KMS key rotation disabled" in warnings
    attachment = "aws_iam_role_policy_attachment.full: broad AWS managed policy"
    assert f"{attachment} AmazonSageMakerFullAccess attached" in warnings


def test_markdown_lists_actions_statements_and_checkov():
    summary = summarize_plan(PLAN)
    checkov = summarize_checkov(
        {
            "summary": {"passed": 10, "failed": 1, "skipped": 2},
            "results": {
                "failed_checks": [{"check_id": "CKV_AWS_1", "check_name": "Bad", "resource": "r"}]
            },
        }
    )
    text = render_markdown(summary, title="Terraform plan: local", checkov=checkov)
    assert text.startswith("## Terraform plan: local\n")
    assert "**Plan:** 2 to create, 2 to update, 1 to replace, 1 to delete." in text
    assert "### Replace (1)\n\n- `-/+` `aws_kms_key.k`" in text
    assert "**Admin** Allow `*` on `*`" in text
    assert ":warning: aws_kms_key.k: KMS key rotation disabled" in text
    assert "10 passed, 1 failed, 2 skipped." in text
    assert ":x: CKV_AWS_1 Bad (r)" in text


def test_no_changes_says_so():
    text = render_markdown(summarize_plan({"resource_changes": []}), title="t")
    assert "**No changes.**" in text
    assert "Security-relevant" not in text


def test_policies_known_only_after_apply_are_marked():
    plan = {
        "resource_changes": [
            change(
                "aws_iam_role_policy.kms",
                "aws_iam_role_policy",
                ["create"],
                after={"name": "kms"},
                unknown={"policy": True},
            )
        ]
    }
    note = summarize_plan(plan).security[0]
    assert note.lines == ("`policy`: (known after apply)",)


def test_unchanged_policy_in_an_update_is_not_repeated():
    same = policy({"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    plan = {
        "resource_changes": [
            change(
                "aws_iam_role_policy.p",
                "aws_iam_role_policy",
                ["update"],
                before={"policy": same, "name": "a"},
                after={"policy": same, "name": "b"},
            )
        ]
    }
    assert summarize_plan(plan).security == ()


def test_checkov_list_reports_are_summed():
    report = [
        {"summary": {"passed": 3, "failed": 0, "skipped": 1}, "results": {}},
        {"summary": {"passed": 2, "failed": 0, "skipped": 0}, "results": {}},
    ]
    summary = summarize_checkov(report)
    assert (summary.passed, summary.failed, summary.skipped) == (5, 0, 1)
