"""The plan review calls out who may send to the agent's queue (and publish to a topic)."""

from __future__ import annotations

import json

from pipelines.stack.plan_review import render_markdown, summarize_plan

QUEUE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TheseRulesSend",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": "arn:aws:sqs:us-east-1:123456789012:mlops-local-automation-agent",
            }
        ],
    }
)


def test_queue_policy_statements_appear_in_the_review():
    plan = {
        "resource_changes": [
            {
                "address": "module.automation[0].aws_sqs_queue_policy.agent[0]",
                "mode": "managed",
                "type": "aws_sqs_queue_policy",
                "change": {
                    "actions": ["create"],
                    "before": None,
                    "after": {"policy": QUEUE_POLICY},
                    "after_unknown": {},
                },
            }
        ]
    }
    text = render_markdown(summarize_plan(plan), title="Terraform plan: local")
    assert "aws_sqs_queue_policy.agent[0]" in text
    assert "**TheseRulesSend** Allow `sqs:SendMessage`" in text
    assert "mlops-local-automation-agent" in text
