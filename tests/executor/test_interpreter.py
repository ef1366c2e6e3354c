"""The definition interpreter on small hand-written definitions: values, conditions, graph."""

from __future__ import annotations

import json

import pytest
from sagemaker.workflow.conditions import (
    Condition,
    ConditionEquals,
    ConditionIn,
    ConditionNot,
    ConditionOr,
)
from sagemaker.workflow.parameters import ParameterString

from pipelines.definition.parameters import ParameterError, parse_assignments, resolve_parameters
from pipelines.executor.conditions import evaluate_conditions
from pipelines.executor.expressions import (
    EvaluationContext,
    ExpressionError,
    parse_path,
    referenced_steps,
    resolve,
)
from pipelines.executor.graph import DefinitionError, PipelineGraph

PROCESSING_PROPERTIES = {
    "ProcessingJobName": "pipelines-abc-Prep",
    "ProcessingOutputConfig": {
        "Outputs": [
            {
                "OutputName": "train",
                "S3Output": {"S3Uri": "s3://b/train", "LocalPath": "/opt/ml/x"},
            },
            {"OutputName": "test", "S3Output": {"S3Uri": "s3://b/test", "LocalPath": "/opt/ml/y"}},
        ]
    },
}
TRAINING_PROPERTIES = {
    "ModelArtifacts": {"S3ModelArtifacts": "s3://b/model.tar.gz"},
    "FinalMetricDataList": [{"MetricName": "validation:rmse", "Value": 3.1}],
}


@pytest.fixture
def ctx() -> EvaluationContext:
    return EvaluationContext(
        parameters={"Threshold": 0.7, "Name": "medv", "Trees": 100, "Flag": True},
        execution={"PipelineExecutionId": "abc123", "PipelineName": "p"},
        step_properties={"Prep": PROCESSING_PROPERTIES, "Train": TRAINING_PROPERTIES},
        property_files={"Eval": {"Report": {"metrics": {"r2": {"value": 0.84}}, "list": [5, 6]}}},
    )


def json_get(path: str, step: str = "Eval", name: str = "Report") -> dict:
    return {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.{step}.PropertyFiles.{name}"},
            "Path": path,
        }
    }


def test_property_paths_parse_names_keys_and_indexes():
    assert parse_path("A.B['x'].C[0].D") == ["A", "B", "x", "C", 0, "D"]
    assert parse_path('Outputs["train"].S3Output') == ["Outputs", "train", "S3Output"]
    with pytest.raises(ExpressionError, match="Cannot parse"):
        parse_path("A..B")


def test_get_parameters_execution_variables_and_step_properties(ctx):
    assert resolve({"Get": "Parameters.Threshold"}, ctx) == 0.7
    assert resolve({"Get": "Execution.PipelineExecutionId"}, ctx) == "abc123"
    uri = "Steps.Prep.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"
    assert resolve({"Get": uri}, ctx) == "s3://b/test"
    assert resolve({"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, ctx) == (
        "s3://b/model.tar.gz"
    )
    metric = "Steps.Train.FinalMetricDataList['validation:rmse'].Value"
    assert resolve({"Get": metric}, ctx) == 3.1


def test_join_renders_values_as_sagemaker_does(ctx):
    join = {
        "Std:Join": {
            "On": "/",
            "Values": [
                "s3:/",
                "b",
                {"Get": "Execution.PipelineExecutionId"},
                {"Get": "Parameters.Trees"},
            ],
        }
    }
    assert resolve(join, ctx) == "s3://b/abc123/100"
    assert resolve({"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Flag"}]}}, ctx) == "true"


def test_json_get_reads_property_files(ctx):
    assert resolve(json_get("metrics.r2.value"), ctx) == 0.84
    assert resolve(json_get("list[1]"), ctx) == 6


def test_resolution_is_recursive_through_requests(ctx):
    request = {
        "AppSpecification": {
            "ContainerArguments": [
                {"Std:Join": {"On": "", "Values": ["--target=", {"Get": "Parameters.Name"}]}}
            ]
        },
        "Keep": [1, "two", {"Three": 3}],
    }
    assert resolve(request, ctx) == {
        "AppSpecification": {"ContainerArguments": ["--target=medv"]},
        "Keep": [1, "two", {"Three": 3}],
    }


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"Get": "Parameters.Missing"}, "Unknown parameter 'Missing'"),
        ({"Get": "Execution.Nope"}, "Unknown execution variable 'Nope'"),
        ({"Get": "Steps.Later.ModelArtifacts"}, "step 'Later', which has not run"),
        ({"Get": "Steps.Train.ModelArtifacts.Missing"}, "has no 'ModelArtifacts.Missing'"),
        ({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['nope']"}, "nothing at 'nope'"),
        (json_get("metrics.r2.value", name="Other"), "Property file 'Other' of step 'Eval'"),
        (json_get("metrics.auc"), "nothing at 'auc'"),
    ],
)
def test_unresolvable_references_say_what_is_missing(ctx, expression, message):
    with pytest.raises(ExpressionError, match=message):
        resolve(expression, ctx)


def test_referenced_steps_come_from_get_expressions():
    value = {
        "A": {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"},
        "B": [json_get("x"), {"Get": "Parameters.Steps"}],
        "C": {"Std:Join": {"On": "", "Values": [{"Get": "Steps.Train.ModelArtifacts"}]}},
    }
    assert referenced_steps(value) == {"Prep", "Eval", "Train"}


def comparison(kind: str, left, right) -> dict:
    return {"Type": kind, "LeftValue": left, "RightValue": right}


@pytest.mark.parametrize(
    ("kind", "left", "right", "expected"),
    [
        ("Equals", 1, 1.0, True),
        ("Equals", "a", "b", False),
        ("GreaterThan", 0.84, 0.7, True),
        ("GreaterThan", 0.7, 0.7, False),
        ("GreaterThanOrEqualTo", 0.7, 0.7, True),
        ("LessThan", 2, 3, True),
        ("LessThanOrEqualTo", 3, 3, True),
        ("LessThanOrEqualTo", "0.9", 0.5, False),
    ],
)
def test_comparisons(ctx, kind, left, right, expected):
    assert evaluate_conditions([comparison(kind, left, right)], ctx) is expected


def test_comparison_against_a_property_file_and_a_parameter(ctx):
    gate = comparison(
        "GreaterThanOrEqualTo", json_get("metrics.r2.value"), {"Get": "Parameters.Threshold"}
    )
    assert evaluate_conditions([gate], ctx) is True


def sdk_condition(condition: Condition) -> dict:
    """A condition as the SDK writes it into the definition (parameters as Get)."""
    return json.loads(json.dumps(condition.to_request(), default=lambda value: value.expr))


def test_in_not_and_or(ctx):
    name = ParameterString(name="Name")
    in_condition = ConditionIn(value=name, in_values=["medv", "target"])
    in_ = sdk_condition(in_condition)
    assert evaluate_conditions([in_], ctx) is True
    assert evaluate_conditions([sdk_condition(ConditionNot(expression=in_condition))], ctx) is False
    false = ConditionEquals(left=1, right=2)
    assert evaluate_conditions([sdk_condition(ConditionOr(conditions=[false, in_condition]))], ctx)
    assert (
        evaluate_conditions([sdk_condition(ConditionOr(conditions=[false, false]))], ctx) is False
    )
    # A Condition step's list of conditions holds only when all of them hold.
    assert evaluate_conditions([in_, sdk_condition(false)], ctx) is False


def test_not_is_read_as_the_sdk_writes_it(ctx):
    # ConditionNot.to_request() nests the negated condition under "Condition".
    request = sdk_condition(ConditionNot(expression=ConditionEquals(left=1, right=2)))
    assert request == {
        "Type": "Not",
        "Condition": {"Type": "Equals", "LeftValue": 1, "RightValue": 2},
    }
    assert evaluate_conditions([request], ctx) is True


def test_unknown_condition_type_is_an_error(ctx):
    with pytest.raises(ExpressionError, match="Unsupported condition type 'Xor'"):
        evaluate_conditions([{"Type": "Xor"}], ctx)


def step(name: str, kind: str = "Processing", arguments=None, depends_on=None) -> dict:
    spec = {"Name": name, "Type": kind, "Arguments": arguments or {}}
    if depends_on:
        spec["DependsOn"] = depends_on
    return spec


def test_graph_edges_from_references_depends_on_and_branches():
    definition = {
        "Steps": [
            step(
                "Gate",
                "Condition",
                {
                    "Conditions": [comparison("Equals", {"Get": "Steps.B.Out"}, 1)],
                    "IfSteps": [step("Yes", "Processing", {"X": {"Get": "Steps.A.Out"}})],
                    "ElseSteps": [step("No", "Fail")],
                },
            ),
            step("B", arguments={"In": {"Get": "Steps.A.Out"}}),
            step("A"),
            step("Later", depends_on=["Yes"]),
        ]
    }
    graph = PipelineGraph.from_definition(definition)
    assert dict(graph.dependencies) == {
        "Gate": frozenset({"B"}),
        "Yes": frozenset({"A", "Gate"}),
        "No": frozenset({"Gate"}),
        "B": frozenset({"A"}),
        "A": frozenset(),
        "Later": frozenset({"Yes"}),
    }
    order = graph.topological_order()
    assert order.index("A") < order.index("B") < order.index("Gate") < order.index("Yes")
    assert order.index("Yes") < order.index("Later")
    assert graph.steps["Yes"].branch is True
    assert graph.steps["No"].branch is False
    assert graph.dependents("A") == {"B", "Yes"}


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([step("A"), step("A")], "Two steps are named 'A'"),
        ([step("A", arguments={"X": {"Get": "Steps.Ghost.Out"}})], "unknown step\\(s\\): Ghost"),
        ([step("A", depends_on=["B"]), step("B", depends_on=["A"])], "cycle: A, B"),
        ([step("A", depends_on=["A"])], "depends on itself"),
    ],
)
def test_invalid_graphs_are_rejected(steps, message):
    with pytest.raises(DefinitionError, match=message):
        PipelineGraph.from_definition({"Steps": steps})


DEFINITION_PARAMETERS = {
    "Parameters": [
        {"Name": "Trees", "Type": "Integer", "DefaultValue": 100},
        {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.7},
        {"Name": "Target", "Type": "String", "DefaultValue": "medv"},
        {"Name": "Flag", "Type": "Boolean", "DefaultValue": False},
    ]
}


def test_parameter_overrides_are_typed():
    values = resolve_parameters(
        DEFINITION_PARAMETERS,
        parse_assignments(["Trees=200", "Threshold=0.5", "Target=target", "Flag=TRUE"]),
    )
    assert values == {"Trees": 200, "Threshold": 0.5, "Target": "target", "Flag": True}
    assert resolve_parameters(DEFINITION_PARAMETERS, {})["Trees"] == 100


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["Trees=many"], "Parameter Trees is an Integer; got 'many'"),
        (["Trees=1.5"], "Parameter Trees is an Integer"),
        (["Threshold=high"], "Parameter Threshold is a Float"),
        (["Flag=maybe"], "Parameter Flag is a Boolean"),
        (["Tres=5"], "Unknown parameter\\(s\\) Tres. The pipeline accepts: Trees \\(Integer\\)"),
    ],
)
def test_bad_parameter_overrides_are_rejected(pairs, message):
    with pytest.raises(ParameterError, match=message):
        resolve_parameters(DEFINITION_PARAMETERS, parse_assignments(pairs))


def test_malformed_assignments_are_rejected():
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        parse_assignments(["Trees"])
