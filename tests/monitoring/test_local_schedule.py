"""The local schedule's process: one per endpoint, stopped on request, and gone by itself
when the endpoint is not running (fast tier: a real child process, no server)."""

from __future__ import annotations

import time
from datetime import timedelta

import psutil

from pipelines.config.settings import Settings
from pipelines.monitoring.local_schedule import (
    LocalSchedule,
    settings_document,
    settings_from_document,
    stop_schedules,
)


def settings_for(tmp_path) -> Settings:
    return Settings.load(None, environ={"MLOPS_STATE_DIR": str(tmp_path)})


def test_settings_travel_to_the_process_unchanged(tmp_path):
    settings = settings_for(tmp_path)
    assert settings_from_document(settings_document(settings)) == settings


def test_a_schedule_is_replaced_stopped_and_found_by_stop_schedules(tmp_path):
    settings = settings_for(tmp_path)
    schedule = LocalSchedule(tmp_path, "ep")
    first = schedule.start(settings, timedelta(hours=1))
    second = schedule.start(settings, timedelta(hours=1))  # a new interval replaces it
    assert (
        not psutil.pid_exists(first["pid"])
        or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    assert schedule.status()["pid"] == second["pid"]
    assert stop_schedules(tmp_path) == 1
    assert schedule.status() is None
    assert not schedule.record.exists()


def test_a_schedule_ends_when_its_endpoint_is_not_running(tmp_path):
    schedule = LocalSchedule(tmp_path, "ep")
    running = schedule.start(settings_for(tmp_path), timedelta(seconds=1))
    deadline = time.monotonic() + 20
    while schedule.status() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert schedule.status() is None
    assert (
        not psutil.pid_exists(running["pid"])
        or psutil.Process(running["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    assert "the endpoint is not running: schedule ends" in schedule.log.read_text()


def test_a_stages_schedule_watches_that_stage(tmp_path):
    schedule = LocalSchedule(tmp_path, "p-local-staging-endpoint")
    try:
        running = schedule.start(settings_for(tmp_path), timedelta(hours=1), "staging")
        assert running["stage"] == "staging"
        assert "--stage staging" in " ".join(psutil.Process(running["pid"]).cmdline())
    finally:
        schedule.stop()
