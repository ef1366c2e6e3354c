"""What `predict`, `deployments` and `rollback` print."""

from __future__ import annotations

import re

from rich.console import Console

from pipelines.actions.endpoints import StageOverview
from pipelines.serving.deployer import StageStatus
from pipelines.serving.deployment_records import DeploymentRecord
from pipelines.serving.predict import Predictions
from pipelines.ui.endpoint_views import history_table, overview_table, predictions_table


def render(renderable) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", console.export_text()).split())


def test_predict_says_how_many_rows_it_showed_and_what_its_metrics_cover():
    values = [float(i) for i in range(30)]
    scored = Predictions(values, [v + 1 for v in values], "medv", ["a"])
    text = render(predictions_table(scored, 20, 3))
    assert "Showed 20 of 30 predictions (--limit N shows more" in text
    assert "RMSE 1.0000" in text
    assert "over all 30 rows of the file, against its medv column" in text
    everything = render(predictions_table(Predictions(values, None, "medv", ["a"]), 50, 3))
    assert "Showed 30 of 30 predictions." in everything
    assert "RMSE" not in everything


def record(version: int, kind: str, at: float, outcome: str = "deployed", **extra):
    return DeploymentRecord(
        stage="prod", endpoint="p-prod-endpoint", version=version, package_arn=f"arn:g/{version}",
        kind=kind, strategy="all-at-once", outcome=outcome, at=at, **extra,
    )  # fmt: skip


def test_a_rollbacks_reason_is_shown_with_who_decided():
    rolled = record(
        2, "rollback", 2e9,
        approval={"approved_by": "alice", "reason": "p99 doubled", "how": "rollback"},
    )  # fmt: skip
    text = render(history_table([rolled, record(3, "promote", 1e9)], "Deployments"))
    assert "alice: p99 doubled" in text
    assert text.index("2033-05-18") < text.index("2001-09-09")  # in the order given


def test_the_overview_names_every_stage_its_version_since_when_and_last_change():
    stages = [
        StageOverview("default", "p-endpoint", StageStatus(False, "p-endpoint", "not running")),
        StageOverview(
            "staging", "p-staging-endpoint",
            StageStatus(True, "p-staging-endpoint", "serving version 4", version=4),
            since=record(4, "deploy", 1e9), last=record(5, "deploy", 2e9, "failed: boom"),
        ),
        StageOverview("prod", problem="The Terraform outputs have no endpoint_names['prod']."),
    ]  # fmt: skip
    text = render(overview_table(stages))
    assert "default nothing (not running) - none recorded p-endpoint" in text
    assert (
        "staging version 4 2001-09-09 01:46:40 UTC 2033-05-18 03:33:20 UTC: deploy of v5, "
        "failed: boom p-staging-endpoint"
    ) in text
    assert "prod - - The Terraform outputs have no endpoint_names['prod']." in text
