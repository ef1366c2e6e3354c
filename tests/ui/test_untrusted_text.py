"""Text from users, events and jobs is shown as written, never read as rich markup
(issue 27 item 9, issue 28): a closing tag that opens nothing used to crash the table
(``MarkupError``), and an opening one restyled the rest of the cell."""

from __future__ import annotations

import dataclasses

import pytest
from invoke.exceptions import Exit
from rich.console import Console
from rich.text import Text

from pipelines.automation.log import ActionRecord
from pipelines.core.errors import MlopsError
from pipelines.core.records import StepRun
from pipelines.registry import ModelVersion
from pipelines.serving.deployment_records import DeploymentRecord
from pipelines.ui import console as console_module
from pipelines.ui.automation_views import actions_table
from pipelines.ui.endpoint_views import history_table
from pipelines.ui.registry_views import approval_line, version_checks, versions_table
from pipelines.ui.run_views import execution_summary, executions_table
from tests.ui.test_run_views import execution

HOSTILE = "ok [/dim] then [/bold] and [red]x"
KEY = "datasets/incoming/[/bold][red]x.csv"


def render(renderable) -> str:
    """The text as drawn: markup rich obeyed would be gone from it (its tags consumed)."""
    console = Console(record=True, width=400)
    console.print(renderable)
    return console.export_text()


def version(description: str) -> ModelVersion:
    return ModelVersion(
        arn="arn:aws:sagemaker:us-east-1:1:model-package/g/2",
        version=2,
        status="Approved",
        created_at=0.0,
        approval_description=description,
    )


def test_models_and_model_approve_show_a_reason_as_written():
    assert HOSTILE in render(versions_table([version(HOSTILE)], {2: {"r2": 0.9}}))
    assert f"Version 2: Approved ({HOSTILE})" in render(approval_line(version(HOSTILE)))


def test_a_failed_checks_reason_in_models_is_shown_as_written():
    failed = StepRun(
        name="CheckDataQuality", type="QualityCheck", status="Failed", failure_reason=HOSTILE
    )
    # `models` counts the checks; each one, with its reason, is in execution-show.
    assert "1 failed" in render(versions_table([version("r")], {}, {2: [failed]}))
    shown = render(Text(version_checks([failed])))
    assert f"CheckDataQuality: failed ({HOSTILE})" in shown


def test_automation_log_shows_an_s3_key_and_output_as_written():
    record = ActionRecord(
        at=0.0,
        rule="mlops-local-new-data-retraining",
        purpose="new_data_retraining",
        why=f"new object s3://b/{KEY}",
        command=["invoke", "pipeline-run", "--data", f"s3://b/{KEY}"],
        outcome="failed",
        exit_code=1,
        seconds=1.0,
        event={"detail-type": "Object Created [/dim]", "id": "[red]id"},
        output=f"Error: cannot read {KEY}",
    )
    text = render(actions_table([record]))
    assert f"new object s3://b/{KEY}" in text
    assert f"pipeline-run --data s3://b/{KEY}" in text
    assert "Object Created [/dim] [red]id" in text
    assert f"Error: cannot read {KEY}" in text


def test_execution_views_show_data_uris_and_failure_reasons_as_written():
    failed = dataclasses.replace(
        execution("Failed", failure_reason=HOSTILE, display_name="run [/dim]"),
        lineage={"input_data": {"uri": f"s3://b/{KEY}", "version_id": "v1"}},
    )
    text = render(execution_summary(failed, [StepRun("Train", "Training", "Failed")]))
    assert f"s3://b/{KEY} (version v1)" in text
    assert f"Failure: {HOSTILE}" in text
    assert "(run [/dim])" in text  # the display name, in the headline
    assert HOSTILE in render(executions_table([failed]))


def test_deployment_history_shows_an_approval_reason_as_written():
    record = DeploymentRecord(
        stage="staging",
        endpoint="e",
        version=3,
        package_arn="arn",
        kind="deploy",
        strategy="all-at-once",
        outcome="failed: [/bold]",
        approval={"approved_by": "me", "reason": HOSTILE},
    )
    text = render(history_table([record], "Deployments"))
    assert f"me: {HOSTILE}" in text
    assert "failed: [/bold]" in text


def test_an_error_quoting_user_text_is_printed_as_written(capsys, monkeypatch):
    monkeypatch.setattr(console_module, "err_console", Console(stderr=True, width=300))
    with pytest.raises(Exit), console_module.exit_on_error():
        raise MlopsError(f"Cannot read {KEY}: {HOSTILE}")
    assert f"Error: Cannot read {KEY}: {HOSTILE}" in capsys.readouterr().err
