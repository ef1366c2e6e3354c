"""The run pages through a real console server over a real local execution store: a run
(graph, steps, parameters, metrics, checks, lineage), a step's log with its search, runs
compared, and the static export. Records only: no emulator is started."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings
from pipelines.console import run_pages
from pipelines.console.export import export
from pipelines.console.links import Links
from pipelines.console.source import Source
from pipelines.core.records import Execution, StepRun
from pipelines.definition.builder import definition_json, get_pipeline
from pipelines.definition.names import (
    DATA_QUALITY_STEP,
    EVALUATE_STEP,
    MODEL_QUALITY_STEP,
    PREPROCESS_STEP,
    TRAIN_STEP,
)
from pipelines.executor.store import ExecutionStore
from tests.console.serving import console_server
from tests.definition.conftest import CONFIG, offline_session
from tests.support import free_port

# A real console server (uvicorn) per test: the server tier, not the fast one.
pytestmark = pytest.mark.server

OLDER, NEWER = "older0000001", "newer0000002"
COMPARED = Links().url("compare", executions=f"{OLDER},{NEWER}")
HOSTILE = "<script>alert(1)</script>"
MODEL_QUALITY_FAILURE = (  # as pipelines/executor/checks.py words it
    "ClientError: MODEL_QUALITY check failed: 1 violation(s) against version 1; see "
    "s3://b/constraint_violations.json\n  - mae: GreaterThanThreshold: Metric mae with 2.18 was "
    "GreaterThanThreshold '2.04'"
)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/"


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    """The project's definition, built by its builder with the SDK, offline."""
    return json.loads(definition_json(get_pipeline(CONFIG, offline_session())))


def _default_of(definition: dict[str, Any], name: str) -> Any:
    return next(p["DefaultValue"] for p in definition["Parameters"] if p["Name"] == name)


def _evaluation(r2: float) -> dict[str, Any]:
    return {
        "regression_metrics": {
            "r2": {"value": r2, "standard_deviation": 0.0123},
            "rmse": {"value": 1.5, "standard_deviation": 0.05},
        }
    }


def record_runs(state_dir: Path, definition: dict[str, Any]) -> dict[str, Any]:
    """Two executions as the local executor records them: an older one that succeeded with
    the defaults, a newer one that failed in training, with another TrainingInstanceType
    default in its definition, a changed parameter, a check's violation and job logs."""
    now = time.time()
    changed = json.loads(json.dumps(definition))
    for parameter in changed["Parameters"]:
        if parameter["Name"] == "TrainingInstanceType":
            parameter["DefaultValue"] = "ml.m5.xlarge"
    n_estimators = _default_of(definition, "NEstimators")
    store = ExecutionStore(state_dir / "executor.db")
    logs = {}
    for execution_id in (OLDER, NEWER):
        folder = state_dir / "executions" / execution_id / "steps" / TRAIN_STEP / "attempt-1"
        folder.mkdir(parents=True)
        logs[execution_id] = folder / "job.log"
    logs[OLDER].write_text("loading data\nfitting 100 trees\nr2=0.81\n")
    logs[NEWER].write_text(f"loading data\nfitting {HOSTILE}\nValueError: Input has NaN\nbye\n")
    store.insert_execution(
        Execution(
            OLDER,
            ARN + OLDER,
            "mlops-local-pipeline",
            "Succeeded",
            created_at=now - 600,
            ended_at=now - 500,
            display_name="manual-20260304-050607",
            parameters={"NEstimators": n_estimators},
            definition=json.dumps(definition),
            definition_sha256="a" * 64,
            lineage={"trigger": "manual", "git_commit": "1234567890abcdef"},
        )
    )
    store.insert_execution(
        Execution(
            NEWER,
            ARN + NEWER,
            "mlops-local-pipeline",
            "Failed",
            created_at=now - 100,
            ended_at=now - 10,
            display_name="new-data-0123abcd-20260304-060708",
            failure_reason=f"Step {TRAIN_STEP} failed: AlgorithmError: {HOSTILE}",
            parameters={"NEstimators": n_estimators + 150},
            definition=json.dumps(changed),
            definition_sha256="b" * 64,
            lineage={
                "trigger": "new-data",
                "git_commit": "fedcba0987654321",
                "git_dirty": True,
                "code_sha256": "c0de" * 16,
                "input_data": {"uri": "s3://bucket/datasets/houses.csv", "version_id": "v7x"},
            },
            retries=1,
        )
    )
    for execution_id, r2 in ((OLDER, 0.81), (NEWER, 0.62)):
        failed = execution_id == NEWER
        store.upsert_step(
            execution_id,
            StepRun(PREPROCESS_STEP, "Processing", "Succeeded", now - 90, now - 80,
                    cache_hit_of=OLDER if failed else None,
                    log_path=None if failed else str(logs[OLDER])),
        )  # fmt: skip
        store.upsert_step(
            execution_id,
            StepRun(
                DATA_QUALITY_STEP,
                "QualityCheck",
                "Succeeded",
                now - 80,
                now - 70,
                properties={
                    "CheckType": "DATA_QUALITY",
                    "SkipCheck": False,
                    "BaselineSource": "version 3",
                    "ViolationCount": 1 if failed else 0,
                    "Violations": [
                        {
                            "feature_name": "rooms",
                            "constraint_check_type": "data_type_check",
                            "description": "Data type mismatch <b>",
                        }
                    ]
                    if failed
                    else [],
                    "CalculatedBaselineConstraints": "s3://b/new",
                    "BaselineUsedForDriftCheckConstraints": "s3://b/kept",
                },
            ),
        )
        store.upsert_step(
            execution_id,
            StepRun(TRAIN_STEP, "Training", "Failed" if failed else "Succeeded", now - 70, now - 20,
                    failure_reason=f"AlgorithmError: {HOSTILE}" if failed else None,
                    log_path=str(logs[execution_id]), peak_memory_bytes=300 * 2**20,
                    attempt=2 if failed else 1),
        )  # fmt: skip
        if failed:  # a check that failed on a violation records it in its failure reason
            store.upsert_step(
                execution_id,
                StepRun(MODEL_QUALITY_STEP, "QualityCheck", "Failed", now - 20, now - 10,
                        failure_reason=MODEL_QUALITY_FAILURE),
            )  # fmt: skip
        else:
            store.upsert_step(
                execution_id,
                StepRun(EVALUATE_STEP, "Processing", "Succeeded", now - 20, now - 10,
                        property_files={"EvaluationReport": _evaluation(r2)}),
            )  # fmt: skip
    store.close()
    return changed


@pytest.fixture
def source(tmp_path, definition) -> Source:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    record_runs(state_dir, definition)
    # A port nothing listens on: the champion comparison finds no emulator, says so.
    settings = Settings(state_dir=state_dir, emulator_port=free_port())
    return Source(settings, Deployment.parse("local"))


def text_of(page: str) -> str:
    """The page's visible text, tags removed and entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_a_run_page_shows_the_graph_steps_parameters_checks_and_lineage(source, definition):
    with console_server(source) as server:
        page = server.session().get(f"{server.base}/runs/{NEWER}")
    assert page.status_code == 200, page.text
    body = page.text
    svg = body[body.index("<svg") : body.index("</svg>")]
    for step in (PREPROCESS_STEP, TRAIN_STEP, EVALUATE_STEP, "Register-RegisterModel"):
        assert f'data-step="{step}"' in svg
    assert f'data-step="{TRAIN_STEP}" data-status="Failed"' in svg
    assert f'data-step="{EVALUATE_STEP}" data-status="Not run"' in svg
    assert f"cached from {OLDER}" in svg  # the cache hit, on its box
    assert "attempt 2" in svg
    # Escaped everywhere: the failure reason, the tooltip, the violation.
    assert HOSTILE not in body
    assert "<b>" not in body
    text = text_of(body)
    assert f"AlgorithmError: {HOSTILE}" in text
    assert "rooms: data_type_check: Data type mismatch <b>" in text
    assert f"{DATA_QUALITY_STEP} passed, 1 violation(s); baseline kept" in text
    assert (
        "mae: GreaterThanThreshold: Metric mae with 2.18 was GreaterThanThreshold '2.04'"
        in (text[text.index(f"{MODEL_QUALITY_STEP} failed (ClientError") :])
    )
    n_estimators = _default_of(definition, "NEstimators")
    assert f"NEstimators {n_estimators + 150} default {n_estimators}" in text
    assert "Parameters (1 of" in text
    assert "code sha256 " + "c0de" * 16 in text
    assert "data s3://bucket/datasets/houses.csv data version v7x" in text
    assert "commit fedcba0987654321 (uncommitted changes)" in text
    assert "definition sha256 " + "b" * 64 in text
    assert "trigger new-data" in text
    assert f'href="{COMPARED}"' in body
    assert f'href="/runs/{NEWER}/logs/{TRAIN_STEP}"' in body
    assert 'http-equiv="refresh"' not in body  # finished: not live


def test_a_run_with_an_evaluation_shows_its_metrics_with_their_spread(source):
    with console_server(source) as server:
        page = server.session().get(f"{server.base}/runs/{OLDER}")
    text = text_of(page.text)
    assert f"{EVALUATE_STEP} regression_metrics.r2 0.8100 ± 0.0123" in text
    # No emulator here: the page says why there is no comparison with the champion.
    assert "No comparison with the Approved version:" in text


def test_an_unknown_run_is_a_404_with_a_sentence(source):
    with console_server(source) as server:
        session = server.session()
        missing = session.get(f"{server.base}/runs/nosuchrun123")
        compared = session.get(f"{server.base}/compare/{OLDER},nosuchrun123")
        single = session.get(f"{server.base}/compare/{OLDER}")
    assert missing.status_code == 404
    assert "No local execution &#39;nosuchrun123&#39;." in missing.text
    assert compared.status_code == 404
    assert "No local execution &#39;nosuchrun123&#39;." in compared.text
    assert single.status_code == 404
    assert "two or more different execution ids" in single.text


def test_a_steps_log_is_shown_escaped_and_searchable(source):
    with console_server(source) as server:
        session = server.session()
        whole = session.get(f"{server.base}/runs/{NEWER}/logs/{TRAIN_STEP}")
        found = session.get(f"{server.base}/runs/{NEWER}/logs/{TRAIN_STEP}", params={"q": "nan"})
        reused = session.get(f"{server.base}/runs/{NEWER}/logs/{PREPROCESS_STEP}")
        none = session.get(f"{server.base}/runs/{NEWER}/logs/NoSuchStep")
    assert whole.status_code == 200
    log = whole.text[whole.text.index('<pre id="log">') :]
    assert HOSTILE not in whole.text
    assert html.unescape(log[: log.index("</pre>")]).removeprefix('<pre id="log">') == (
        f"loading data\nfitting {HOSTILE}\nValueError: Input has NaN\nbye\n"
    )
    searched = found.text[found.text.index('<pre id="log">') :]
    assert html.unescape(searched[: searched.index("</pre>")]) == (
        '<pre id="log">ValueError: Input has NaN\n'
    )
    assert "1 of 4 lines hold" in text_of(found.text)
    # A cache hit's log is the log of the run whose result it reused.
    assert f"this is the log of execution {OLDER}, whose result {NEWER} reused" in text_of(
        reused.text
    )
    assert "fitting 100 trees" in reused.text
    assert none.status_code == 404
    assert "has run no step named &#39;NoSuchStep&#39;" in none.text


def test_compare_shows_parameters_metrics_checks_and_the_definition_diff(source, definition):
    with console_server(source) as server:
        session = server.session()
        page = session.get(f"{server.base}/compare/{OLDER},{NEWER}")
        same = session.get(f"{server.base}/compare/{OLDER},{OLDER}x")
        listed = session.get(f"{server.base}/")
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    n_estimators = _default_of(definition, "NEstimators")
    assert f"NEstimators {n_estimators} {n_estimators} {n_estimators + 150}" in text
    assert re.search(r'<tr class="differs"><td>NEstimators</td>', page.text)
    # Not set by either run, but the newer definition's default differs: so did the runs.
    assert re.search(r'<tr class="differs"><td>TrainingInstanceType</td>', page.text)
    assert not re.search(r'<tr class="differs"><td>MaxDepth</td>', page.text)
    assert "r2 0.8100" in text  # the newer run has no evaluation: nothing to subtract
    assert f"{DATA_QUALITY_STEP} passed, 0 violation(s); baseline kept passed, 1 violation" in text
    diff = html.unescape(page.text[page.text.index('<pre class="diff"') :])
    assert f"--- {OLDER}" in diff
    assert f"+++ {NEWER}" in diff
    assert '+      "DefaultValue": "ml.m5.xlarge",' in diff
    assert same.status_code == 404  # an id that is not recorded
    assert f'href="{COMPARED}"' in listed.text  # the runs list links it


def test_the_compare_page_says_identical_definitions_and_shows_metric_deltas(tmp_path, definition):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    store = ExecutionStore(state_dir / "executor.db")
    for number, r2 in ((1, 0.75), (2, 0.8)):
        execution_id = f"same000000{number}"
        store.insert_execution(
            Execution(execution_id, ARN + execution_id, "p", "Succeeded", time.time() - 99 + number,
                      ended_at=time.time(), definition=json.dumps(definition)),
        )  # fmt: skip
        store.upsert_step(
            execution_id,
            StepRun(EVALUATE_STEP, "Processing", "Succeeded", time.time() - 10, time.time(),
                    property_files={"EvaluationReport": _evaluation(r2)}),
        )  # fmt: skip
    store.close()
    source = Source(Settings(state_dir=state_dir, emulator_port=free_port()), Deployment.parse())
    with console_server(source) as server:
        page = server.session().get(f"{server.base}/compare/same0000001,same0000002")
    text = text_of(page.text)
    assert "same0000001 and same0000002: identical definitions." in text
    assert "r2 0.7500 0.8000 (+0.0500)" in text


def assert_links_resolve(written: list[Path]) -> None:
    """Every link from an exported page to a run page names a file of the export."""
    checked = 0
    for path in written:
        page = path.read_text()
        # The registry's pages need the emulator, which these tests do not start.
        if re.match(r"(index|run|run_log|compare)[-.]", path.name):
            assert "Not available" not in page, path.name
        for target in re.findall(r'href="((?:index|run|run_log|compare)[-.][^"]*)"', page):
            assert (path.parent / target).exists(), f"{path.name} links {target}"
            checked += 1
        assert 'id="search" hidden' in page or 'id="search"' not in page
    assert checked > len(written)  # every page links others: the check looked at them


def test_the_export_writes_every_page_its_pages_link(source, tmp_path):
    written = export(source, tmp_path / "export")
    names = {path.name for path in written}
    assert {
        "index.html",
        f"run-{OLDER}.html",
        f"run-{NEWER}.html",
        f"compare-{OLDER},{NEWER}.html",
        f"run_log-{NEWER}-{TRAIN_STEP}.html",
        f"run_log-{NEWER}-{PREPROCESS_STEP}.html",
        f"run_log-{OLDER}-{TRAIN_STEP}.html",
    } <= names
    assert_links_resolve(written)


def test_an_export_of_fewer_runs_links_only_the_runs_it_wrote(source, tmp_path, monkeypatch):
    monkeypatch.setattr(run_pages, "EXPORTED_RUNS", 1)
    written = export(source, tmp_path / "export")
    assert f"run-{NEWER}.html" in {path.name for path in written}
    assert f"run-{OLDER}.html" not in {path.name for path in written}
    # The newer run's cache hit and its comparison name the older run, unlinked.
    assert f"cached from {OLDER}" in text_of(
        (tmp_path / "export" / f"run-{NEWER}.html").read_text()
    )
    assert OLDER in (tmp_path / "export" / f"compare-{OLDER},{NEWER}.html").read_text()
    assert_links_resolve(written)


def test_a_running_execution_is_live_and_shows_what_changed_at_the_next_look(tmp_path, definition):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    running = "running00003"
    # Stands in for the executor's worker: a live process whose command line names it.
    worker = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "pipelines.executor.worker", running]
    )
    try:
        store = ExecutionStore(state_dir / "executor.db")
        store.insert_execution(
            Execution(running, ARN + running, "p", "Executing", time.time() - 30,
                      definition=json.dumps(definition), worker_pid=worker.pid),
        )  # fmt: skip
        store.upsert_step(running, StepRun(PREPROCESS_STEP, "Processing", "Executing", time.time()))
        source = Source(
            Settings(state_dir=state_dir, emulator_port=free_port()), Deployment.parse()
        )
        with console_server(source) as server:
            session = server.session()
            before = session.get(f"{server.base}/runs/{running}").text
            store.upsert_step(
                running,
                StepRun(PREPROCESS_STEP, "Processing", "Succeeded", time.time() - 5, time.time()),
            )
            store.upsert_step(running, StepRun(TRAIN_STEP, "Training", "Executing", time.time()))
            after = session.get(f"{server.base}/runs/{running}").text
        store.close()
    finally:
        worker.kill()
        worker.wait()
    assert '<meta http-equiv="refresh" content="2">' in before
    assert f'data-step="{PREPROCESS_STEP}" data-status="Executing"' in before
    assert f'data-step="{TRAIN_STEP}" data-status="Pending"' in before
    assert f'data-step="{PREPROCESS_STEP}" data-status="Succeeded"' in after
    assert f'data-step="{TRAIN_STEP}" data-status="Executing"' in after
    assert '<meta http-equiv="refresh" content="2">' in after  # still running
