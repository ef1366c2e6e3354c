"""The target map: the one place that decides what differs between the targets.

``local`` is the moto emulator on 127.0.0.1 plus the local executor and endpoint;
``aws`` is a real account with SageMaker. Everything above this module asks
:func:`target_for` and calls the same methods on either; everything below it
receives what it needs (a connection, a backend, a flag) and never asks which
target it runs on.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.backends.base import Backend
from pipelines.backends.local import LocalBackend
from pipelines.backends.sagemaker import SageMakerBackend
from pipelines.config.deployment import Deployment, TargetName
from pipelines.config.infra_config import InfraConfig
from pipelines.config.monitoring_settings import MonitoringSettings
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.launch.runtime_build import start_runtime_build
from pipelines.monitoring import sagemaker_schedule
from pipelines.monitoring.capture_reader import describe_duration
from pipelines.monitoring.execution import deployed_model
from pipelines.monitoring.local_schedule import LocalSchedule
from pipelines.serving import deploy
from pipelines.serving.deploy import check_stage
from pipelines.serving.deployer import StageDeployer
from pipelines.serving.local_deployer import LocalDeployer
from pipelines.serving.sagemaker_deployer import SageMakerDeployer
from pipelines.stack.stacks import (
    Stack,
    UpResult,
    emulator_for,
    infra_lock,
    infra_up,
    open_account_stack,
    open_emulator_stack,
    pipeline_view,
    read_infra_config,
    read_outputs_from_state,
)
from pipelines.teardown import AwsTeardown, DestroyResult, LocalTeardown, Teardown

Notify = Callable[[str], None]


@dataclass(frozen=True)
class Ready:
    """A stack ready for a run: applied, with its outputs read."""

    stack: Stack
    config: InfraConfig
    up: UpResult | None = None


class Target(Protocol):
    """Only what truly differs between the targets; the rest is shared code."""

    name: TargetName
    # Ctrl-C while following a run: stop it at once (the job is ours), or ask first.
    asks_before_stopping: bool
    # A monitoring schedule set up with each deploy that waits for the endpoint (AWS:
    # hourly, as SageMaker's own projects do); None: monitoring runs when asked.
    monitoring_on_deploy: timedelta | None
    # The EventBridge rules' events are acted on by the local automation agent (its log is
    # the record of what they did); False: the rules act by themselves in the account.
    automation_agent: bool

    def open_stack(
        self,
        settings: Settings,
        deployment: Deployment,
        *,
        start: bool = False,
        on_output: Notify | None = None,
    ) -> Stack:
        """How to reach the deployment; ``start``: whatever must run to change it."""

    def outputs_from_state(self, settings: Settings, deployment: Deployment) -> InfraConfig:
        """The Terraform outputs, read from the state alone."""

    def ready_for_run(
        self, settings: Settings, deployment: Deployment, *, notify: Notify, on_output: Notify
    ) -> Ready:
        """The stack a pipeline-run starts on, brought up as far as this target does."""

    def backend(self, stack: Stack, config: InfraConfig) -> Backend: ...

    def records(self, settings: Settings, deployment: Deployment) -> Backend:
        """A backend for reading executions, as cheaply as the target allows."""

    def actor(self, stack: Stack) -> str:
        """Who is acting, as recorded with approvals and deployments."""

    def stage_deployment(
        self, deployment: Deployment, stage: str | None, env: str | None = None
    ) -> Deployment:
        """Where a stage lives: locally every stage shares the one emulator; on AWS a
        stage is its own Terraform environment."""

    def deployer(
        self, settings: Settings, stack: Stack, config: InfraConfig, stage: str | None
    ) -> StageDeployer: ...

    def stage_key(self, stage: str | None) -> str | None:
        """Which of the outputs' per-stage names (``endpoint_names``,
        ``monitoring_schedule_names``) are a stage's: None for the environment's own."""

    def schedule_monitoring(
        self,
        settings: Settings,
        stack: Stack,
        config: InfraConfig,
        every: timedelta | None,
        stage: str | None = None,
    ) -> str:
        """Run data-quality monitoring of a stage's endpoint every ``every``; None: stop
        it. Returns what was done, for the user."""

    def teardown(self) -> Teardown:
        """What `destroy` does on this target besides the shared steps."""


class LocalTarget:
    name: TargetName = "local"
    asks_before_stopping = False
    monitoring_on_deploy = None  # local monitoring runs when asked: `invoke monitor-schedule`
    automation_agent = True  # the emulator cannot start a pipeline from a rule

    def open_stack(
        self,
        settings: Settings,
        deployment: Deployment,
        *,
        start: bool = False,
        on_output: Notify | None = None,
    ) -> Stack:
        return open_emulator_stack(settings, deployment, start_emulator=start, on_output=on_output)

    def outputs_from_state(self, settings: Settings, deployment: Deployment) -> InfraConfig:
        return read_outputs_from_state(settings, deployment, local_state=True)

    def ready_for_run(
        self, settings: Settings, deployment: Deployment, *, notify: Notify, on_output: Notify
    ) -> Ready:
        # The job runtime builds while Terraform applies; a missing Python is
        # reported before either starts.
        runtime_build = start_runtime_build(settings, notify)
        ready = self.ensure_applied(settings, deployment, on_output)
        if ready.up is not None:
            notify(f"Local infrastructure applied: {ready.up.timing()}.")
        if runtime_build is not None:
            runtime_build.result()  # a failed build is reported here, before uploads
        return ready

    def ensure_applied(
        self, settings: Settings, deployment: Deployment, on_output: Notify | None = None
    ) -> Ready:
        """The local stack, applied; ``up`` is infra-up's result when it had to run.

        Serialised on the infrastructure lock: of two concurrent cold runs, the second
        waits, then finds the stack applied and goes on without touching Terraform."""
        with infra_lock(settings, deployment):
            if emulator_for(settings).status().running:
                stack = self.open_stack(settings, deployment)
                try:
                    config = read_infra_config(stack)
                    stack.connection.client("s3").head_bucket(Bucket=config.bucket_name)
                    return Ready(stack, config)
                except (MlopsError, ClientError, BotoCoreError):
                    pass  # not applied yet, or applied to an emulator since reset
            stack = self.open_stack(settings, deployment, start=True, on_output=on_output)
            result = infra_up(stack)
            return Ready(stack, pipeline_view(stack, result.outputs), result)

    def backend(self, stack: Stack, config: InfraConfig) -> Backend:
        return LocalBackend(stack.settings, stack.connection)

    def records(self, settings: Settings, deployment: Deployment) -> Backend:
        # The executor's own records live in SQLite: reading them needs neither
        # Terraform nor the emulator, so a poll costs milliseconds.
        return LocalBackend(settings, None)

    def actor(self, stack: Stack) -> str:
        # The emulator knows one key per checkout, not people: name the person.
        return getpass.getuser()

    def stage_deployment(
        self, deployment: Deployment, stage: str | None, env: str | None = None
    ) -> Deployment:
        return deployment  # every stage is an endpoint of its own in the one emulator

    def deployer(
        self, settings: Settings, stack: Stack, config: InfraConfig, stage: str | None
    ) -> StageDeployer:
        return LocalDeployer(settings, stack, config, stage)

    def stage_key(self, stage: str | None) -> str | None:
        return stage  # each stage has an endpoint of its own beside the default one

    def schedule_monitoring(
        self,
        settings: Settings,
        stack: Stack,
        config: InfraConfig,
        every: timedelta | None,
        stage: str | None = None,
    ) -> str:
        # A background process of our own, as long as the endpoint runs.
        endpoint = deploy.local_endpoint(settings, stack.connection, config, stage=stage)
        schedule = LocalSchedule(settings.state_dir, endpoint.name)
        if every is None:
            return "schedule stopped" if schedule.stop() else "no schedule was running"
        if not endpoint.status().running:
            raise MlopsError(f"The local endpoint {endpoint.name} is not running: deploy first.")
        running = schedule.start(settings, every, stage)
        return f"monitoring {endpoint.name} every {describe_duration(every)} (pid {running['pid']})"

    def teardown(self) -> Teardown:
        return LocalTeardown()


class AwsTarget:
    name: TargetName = "aws"
    asks_before_stopping = True
    monitoring_on_deploy = timedelta(hours=1)
    automation_agent = False  # the rules start the pipeline, builds, and notify themselves

    def open_stack(
        self,
        settings: Settings,
        deployment: Deployment,
        *,
        start: bool = False,
        on_output: Notify | None = None,
    ) -> Stack:
        return open_account_stack(settings, deployment, on_output=on_output)

    def outputs_from_state(self, settings: Settings, deployment: Deployment) -> InfraConfig:
        return read_outputs_from_state(settings, deployment, local_state=False)

    def ready_for_run(
        self, settings: Settings, deployment: Deployment, *, notify: Notify, on_output: Notify
    ) -> Ready:
        # Credentials are verified here, before anything is uploaded; an AWS stack
        # is applied on purpose (infra-up), never as a side effect of a run.
        stack = self.open_stack(settings, deployment)
        return Ready(stack, read_infra_config(stack))

    def backend(self, stack: Stack, config: InfraConfig) -> Backend:
        return SageMakerBackend(
            stack.connection, config, studio_domain_id=stack.settings.studio_domain_id
        )

    def records(self, settings: Settings, deployment: Deployment) -> Backend:
        stack = self.open_stack(settings, deployment)
        return self.backend(stack, read_infra_config(stack))

    def actor(self, stack: Stack) -> str:
        try:
            return str(stack.connection.client("sts").get_caller_identity()["Arn"])
        except (ClientError, BotoCoreError):
            return getpass.getuser()

    def stage_deployment(
        self, deployment: Deployment, stage: str | None, env: str | None = None
    ) -> Deployment:
        if stage is None:
            return deployment
        if env not in (None, "", stage):
            raise MlopsError(
                f"--stage {stage} deploys to the Terraform environment {stage!r}; "
                f"it cannot be combined with --env {env}."
            )
        return Deployment.parse("aws", stage)

    def deployer(
        self, settings: Settings, stack: Stack, config: InfraConfig, stage: str | None
    ) -> StageDeployer:
        return SageMakerDeployer(settings, stack, config, stage)

    def stage_key(self, stage: str | None) -> str | None:
        return None  # a stage is its own environment: its names are the environment's

    def schedule_monitoring(
        self,
        settings: Settings,
        stack: Stack,
        config: InfraConfig,
        every: timedelta | None,
        stage: str | None = None,
    ) -> str:
        # A SageMaker monitoring schedule on the endpoint, with the analyzer image; a
        # stage is its own environment here, so its endpoint is the environment's.
        sagemaker = stack.connection.sagemaker()
        if every is None:
            removed = sagemaker_schedule.remove_schedules(sagemaker, config)
            return f"deleted {removed} monitoring schedule(s)"
        state = sagemaker_schedule.ensure_schedule(
            sagemaker,
            config,
            deployed_model(stack.connection, config),
            MonitoringSettings.from_settings(settings),
            every=every,
        )
        verb = "created" if state.created else "updated"
        return (
            f"{verb} {state.schedule} ({state.expression}, job definition {state.job_definition})"
        )

    def teardown(self) -> Teardown:
        return AwsTeardown()


TARGET_MAP: dict[TargetName, Target] = {"local": LocalTarget(), "aws": AwsTarget()}


def target_for(deployment: Deployment) -> Target:
    return TARGET_MAP[deployment.target]


def open_stack(
    settings: Settings,
    deployment: Deployment,
    *,
    start_emulator: bool = False,
    on_output: Notify | None = None,
) -> Stack:
    """The deployment's stack, through its target."""
    return target_for(deployment).open_stack(
        settings, deployment, start=start_emulator, on_output=on_output
    )


def destroy_stack(stack: Stack, on_stop: Notify | None = None) -> DestroyResult:
    """Destroy an open stack with its target's teardown (tests and benchmarks)."""
    target = target_for(stack.deployment)
    return target.teardown().destroy(stack, target.backend, on_stop)


def open_target(settings: Settings, deployment: Deployment) -> tuple[Stack, InfraConfig, Backend]:
    """An existing deployment's stack, outputs and backend (nothing is applied)."""
    target = target_for(deployment)
    stack = target.open_stack(settings, deployment)
    config = read_infra_config(stack)
    return stack, config, target.backend(stack, config)


def ensure_local_stack(settings: Settings, on_output: Notify | None = None) -> Ready:
    """The local stack, applied if it was not (for tests and benchmarks that run on it)."""
    local = Deployment.parse("local")
    return LocalTarget().ensure_applied(settings, local, on_output)


def resolve_deployment(target: str | None, env: str | None, stage: str | None) -> Deployment:
    """Where a stage lives, through its target."""
    chosen = Deployment.parse(target, env)
    return target_for(chosen).stage_deployment(chosen, check_stage(stage), env)


def open_deployer(
    settings: Settings,
    target: str | None = None,
    env: str | None = None,
    stage: str | None = None,
    *,
    wait: bool = True,
) -> StageDeployer:
    """The deployer of a stage on its target; reads the stack's outputs only."""
    stage = check_stage(stage)
    where = resolve_deployment(target, env, stage)
    target_ = target_for(where)
    stack, config, backend = open_target(settings, where)
    deployer = target_.deployer(settings, stack, config, stage)
    deployer.pipeline_backend = backend
    deployer.wait = wait
    return deployer
