"""What the pages read: the records the tasks use, through the same actions.

One ``Source`` per console: settings and target fixed at start. The execution records
are opened once and reused (on the local target a SQLite store, used from the one
thread that serves pages: see ``app``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings

if TYPE_CHECKING:
    from pipelines.backends.base import Backend


@dataclass
class Source:
    settings: Settings
    deployment: Deployment
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def target_label(self) -> str:
        return f"target {self.deployment.target} · env {self.deployment.env}"

    def backend(self) -> Backend:
        """The execution records (``invoke executions`` reads the same)."""
        if "backend" not in self._cache:
            from pipelines.actions import runs

            self._cache["backend"] = runs.records(self.settings, self.deployment)
        return self._cache["backend"]

    # The registry and the stages are read at each request (an approval or a deploy in a
    # terminal shows on the next load), through the actions the tasks use.

    def model_versions(self) -> Any:
        """Every version, newest first, with metrics and checks (`invoke models`)."""
        from pipelines.actions import models

        return models.list_versions(self.settings, self.deployment, None)

    def set_approval(self, version: int, approved: bool, reason: str) -> Any:
        """`invoke model-approve` / `model-reject`: the target's actor is the approver."""
        from pipelines.actions import models

        return models.set_approval(self.settings, self.deployment, version, approved, reason)

    def stage_overview(self) -> list[Any]:
        """What every stage serves, since when, its last change (`invoke deployments`)."""
        from pipelines.actions import endpoints

        return endpoints.overview(self.settings, self.deployment.target, self.deployment.env)

    def monitoring_history(self, stage: str) -> Any:
        """A stage's kept monitoring runs, oldest first (`invoke monitor-history`)."""
        from pipelines.actions import monitoring

        chosen = None if stage == "default" else stage
        # The console's env is the default stage's; on AWS a named stage is its own
        # environment, which an --env would contradict (see resolve_deployment).
        env = self.deployment.env if chosen is None else None
        return monitoring.history(self.settings, self.deployment.target, env, chosen)

    def automation(self, limit: int = 100) -> tuple[Any, list[Any]]:
        """The agent's status and its newest actions, newest first (`automation-log`)."""
        from pipelines.actions import automation

        return automation.agent_status(self.settings), automation.action_log(self.settings, limit)
