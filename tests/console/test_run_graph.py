"""The run page's step graph: every step a box, the edges the definition implies, laid out
in longest-path layers left to right, coloured by status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.console.run_graph import COLOURS, NODE_WIDTH, layout
from pipelines.core.records import StepRun
from pipelines.definition.builder import definition_json, get_pipeline
from pipelines.definition.names import (
    DATA_BIAS_STEP,
    DATA_QUALITY_STEP,
    EVALUATE_STEP,
    FAIL_STEP,
    MODEL_QUALITY_STEP,
    PREPROCESS_STEP,
    QUALITY_GATE_STEP,
    TRAIN_STEP,
)
from pipelines.executor.graph import DefinitionError
from tests.definition.conftest import CONFIG, offline_session

REGISTER = "Register-RegisterModel"  # the SDK's ModelStep names it so


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    """The project's definition, built by its builder with the SDK, offline."""
    return json.loads(definition_json(get_pipeline(CONFIG, offline_session())))


def test_the_projects_definition_draws_every_step_and_the_edges_it_implies(definition):
    graph = layout(definition, [])
    assert {node.name for node in graph.nodes} == {
        PREPROCESS_STEP,
        DATA_QUALITY_STEP,
        DATA_BIAS_STEP,
        TRAIN_STEP,
        EVALUATE_STEP,
        MODEL_QUALITY_STEP,
        QUALITY_GATE_STEP,
        REGISTER,
        FAIL_STEP,
    }
    pairs = graph.edge_pairs()
    for edge in [
        (PREPROCESS_STEP, TRAIN_STEP),
        (TRAIN_STEP, EVALUATE_STEP),
        (EVALUATE_STEP, QUALITY_GATE_STEP),
        (QUALITY_GATE_STEP, REGISTER),
        (QUALITY_GATE_STEP, FAIL_STEP),
        (PREPROCESS_STEP, DATA_QUALITY_STEP),
        (DATA_QUALITY_STEP, TRAIN_STEP),
        (DATA_BIAS_STEP, TRAIN_STEP),
        (EVALUATE_STEP, MODEL_QUALITY_STEP),
    ]:
        assert edge in pairs, edge
    assert (TRAIN_STEP, PREPROCESS_STEP) not in pairs
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    assert kinds[(QUALITY_GATE_STEP, REGISTER)] == "if"
    assert kinds[(QUALITY_GATE_STEP, FAIL_STEP)] == "else"
    assert kinds[(DATA_QUALITY_STEP, TRAIN_STEP)] == "depends"  # the checks gate training
    assert kinds[(PREPROCESS_STEP, TRAIN_STEP)] == "data"
    # Left to right: each step is in a later column than everything it waits for.
    for edge in graph.edges:
        assert graph.node(edge.source).layer < graph.node(edge.target).layer
    assert graph.node(PREPROCESS_STEP).layer == 0
    assert graph.node(REGISTER).layer == graph.node(QUALITY_GATE_STEP).layer + 1
    assert graph.width >= (graph.node(REGISTER).layer + 1) * NODE_WIDTH


CACHED = "abcdef0123456789"
NAN = "AlgorithmError: NaN"


def test_statuses_colour_the_steps_with_duration_cache_hit_and_attempt(definition):
    steps = [
        StepRun(PREPROCESS_STEP, "Processing", "Succeeded", 100.0, 104.5, cache_hit_of=CACHED),
        StepRun(TRAIN_STEP, "Training", "Failed", 110.0, 180.0, failure_reason=NAN, attempt=3),
        StepRun(EVALUATE_STEP, "Processing", "Executing", 190.0),
    ]
    running = layout(definition, steps, finished=False, now=200.0)
    preprocess, train, evaluate = (
        running.node(n) for n in (PREPROCESS_STEP, TRAIN_STEP, EVALUATE_STEP)
    )
    assert (preprocess.status_class, preprocess.fill) == ("ok", COLOURS["ok"][0])
    assert preprocess.lines == ("Succeeded · 4.5 s", "cached from abcdef012345")
    assert "cache hit: reused execution abcdef0123456789" in preprocess.tooltip
    assert (train.status_class, train.stroke) == ("bad", COLOURS["bad"][1])
    assert train.lines == ("Failed · 1 min 10 s", "attempt 3")
    assert "AlgorithmError: NaN" in train.tooltip
    assert evaluate.status_class == "running"
    assert evaluate.lines[0] == "Executing · 10.0 s"  # so far
    assert running.node(REGISTER).status == "Pending"
    finished = layout(definition, steps, finished=True)
    assert finished.node(REGISTER).status == "Not run"
    assert finished.node(REGISTER).status_class == "muted"


PREPARED = "Steps.Prepare.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"


def small_definition() -> dict[str, Any]:
    """Prepare feeds Train (a Get reference); Notify waits for Prepare (DependsOn); Gate
    reads Train's output and branches to Register or Stop."""
    return {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [
            {"Name": "Prepare", "Type": "Processing", "Arguments": {}},
            {
                "Name": "Train",
                "Type": "Training",
                "Arguments": {
                    "InputDataConfig": [
                        {"DataSource": {"S3DataSource": {"S3Uri": {"Get": PREPARED}}}}
                    ]
                },
            },
            {"Name": "Notify", "Type": "Processing", "Arguments": {}, "DependsOn": ["Prepare"]},
            {
                "Name": "Gate",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [
                        {
                            "Type": "GreaterThanOrEqualTo",
                            "LeftValue": {"Get": "Steps.Train.FinalMetricDataList['r2'].Value"},
                            "RightValue": 0.5,
                        }
                    ],
                    "IfSteps": [{"Name": "Register", "Type": "RegisterModel", "Arguments": {}}],
                    "ElseSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {}}],
                },
            },
        ],
    }


def test_a_small_definition_with_depends_on_and_a_branch():
    graph = layout(small_definition(), [])
    assert {(e.source, e.target, e.kind) for e in graph.edges} == {
        ("Prepare", "Train", "data"),
        ("Prepare", "Notify", "depends"),
        ("Train", "Gate", "data"),
        ("Gate", "Register", "if"),
        ("Gate", "Stop", "else"),
    }
    assert {n.name: n.layer for n in graph.nodes} == {
        "Prepare": 0,
        "Train": 1,
        "Notify": 1,
        "Gate": 2,
        "Register": 3,
        "Stop": 3,
    }
    # Two steps of a layer are one above the other, never on top of each other.
    register, stop = graph.node("Register"), graph.node("Stop")
    assert register.x == stop.x
    assert register.y != stop.y
    assert {e.label for e in graph.edges if e.source == "Gate"} == {"true", "false"}


def test_a_broken_definition_is_a_sentence_not_a_drawing():
    broken = small_definition()
    broken["Steps"][1]["DependsOn"] = ["Missing"]
    with pytest.raises(DefinitionError, match="Missing"):
        layout(broken, [])
