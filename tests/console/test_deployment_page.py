"""The deployments page against the emulator: each stage's card, and each stage's history
newest first with the promotion's gates, figures and approver, from the records the
deployers write; and (no server) a canary's split while it shifts."""

from __future__ import annotations

import re

import pytest

from pipelines.actions.endpoints import StageOverview
from pipelines.config.deployment import Deployment
from pipelines.console import pages
from pipelines.console.links import Links
from pipelines.console.source import Source
from pipelines.promotion.approval import Approval
from pipelines.promotion.gates import health_gate, monitoring_gate
from pipelines.serving.deployer import StageStatus
from pipelines.serving.deployment_records import DeploymentRecord, HistoryStore
from tests.console.serving import console_server

# A real console server (uvicorn) per test: the server tier, not the fast one.
pytestmark = pytest.mark.server


def test_each_stage_and_its_history_with_gates_and_approver(console_stack):
    config = console_stack.config
    s3 = console_stack.connection.client("s3")
    version = console_stack.register()
    staging = HistoryStore(s3, config.bucket_name, config.endpoint_name("staging"))
    prod = HistoryStore(s3, config.bucket_name, config.endpoint_name("prod"))
    staging.add(
        DeploymentRecord("staging", staging.endpoint, version.version, version.arn, "deploy",
                         "all-at-once", "deployed", at=1_000.0)
    )  # fmt: skip
    gates = [
        health_gate(lambda: (True, "/ping answered 200")).to_dict(),
        monitoring_gate(2).to_dict(),
    ]
    approval = Approval("dana", "<b>release</b> 7", "flags").to_dict()
    prod.add(
        DeploymentRecord("prod", prod.endpoint, version.version, version.arn, "promote", "canary",
                         "blocked: monitoring failed", at=2_000.0, gates=gates, approval=approval)
    )  # fmt: skip
    prod.add(
        DeploymentRecord("prod", prod.endpoint, version.version, version.arn, "rollback",
                         "all-at-once", "deployed", at=3_000.0, previous_version=4,
                         approval={"approved_by": "lee", "reason": "latency", "how": "rollback"})
    )  # fmt: skip
    with console_server(console_stack.source) as running:
        page = running.session().get(f"{running.base}/deployments").text
    for stage in ("default", "staging", "prod"):
        assert f'id="stage-{stage}"' in page
    assert config.endpoint_name("staging") in page
    prod_history = page.split('id="history-prod"')[1]
    rows = re.findall(r"<tr>(.*?)</tr>", prod_history, re.DOTALL)
    assert "rollback" in rows[1]  # newest first (the header row is rows[0])
    assert "from v4" in rows[1]
    assert "lee" in rows[1]
    assert "promote" in rows[2]
    assert "monitoring: FAILED" in rows[2]
    assert "2 open monitoring violation(s)" in rows[2]
    assert "health: passed" in rows[2]
    assert "dana" in rows[2]
    assert "&lt;b&gt;release&lt;/b&gt; 7" in rows[2]
    assert "blocked: monitoring failed" in rows[2]
    staging_history = page.split('id="history-staging"')[1].split('id="history-prod"')[0]
    assert "all-at-once" in staging_history
    assert "No deployment recorded" in page.split('id="history-default"')[1]


def test_a_shift_in_progress_shows_its_split_and_the_page_follows_it(tmp_settings, monkeypatch):
    shifting = StageStatus(
        True, "p-prod", "serving version 4", version=4, traffic=((4, 0.75), (5, 0.25))
    )
    steady = StageStatus(True, "p-staging", "serving version 5", version=5)
    stages = [
        StageOverview("staging", "p-staging", steady),
        StageOverview("prod", "p-prod", shifting),
    ]
    monkeypatch.setattr(Source, "stage_overview", lambda self: stages)
    source = Source(tmp_settings, Deployment.parse("local"))
    page = pages.build("deployments", source, {}, {})
    shown = pages.html(page, source, Links())
    assert page.refresh_seconds is not None
    prod = shown.split('id="stage-prod"')[1]
    assert "shifting traffic: v4 75% · v5 25%" in prod
    assert '<span style="width:25.0%">v5</span>' in prod
    assert "shifting" not in shown.split('id="stage-staging"')[1].split('id="stage-prod"')[0]
    stages.pop()
    assert pages.build("deployments", source, {}, {}).refresh_seconds is None
