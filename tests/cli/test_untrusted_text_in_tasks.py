"""`models`, `model-approve` and `automation-log` print markup in an approval reason or an
S3 key as written and exit 0 (they crashed with rich's MarkupError). The tasks run in this
process; only the registry calls behind them are replaced."""

from __future__ import annotations

import pytest
from invoke import Config, Context

from pipelines.actions import models as model_actions
from pipelines.automation.log import ActionLog, ActionRecord
from pipelines.cli.automation_tasks import automation_log
from pipelines.cli.model_tasks import model_approve, models
from pipelines.registry import ModelVersion
from pipelines.ui.console import console

REASON = "looks fine [/dim] [/bold] [red]x"
KEY = "datasets/incoming/[/bold]x.csv"


def _version() -> ModelVersion:
    return ModelVersion(
        arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/g/5",
        version=5,
        status="Approved",
        created_at=0.0,
        approval_description=f"approved by me at 2026-01-01T00:00:00Z: {REASON}",
    )


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    """Wide enough that no cell folds: the assertions read whole phrases."""
    monkeypatch.setattr(console, "width", 400)


def test_models_and_model_approve(monkeypatch, capsys):
    monkeypatch.setattr(
        model_actions,
        "list_versions",
        lambda *a: model_actions.VersionListing([_version()], {5: {"r2": 0.9}}, {}),
    )
    monkeypatch.setattr(model_actions, "set_approval", lambda *a: _version())
    models(Context(Config()))
    model_approve(Context(Config()), version="5", reason=REASON)
    shown = capsys.readouterr().out
    assert shown.count(REASON) == 2


def test_automation_log(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
    (tmp_path / "automation").mkdir()
    ActionLog(tmp_path / "automation").append(
        ActionRecord(
            at=0.0,
            rule="mlops-local-new-data-retraining",
            purpose="new_data_retraining",
            why=f"new object s3://b/{KEY}",
            command=["invoke", "pipeline-run", "--data", f"s3://b/{KEY}", "--no-wait"],
            outcome="succeeded",
            exit_code=0,
            seconds=1.0,
        )
    )
    automation_log(Context(Config()))
    shown = capsys.readouterr().out
    assert f"new object s3://b/{KEY}" in shown
    assert f"--data s3://b/{KEY}" in shown
