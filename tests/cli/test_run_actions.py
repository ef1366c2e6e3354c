"""The pipeline tasks' actions without invoke: following a step's log (no server)."""

from __future__ import annotations

import time

from pipelines.actions import runs
from pipelines.backends.local import LocalBackend
from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings
from pipelines.core.records import Execution, StepRun


def test_following_a_log_prints_what_the_job_adds_until_the_step_ends(tmp_path, monkeypatch):
    # No worker process runs here: the record stands for a live one.
    monkeypatch.setattr(LocalBackend, "_worker_alive", lambda self, execution: True)
    settings = Settings.load(None, environ={"MLOPS_STATE_DIR": str(tmp_path)})
    backend = LocalBackend(settings, None)
    log = tmp_path / "job.log"
    log.write_text("epoch 1\n")
    backend.store.insert_execution(
        Execution("run123456789", "arn:x/run123456789", "p", "Executing", time.time())
    )
    step = StepRun("TrainModel", "Training", "Executing", time.time(), log_path=str(log))
    backend.store.upsert_step("run123456789", step)
    opened = runs.open_step_log(settings, Deployment.parse("local"), "run123456789", None)
    assert opened.step.name == "TrainModel"

    def job_goes_on(_: float) -> None:
        # While the task waits, the job writes more and then the step ends.
        with log.open("a") as handle:
            handle.write("epoch 2\n")
        if "epoch 2\nepoch 2" in log.read_text():
            step.status, step.ended_at = "Succeeded", time.time()
            backend.store.upsert_step("run123456789", step)

    printed = list(runs.log_text(opened, follow=True, sleep=job_goes_on))
    assert "".join(printed) == "epoch 1\nepoch 2\nepoch 2\n"
    # Without --follow: what is there, once.
    assert list(runs.log_text(opened)) == ["epoch 1\nepoch 2\nepoch 2\n"]


def test_a_cached_steps_log_is_the_log_of_the_run_it_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(LocalBackend, "_worker_alive", lambda self, execution: True)
    settings = Settings.load(None, environ={"MLOPS_STATE_DIR": str(tmp_path)})
    backend = LocalBackend(settings, None)
    log = tmp_path / "job.log"
    log.write_text("trained 100 trees\n")
    now = time.time()
    for execution_id in ("first0000000", "second000000"):
        backend.store.insert_execution(
            Execution(execution_id, f"arn:x/{execution_id}", "p", "Succeeded", now, ended_at=now)
        )
    ran = StepRun("TrainModel", "Training", "Succeeded", now, now, log_path=str(log))
    backend.store.upsert_step("first0000000", ran)
    hit = StepRun("TrainModel", "Training", "Succeeded", now, now, cache_hit_of="first0000000")
    backend.store.upsert_step("second000000", hit)
    opened = runs.open_step_log(settings, Deployment.parse("local"), "second000000", "TrainModel")
    assert opened.execution.execution_id == "first0000000"
    assert opened.reused_by == "second000000"
    assert list(runs.log_text(opened)) == ["trained 100 trees\n"]
