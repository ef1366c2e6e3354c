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


def test_an_update_lists_each_changed_attribute_before_and_after():
    plan = {
        "resource_changes": [
            change(
                "module.automation[0].aws_cloudwatch_event_rule.scheduled_retraining[0]",
                "aws_cloudwatch_event_rule",
                ["update"],
                before={"schedule_expression": "rate(7 days)", "name": "r", "tags_all": {"a": 1}},
                after={"schedule_expression": "rate(1 day)", "name": "r", "tags_all": {"a": 2}},
            ),
            change(
                "aws_db.x", "aws_db", ["update"],
                before={"password": "old-secret", "arn": "a", "size": 1},
                after={"password": "new-secret", "size": 2},
                unknown={"arn": True},
            ),
        ]
    }  # fmt: skip
    plan["resource_changes"][1]["change"]["after_sensitive"] = {"password": True}
    text = render_markdown(summarize_plan(plan), title="t")
    assert "  - `schedule_expression`: `rate(7 days)` → `rate(1 day)`" in text
    assert "tags_all" not in text  # derived from tags
    assert "`name`" not in text  # unchanged
    assert "  - `password`: `(sensitive)` → `(sensitive)`" in text
    assert "secret" not in text
    assert "  - `arn`: `a` → `(known after apply)`" in text
    assert "  - `size`: `1` → `2`" in text


def test_a_changed_policy_marks_the_statements_added_and_removed():
    read = {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    write = {"Sid": "Write", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}
    delete = {"Sid": "Delete", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "*"}
    plan = {
        "resource_changes": [
            change(
                "aws_s3_bucket_policy.b", "aws_s3_bucket_policy", ["update"],
                before={"policy": policy(read, delete)}, after={"policy": policy(read, write)},
            )
        ]
    }  # fmt: skip
    lines = summarize_plan(plan).security[0].lines
    assert lines == (
        "`policy`:",
        "  - **removed:** **Delete** Allow `s3:DeleteObject` on `*`",
        "  - unchanged: **Read** Allow `s3:GetObject` on `*`",
        "  - **added:** **Write** Allow `s3:PutObject` on `*`",
    )


def test_the_skipped_checkov_checks_are_named_with_their_justification(tmp_path):
    from pipelines.config.settings import PROJECT_ROOT
    from pipelines.stack.plan_review import skipped_checks

    module = tmp_path / "modules" / "bucket"
    module.mkdir(parents=True)
    (module / "main.tf").write_text(
        'resource "aws_s3_bucket" "this" {\n'
        "  #checkov:skip=CKV_AWS_18:Access logs need a second bucket.\n"
        "  bucket = var.name\n}\n"
    )
    (found,) = skipped_checks(tmp_path)
    assert (found.check, found.resource, found.file, found.reason) == (
        "CKV_AWS_18", "aws_s3_bucket.this", "modules/bucket/main.tf",
        "Access logs need a second bucket.",
    )  # fmt: skip
    text = render_markdown(summarize_plan({"resource_changes": []}), title="t", skipped=[found])
    assert (
        "- `CKV_AWS_18` on `aws_s3_bucket.this` (modules/bucket/main.tf): Access logs need a "
        "second bucket." in text
    )
    # The project's own skips, each with its reason.
    ours = skipped_checks(PROJECT_ROOT / "infra")
    assert {s.check for s in ours} >= {"CKV_AWS_18", "CKV2_AWS_62", "CKV_AWS_144", "CKV2_AWS_37"}
    assert all(s.reason and s.resource != "?" for s in ours)


def names(stem: str) -> dict[str, Any]:
    return {
        "pipeline_name": f"{stem}-pipeline",
        "model_package_group_name": f"{stem}-models",
        "endpoint_names": {"default": f"{stem}-endpoint"},
    }


def test_the_pipelines_are_listed_in_the_variables_order_with_what_the_plan_adds_or_removes():
    """A reviewer sees every pipeline's group, pipeline and endpoint, the first (whose names
    the environment keeps) first, and which ones this plan adds or removes."""
    alarm = {
        "type": "aws_cloudwatch_metric_alarm",
        "values": {"dimensions": {"Endpoint": "m-endpoint"}},
    }
    plan = {
        "variables": {"pipelines": {"value": [{"key": "zeta"}, {"key": "alpha"}]}},
        "output_changes": {
            "pipelines": {
                "actions": ["update"],
                "before": {"zeta": names("m"), "old": names("m-old")},
                "after": {"alpha": names("m-alpha"), "zeta": names("m")},
            }
        },
        "planned_values": {"root_module": {"child_modules": [{"resources": [alarm, alarm]}]}},
    }
    summary = summarize_plan(plan)
    assert [(p.key, p.first, p.status, p.drift_alarms) for p in summary.pipelines] == [
        ("zeta", True, "", 2),
        ("alpha", False, "new", 0),
        ("old", False, "removed", 0),
    ]
    markdown = render_markdown(summary, title="Plan")
    assert "### Pipelines (2)" in markdown
    assert (
        "| `alpha` (**new**) | `m-alpha-pipeline` | `m-alpha-models` | `m-alpha-endpoint` | 0 |"
        in markdown
    )
    assert "| `old` (**removed**) | `m-old-pipeline` |" in markdown
    assert (
        "| `zeta` (first: the environment's own names; automation acts on it) | `m-pipeline` "
        "| `m-models` | `m-endpoint` | 2 |"
    ) in markdown


def test_a_plan_without_the_pipelines_output_has_no_pipelines_section():
    assert summarize_plan(PLAN).pipelines == ()
    assert "### Pipelines" not in render_markdown(summarize_plan(PLAN), title="Plan")
