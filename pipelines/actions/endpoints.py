"""The endpoint tasks: deploy a stage, its status, take it down, predict, history, rollback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.serving.deploy import STAGES
from pipelines.serving.deployer import Rollout, StageStatus
from pipelines.serving.deployment_records import DeploymentRecord
from pipelines.serving.predict import Predictions
from pipelines.targets import open_deployer, target_for


def deploy(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None,
    version: int | None,
    strategy: str | None,
    wait: bool,
) -> tuple[Rollout, list[str]]:
    """Roll an Approved version out blue/green; where the target monitors what it deploys
    (AWS: an hourly schedule), set that up once the endpoint serves. Returns the lines
    to show."""
    deployer = open_deployer(settings, target, env, stage, wait=wait)
    rollout = deployer.deploy(version, strategy)
    lines = [rollout.message]
    chosen = target_for(deployer.stack.deployment)
    if chosen.monitoring_on_deploy is not None and wait:
        detail = chosen.schedule_monitoring(
            settings, deployer.stack, deployer.config, chosen.monitoring_on_deploy, stage
        )
        lines.append(f"Monitoring schedule: {detail}")
    return rollout, lines


def status(
    settings: Settings, target: str | None, env: str | None, stage: str | None
) -> StageStatus:
    return open_deployer(settings, target, env, stage).status()


def take_down(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None,
    confirm: Callable[[str], None],
) -> str:
    """Remove a stage's endpoint and what monitors it (SageMaker refuses to delete an
    endpoint with schedules); ``confirm`` raises to cancel where cloud resources go."""
    deployer = open_deployer(settings, target, env, stage)
    if deployer.needs_confirmation:
        confirm(f"Delete the endpoint {deployer.endpoint}?")
    chosen = target_for(deployer.stack.deployment)
    chosen.schedule_monitoring(settings, deployer.stack, deployer.config, None, stage)
    return deployer.down()


def check_output_file(output: Path) -> Path:
    """Where `predict --output` writes, checked before any row is sent."""
    if output.is_dir():
        raise MlopsError(
            f"--output {output} is a folder: name a file in it, e.g. {output / 'predictions.csv'}."
        )
    if not output.parent.is_dir():
        raise MlopsError(
            f"--output {output}: the folder {output.parent} does not exist; create it or name "
            "a file in an existing folder. Nothing was sent."
        )
    return output


def predict(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None,
    data: Path,
    inference_id_column: str | None,
    output: Path | None = None,
) -> tuple[Predictions, int]:
    """Send the file's rows to the stage's endpoint; with ``output``, write every
    prediction there (checked before anything is sent)."""
    if not data.is_file():
        raise MlopsError(f"Data file {data} does not exist (or is not a file).")
    if output is not None:
        check_output_file(output)
    result, version = open_deployer(settings, target, env, stage).predict(data, inference_id_column)
    if output is not None:
        output.write_text("prediction\n" + "".join(f"{v!r}\n" for v in result.values))
    return result, version


def history(
    settings: Settings, target: str | None, env: str | None, stage: str | None
) -> tuple[str, list[DeploymentRecord]]:
    """(the endpoint, its deployment records, newest first)."""
    deployer = open_deployer(settings, target, env, stage)
    return deployer.endpoint, deployer.history()[::-1]


@dataclass(frozen=True)
class StageOverview:
    """What one stage serves, since when, and its last recorded change."""

    stage: str
    endpoint: str | None = None
    status: StageStatus | None = None
    since: DeploymentRecord | None = None  # the deployment that made it serve this version
    last: DeploymentRecord | None = None  # the newest record, whatever its outcome
    problem: str | None = None  # why the stage could not be read
    history: tuple[DeploymentRecord, ...] = ()  # every record, newest first (the console)


def overview(settings: Settings, target: str | None, env: str | None) -> list[StageOverview]:
    """`deployments` without --stage: every stage, the environment's own endpoint first."""
    found = []
    for stage in (None, *STAGES):
        label = stage or "default"
        try:
            # ``env`` is the environment's own endpoint; on AWS a stage is an environment
            # of its own, which --env would contradict (see resolve_deployment).
            deployer = open_deployer(settings, target, env if stage is None else None, stage)
            status, records = deployer.status(), deployer.history()
        except MlopsError as error:
            found.append(StageOverview(label, problem=str(error)))
            continue
        deployed = [r for r in records if r.deployed and r.version == status.version]
        found.append(
            StageOverview(
                label,
                deployer.endpoint,
                status,
                deployed[-1] if deployed and status.running else None,
                records[-1] if records else None,
                history=tuple(records[::-1]),
            )
        )
    return found


def rollback(
    settings: Settings,
    target: str | None,
    env: str | None,
    stage: str | None,
    reason: str | None = None,
) -> Rollout:
    """Return a stage to its previous version, recording who and why."""
    deployer = open_deployer(settings, target, env, stage)
    who = target_for(deployer.stack.deployment).actor(deployer.stack)
    why = (reason or "").strip() or "no reason given"
    return deployer.rollback({"approved_by": who, "reason": why, "how": "rollback"})
