"""pipeline-run builds the job runtime while Terraform applies, and reports a missing
Python before any slow work starts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipelines.config.settings import Settings
from pipelines.containers.environments import EnvironmentCache
from pipelines.containers.interpreters import NoInterpreterError
from pipelines.containers.profiles import profiles
from pipelines.definition.builder import FRAMEWORK_VERSION
from pipelines.launch import runtime_build
from pipelines.launch.runtime_build import start_runtime_build

PROFILE = profiles()[f"sklearn-{FRAMEWORK_VERSION}"]


def settings_with(cache: Path, *, host: bool = False) -> Settings:
    return dataclasses.replace(
        Settings.load(None, environ={}), runtime_cache_dir=cache, runtime_host=host
    )


def test_the_host_runtime_needs_no_build(tmp_path):
    assert start_runtime_build(settings_with(tmp_path, host=True), print) is None
    assert list(tmp_path.iterdir()) == []


def test_a_built_runtime_is_not_built_again(runtime_cache):
    EnvironmentCache(runtime_cache).ensure(PROFILE)
    assert start_runtime_build(settings_with(runtime_cache), print) is None


def test_a_missing_python_is_reported_before_anything_starts(tmp_path, monkeypatch):
    def missing(version: str, uv_bin: str | None = None):
        raise NoInterpreterError(f"No Python {version}: run `uv python install {version}`.")

    monkeypatch.setattr(runtime_build, "find_interpreter", missing)
    with pytest.raises(NoInterpreterError, match=r"uv python install 3\.9"):
        start_runtime_build(settings_with(tmp_path), print)
    assert not EnvironmentCache(tmp_path).ready(PROFILE)


def test_the_build_runs_in_the_background_and_the_executor_finds_it(tmp_path):
    lines: list[str] = []
    future = start_runtime_build(settings_with(tmp_path), lines.append)
    assert future is not None
    runtime = future.result(timeout=600)
    assert Path(runtime.python).is_file()
    assert "Python 3.9" in runtime.label
    assert any(line.startswith("Building the sklearn 1.2-1 runtime") for line in lines)
    cache = EnvironmentCache(tmp_path)
    assert cache.ready(PROFILE)
    # What the executor's preflight asks for later is this very environment.
    assert cache.ensure(PROFILE) == runtime
