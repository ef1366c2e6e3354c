"""Staging, then prod: the promotion flow on the local target, as a user and a CI job
drive it. One applied stack and two trained versions serve every test here (runs are
slow); each test first puts the stages in the state it needs."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator

import pytest

from pipelines.config.settings import PROJECT_ROOT
from pipelines.promotion.approval import Approval
from pipelines.promotion.promote import GateFailure, promote
from pipelines.registry import APPROVED, ModelVersion, Registry
from pipelines.serving.deploy import stage_port
from pipelines.targets import open_deployer
from tests.support import ClientLoop

pytestmark = pytest.mark.e2e

SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
# A small bounded load keeps the gates quick; the SLO is generous for a shared machine.
QUICK_GATES = {"load_requests": 40, "load_clients": 2, "p99_slo_ms": 2000}


def output(result) -> str:
    return f"{result.stdout} {result.stderr}"


@pytest.fixture(scope="module")
def versions(local_stack) -> Iterator[tuple[ModelVersion, ModelVersion]]:
    """Two versions from two real pipeline runs, both Approved. The stages' endpoints are
    taken down afterwards: the stack is shared with the other end-to-end tests."""
    registry = Registry(local_stack.stack.connection, local_stack.config.model_package_group_name)
    found = []
    for _ in range(2):
        execution = local_stack.run()
        assert execution.status == "Succeeded"
        version = registry.get()
        found.append(registry.set_status(version.version, APPROVED, "for promotion", "pytest"))
    yield found[0], found[1]
    for stage in ("staging", "prod"):
        deployer(local_stack, stage).down()


def deployer(local_stack, stage: str, **settings):
    configured = dataclasses.replace(local_stack.settings, **settings)
    return open_deployer(configured, "local", None, stage)


def serve(local_stack, stage: str, version: ModelVersion) -> None:
    """Make ``stage`` serve ``version`` (a blue/green deploy when it serves another)."""
    stage_deployer = deployer(local_stack, stage)
    if stage_deployer.status().version != version.version:
        stage_deployer.deploy(version.version)


def outcomes(local_stack) -> list[tuple[int, str, str]]:
    return [(r.version, r.kind, r.outcome) for r in deployer(local_stack, "prod").history()]


def approve_as(name: str, reason: str):
    return lambda results, version: Approval(name, reason, "flags")


def test_full_flow_deploys_to_staging_then_promotes_to_prod(local_stack, versions):
    first, _ = versions
    number = str(first.version)
    deployed = local_stack.invoke("deploy", "--stage", "staging", "--version", number)
    assert deployed.returncode == 0, output(deployed)
    staging_port = stage_port(local_stack.settings, "staging")
    assert f"Version {number} serving at http://127.0.0.1:{staging_port}/invocations" in (
        deployed.stdout
    )

    promoted = local_stack.invoke(
        "promote", "--from", "staging", "--to", "prod",
        "--approved-by", "release-bot", "--reason", "nightly promotion",
    )  # fmt: skip
    assert promoted.returncode == 0, output(promoted)
    report = promoted.stdout
    assert f"Promotion gates: version {number} on staging" in report
    for gate in ("health │ passed", "accuracy │ passed", "load │ passed", "monitoring │ skipped"):
        assert gate in report
    assert "RMSE" in report
    assert "Approved by release-bot (flags): nightly promotion" in report
    assert f"Promoted version {number} to prod (all-at-once)" in report

    predicted = local_stack.invoke("predict", "--stage", "prod", "--data", str(SAMPLE))
    assert predicted.returncode == 0, output(predicted)
    assert f"Predictions of model version {number}" in predicted.stdout
    status = local_stack.invoke("endpoint-status", "--stage", "prod")
    assert status.returncode == 0, output(status)
    prod_port = stage_port(local_stack.settings, "prod")
    assert f"127.0.0.1:{prod_port}: serving version {number}" in status.stdout
    # The environment's own endpoint is another one, untouched by stages.
    default = local_stack.invoke("endpoint-status")
    assert default.returncode == 3

    (record,) = deployer(local_stack, "prod").history()
    assert (record.version, record.kind, record.strategy, record.outcome) == (
        first.version, "promote", "all-at-once", "deployed",
    )  # fmt: skip
    assert record.approval["approved_by"] == "release-bot"
    assert [g["name"] for g in record.gates if g["passed"]] == [
        "health", "accuracy", "load", "monitoring",
    ]  # fmt: skip
    history = local_stack.invoke("deployments", "--stage", "prod")
    assert "release-bot: nightly promotion" in history.stdout
    assert "health ok, accuracy ok, load ok, monitoring skipped" in history.stdout


def test_without_a_terminal_or_flags_nothing_is_promoted(local_stack, versions):
    before = outcomes(local_stack)
    refused = local_stack.invoke("promote", "--from", "staging", "--to", "prod")
    assert refused.returncode == 1
    assert "run it at a terminal to confirm, or pass --approved-by NAME" in output(refused)
    assert outcomes(local_stack) == before


def test_a_failed_gate_leaves_prod_untouched_and_names_the_figures(local_stack, versions):
    first, second = versions
    serve(local_stack, "prod", first)
    serve(local_stack, "staging", second)
    prod = deployer(local_stack, "prod")
    before = len(prod.history())

    # An impossible latency SLO.
    impossible = dataclasses.replace(
        local_stack.settings, promotion={**QUICK_GATES, "p99_slo_ms": 0.001}
    )
    with pytest.raises(GateFailure, match=r"load \(p99 [0-9.]+ ms is over the SLO of 0.001 ms"):
        promote(
            impossible, from_stage="staging", to_stage="prod",
            approve=lambda *_: pytest.fail("a failed gate must not ask for approval"),
        )  # fmt: skip
    assert prod.status().version == first.version

    # Staging's predictions no longer match what the version's evaluation registered.
    s3 = local_stack.stack.connection.client("s3")
    bucket, key = second.report_uri.removeprefix("s3://").split("/", 1)
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    report = json.loads(original)
    report["regression_metrics"]["rmse"]["value"] += 1.0
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(report).encode())
    try:
        blocked = local_stack.invoke(
            "promote", "--from", "staging", "--to", "prod", "--approved-by", "x", "--reason", "y"
        )
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)
    assert blocked.returncode == 1
    assert "accuracy │ FAILED" in blocked.stdout
    assert "Promotion blocked, prod untouched: failed gate(s): accuracy (differs from the " in (
        output(blocked)
    )
    assert prod.status().version == first.version
    assert outcomes(local_stack)[before:] == [
        (second.version, "promote", "blocked: load gate failed"),
        (second.version, "promote", "blocked: accuracy gate failed"),
    ]


def test_a_canary_splits_real_traffic_with_no_failed_request(local_stack, versions):
    first, second = versions
    serve(local_stack, "prod", first)
    serve(local_stack, "staging", second)
    canary = dataclasses.replace(
        local_stack.settings,
        deploy={"strategy": "canary", "canary_percent": 30, "canary_wait_seconds": 8},
        promotion=QUICK_GATES,
    )
    with ClientLoop(stage_port(local_stack.settings, "prod"), clients=3) as clients:
        done = promote(
            canary, from_stage="staging", to_stage="prod",
            approve=approve_as("pytest", "canary test"),
        )  # fmt: skip
    assert clients.failures() == []
    seen = clients.versions()
    old, new = str(first.version), str(second.version)
    assert seen[-1] == new
    # While both serve (from the first new answer to the last old one), the new
    # version's share is the canary's 30 %, give or take what a few hundred draws vary.
    start = seen.index(new)
    end = len(seen) - 1 - seen[::-1].index(old)
    during = seen[start : end + 1]
    assert len(during) > 100
    assert during.count(new) / len(during) == pytest.approx(0.30, abs=0.12)
    assert done.rollout.record.strategy == "canary"
    assert outcomes(local_stack)[-1] == (second.version, "promote", "deployed")
    assert deployer(local_stack, "prod").history()[-1].approval["reason"] == "canary test"


def test_rollback_returns_prod_to_its_previous_version_with_no_failed_request(
    local_stack, versions
):
    first, second = versions
    serve(local_stack, "prod", second)
    with ClientLoop(stage_port(local_stack.settings, "prod"), clients=3) as clients:
        time.sleep(0.5)
        rolled = local_stack.invoke("rollback", "--stage", "prod", "--reason", "p99 doubled")
    assert rolled.returncode == 0, output(rolled)
    assert f"Rolled back to version {first.version}." in rolled.stdout
    assert clients.failures() == []
    assert clients.versions()[-1] == str(first.version)
    assert str(second.version) in clients.versions()
    record = deployer(local_stack, "prod").history()[-1]
    assert (record.version, record.kind, record.previous_version, record.outcome) == (
        first.version, "rollback", second.version, "deployed",
    )  # fmt: skip
    assert record.approval["reason"] == "p99 doubled"
    history = local_stack.invoke("deployments", "--stage", "prod")
    assert f"rollback (from v{second.version})" in history.stdout
    assert ": p99 doubled" in history.stdout  # who, and why
    # Newest first: the rollback before the promotions it undid.
    assert history.stdout.index("rollback (from") < history.stdout.index("promote")
    overview = local_stack.invoke("deployments")
    assert overview.returncode == 0, output(overview)
    assert f"prod │ version {first.version} │" in overview.stdout
    assert f"rollback of v{first.version}, deployed" in overview.stdout
    assert "│ default │" in overview.stdout


def test_monitoring_a_stage_feeds_its_promotion_gate(local_stack, versions):
    first, second = versions
    serve(local_stack, "prod", first)
    serve(local_stack, "staging", second)
    started = time.monotonic()
    sent = local_stack.invoke("predict", "--stage", "staging", "--data", str(SAMPLE))
    assert sent.returncode == 0, output(sent)
    assert "Showed 20 of 506 predictions" in sent.stdout
    staging = local_stack.config.endpoint_name("staging")
    wanted = f"Data quality of {staging} (version {second.version}): 506 captured rows"
    # The front ships the capture to S3 in the background (a second or two; longer on a
    # busy machine): monitor again until all of it is there.
    deadline = time.monotonic() + 60
    while True:
        time.sleep(2)
        # + 2: records are stamped in whole seconds, up to a second before they were made.
        window = f"{int(time.monotonic() - started) + 2}s"
        monitored = local_stack.invoke("monitor", "--stage", "staging", "--since", window)
        assert monitored.returncode == 0, output(monitored)
        if wanted in monitored.stdout or time.monotonic() > deadline:
            break
    assert wanted in monitored.stdout
    history = local_stack.invoke("monitor-history", "--stage", "staging")
    assert f"│ {second.version} │ 506 │ 0 │" in history.stdout

    quick = dataclasses.replace(local_stack.settings, promotion=QUICK_GATES)
    done = promote(
        quick, from_stage="staging", to_stage="prod", approve=approve_as("pytest", "monitored"),
    )  # fmt: skip
    gate = next(g for g in done.gates if g.name == "monitoring")
    assert (gate.passed, gate.skipped, gate.figures) == (True, False, {"open_violations": 0})


def test_promotion_refuses_to_go_backward_or_downgrade_without_being_asked(local_stack, versions):
    first, second = versions
    serve(local_stack, "prod", second)
    serve(local_stack, "staging", first)
    before = outcomes(local_stack)
    backward = local_stack.invoke(
        "promote", "--from", "prod", "--to", "staging", "--approved-by", "ci", "--reason", "x"
    )
    assert backward.returncode == 1
    assert "goes backward along the stages (staging → prod)" in backward.stderr
    downgrade = local_stack.invoke(
        "promote", "--from", "staging", "--to", "prod", "--approved-by", "ci", "--reason", "x"
    )
    assert downgrade.returncode == 1
    assert f"prod serves version {second.version}, newer than version {first.version}" in (
        downgrade.stderr
    )
    assert "--allow-downgrade" in downgrade.stderr
    assert outcomes(local_stack) == before  # nothing recorded, nothing moved
    assert deployer(local_stack, "prod").status().version == second.version


def test_predict_on_a_stage_that_serves_nothing_names_its_endpoint_and_command(
    local_stack, versions, tmp_path
):
    deployer(local_stack, "staging").down()
    refused = local_stack.invoke("predict", "--stage", "staging", "--data", str(SAMPLE))
    assert refused.returncode == 1
    staging = local_stack.config.endpoint_name("staging")
    assert f"The staging endpoint {staging} is not serving" in refused.stderr
    assert "`invoke deploy --stage staging` first" in refused.stderr
