"""Terraform's progress lines as the tasks echo them."""

from __future__ import annotations

import pytest

from pipelines.ui import console as console_module


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            "module.b.aws_s3_bucket_lifecycle_configuration.this: Creation complete after 55s "
            "[id=mlops-local]",
            "module.b.aws_s3_bucket_lifecycle_configuration.this: Creation complete after 55s",
        ),
        ("module.b.aws_kms_key.this[0]: Creating...", "module.b.aws_kms_key.this[0]: Creating..."),
        (
            "aws_iam_role.this: Destruction complete after 1s",
            "aws_iam_role.this: Destruction complete after 1s",
        ),
        ("Plan: 12 to add, 0 to change, 0 to destroy.", None),
    ],
)
def test_progress_keeps_each_resources_duration_and_drops_the_rest(monkeypatch, line, shown):
    printed: list[str] = []
    monkeypatch.setattr(console_module.console, "print", lambda text: printed.append(text))
    console_module.terraform_progress(line)
    if shown is None:
        assert printed == []
    else:
        assert printed == [f"  [dim]{shown}[/]"]
