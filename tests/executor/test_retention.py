"""Retention of the state folder (issue 12, item 7)."""

from __future__ import annotations

import json
import time

import pytest

from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.core.records import EXECUTING, SUCCEEDED, Execution
from pipelines.executor.retention import prune_releases, prune_sandboxes, state_usage
from pipelines.executor.store import ExecutionStore


def _release(endpoint, version: int, stamp: int, size: int = 1000):
    path = endpoint / "releases" / f"v{version}-{stamp}"
    (path / "model").mkdir(parents=True)
    (path / "model" / "model.joblib").write_bytes(b"m" * size)
    return path


def test_old_releases_are_pruned_but_the_served_one_is_kept(tmp_path):
    endpoint = tmp_path / "endpoints" / "e"
    releases = [_release(endpoint, v, 1000 + v) for v in range(1, 7)]
    # A rollback serves an old release: it must survive the pruning.
    (endpoint / "endpoint.json").write_text(json.dumps({"release": str(releases[0])}))
    pruned = prune_releases(endpoint, keep=2)
    left = sorted(p.name for p in (endpoint / "releases").iterdir())
    assert left == ["v1-1001", "v5-1005", "v6-1006"]
    assert len(pruned.removed) == 3
    assert pruned.freed_bytes == 3000


def test_sandboxes_of_old_finished_executions_are_pruned_and_records_kept(tmp_path):
    store = ExecutionStore(tmp_path / "executor.db")
    now = time.time()
    for index in range(5):
        execution_id = f"run{index}"
        status = EXECUTING if index == 0 else SUCCEEDED  # the oldest still runs
        store.insert_execution(
            Execution(
                execution_id=execution_id,
                execution_arn=f"arn:aws:sagemaker:us-east-1:1:pipeline/p/execution/{execution_id}",
                pipeline_name="p",
                status=status,
                created_at=now + index,
            )
        )
        sandbox = tmp_path / "executions" / execution_id / "steps" / "Train" / "attempt-1"
        (sandbox / "sandbox").mkdir(parents=True)
        (sandbox / "sandbox" / "data.csv").write_bytes(b"x" * 10)
        (sandbox / "job.log").write_text("log")
    store.close()

    pruned = prune_sandboxes(tmp_path, keep=2)
    kept = {p.parts[-5] for p in (tmp_path / "executions").glob("*/steps/*/*/sandbox")}
    assert kept == {"run0", "run3", "run4"}  # newest two, and the running one
    assert len(pruned.removed) == 2
    assert all(
        (tmp_path / "executions" / f"run{i}" / "steps/Train/attempt-1/job.log").exists()
        for i in range(5)
    )
    usage = dict(state_usage(tmp_path))
    assert usage["executions"] > 0
    assert "executor.db" in usage


def test_retention_is_configured_in_invoke_yaml(tmp_path):
    settings = Settings.load(
        {"retention": {"endpoint_releases": 5, "execution_sandboxes": 7}},
        root=tmp_path,
        environ={},
    )
    assert (settings.keep_releases, settings.keep_execution_sandboxes) == (5, 7)
    with pytest.raises(MlopsError, match=r"retention\.endpoint_releases"):
        Settings.load({"retention": {"endpoint_releases": 0}}, root=tmp_path, environ={})
