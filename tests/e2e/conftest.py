"""One applied local stack for the end-to-end tests: a fresh emulator, its own state dir."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.backends.local import LocalBackend
from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import Settings
from pipelines.core.records import Execution
from pipelines.definition.parameters import check_arguments
from pipelines.launch import prepare as run
from pipelines.monitoring.local_schedule import stop_schedules
from pipelines.serving import deploy
from pipelines.stack import stacks as infra
from pipelines.stack.stacks import emulator_for
from pipelines.targets import ensure_local_stack
from tests.support import free_port, invoke_task, project_mlops_config


@dataclass
class LocalStack:
    settings: Settings
    stack: infra.Stack
    config: InfraConfig
    backend: LocalBackend

    def run(self, params: list[str] | None = None, data: str | None = None) -> Execution:
        """What `invoke pipeline-run` does, without the terminal view."""
        overrides = check_arguments(params or [], data)
        prepared = run.prepare_run(self.stack.connection, self.config, overrides, data)
        execution = self.backend.start(prepared)
        return self.backend.wait(execution.execution_id, timeout=300)

    def model_packages(self) -> list[str]:
        sagemaker = self.stack.connection.client("sagemaker")
        pages = sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=self.config.model_package_group_name
        )
        return [p["ModelPackageArn"] for page in pages for p in page["ModelPackageSummaryList"]]

    def steps(self, execution: Execution) -> dict:
        return {s.name: s for s in self.backend.steps(execution.execution_id)}

    def invoke(self, *args: str) -> subprocess.CompletedProcess[str]:
        return invoke_task(
            *args,
            state_dir=self.settings.state_dir,
            port=self.settings.emulator_port,
            # Wide enough that no table cell folds: assertions read whole phrases.
            extra_env={"MLOPS_ENDPOINT_PORT": str(self.settings.endpoint_port), "COLUMNS": "400"},
        )


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir: Path = tmp_path_factory.mktemp("e2e-state")
    # invoke.yaml's pipelines, as the tasks the tests start read them: both are applied.
    settings = Settings.load(
        project_mlops_config(),
        environ={
            **os.environ,
            "MLOPS_STATE_DIR": str(state_dir),
            "MLOPS_EMULATOR_PORT": str(free_port()),
            "MLOPS_ENDPOINT_PORT": str(free_port()),
        },
    )
    try:
        ready = ensure_local_stack(settings)
    except BaseException:
        # The apply failed after the emulator started: nothing may outlive the session.
        emulator_for(settings).stop()
        raise
    stack, config = ready.stack, ready.config
    try:
        yield LocalStack(settings, stack, config, LocalBackend(settings, stack.connection))
    finally:
        # A test that failed half-way may leave the endpoint's servers running.
        for stage in (None, *deploy.STAGES):
            deploy.local_endpoint(
                settings, stack.connection, config, deploy.DeploySettings(), stage
            ).down()
        stop_schedules(settings.state_dir)  # and a monitoring schedule
        assert stack.emulator is not None
        stack.emulator.stop()


@pytest.fixture(scope="session")
def diabetes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's bundled diabetes data as CSV, target column ``target``."""
    from sklearn.datasets import load_diabetes

    path = tmp_path_factory.mktemp("diabetes") / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path
