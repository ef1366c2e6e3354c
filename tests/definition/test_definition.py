"""The pipeline definition: graph, parameters, quality gate, caching, determinism."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipelines.definition import builder as pipeline_definition
from pipelines.definition.builder import (
    DATA_BIAS_STEP,
    DATA_QUALITY_STEP,
    EVALUATE_STEP,
    FAIL_STEP,
    MODEL_QUALITY_STEP,
    PREPROCESS_STEP,
    QUALITY_GATE_STEP,
    TRAIN_STEP,
    definition_json,
    get_pipeline,
    pretty,
)
from pipelines.definition.code_package import package_code
from pipelines.definition.sdk_session import telemetry_disabled
from tests.definition.conftest import CONFIG, offline_session

GOLDEN = Path(__file__).parent / "golden" / "definition.json"
REGISTER = "Register-RegisterModel"


def all_steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every step by name, including those nested in a condition's branches."""
    found: dict[str, dict[str, Any]] = {}

    def visit(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            found[step["Name"]] = step
            if step["Type"] == "Condition":
                visit(step["Arguments"]["IfSteps"])
                visit(step["Arguments"]["ElseSteps"])

    visit(definition["Steps"])
    return found


def referenced_steps(value: Any) -> set[str]:
    """Steps a value depends on through Get expressions (properties and property files)."""
    text = json.dumps(value)
    return set(re.findall(r'"Get": "Steps\.([A-Za-z0-9-]+)\.', text))


def test_steps_and_types(definition):
    steps = all_steps(definition)
    assert {name: step["Type"] for name, step in steps.items()} == {
        PREPROCESS_STEP: "Processing",
        DATA_QUALITY_STEP: "QualityCheck",
        DATA_BIAS_STEP: "ClarifyCheck",
        TRAIN_STEP: "Training",
        EVALUATE_STEP: "Processing",
        MODEL_QUALITY_STEP: "QualityCheck",
        QUALITY_GATE_STEP: "Condition",
        REGISTER: "RegisterModel",
        FAIL_STEP: "Fail",
    }
    assert [s["Name"] for s in definition["Steps"]] == [
        PREPROCESS_STEP,
        DATA_QUALITY_STEP,
        DATA_BIAS_STEP,
        TRAIN_STEP,
        EVALUATE_STEP,
        MODEL_QUALITY_STEP,
        QUALITY_GATE_STEP,
    ]


def test_dependency_graph_comes_from_step_properties(definition):
    steps = all_steps(definition)
    graph = {
        name: referenced_steps(step.get("Arguments", {})) | set(step.get("DependsOn", []))
        for name, step in steps.items()
        if step["Type"] != "Condition"
    }
    graph[QUALITY_GATE_STEP] = referenced_steps(steps[QUALITY_GATE_STEP]["Arguments"]["Conditions"])
    assert graph == {
        PREPROCESS_STEP: set(),
        DATA_QUALITY_STEP: {PREPROCESS_STEP},
        DATA_BIAS_STEP: {PREPROCESS_STEP},
        # The data checks gate training.
        TRAIN_STEP: {PREPROCESS_STEP, DATA_QUALITY_STEP, DATA_BIAS_STEP},
        EVALUATE_STEP: {PREPROCESS_STEP, TRAIN_STEP},
        MODEL_QUALITY_STEP: {EVALUATE_STEP},
        QUALITY_GATE_STEP: {EVALUATE_STEP},
        REGISTER: {
            TRAIN_STEP,
            EVALUATE_STEP,
            DATA_QUALITY_STEP,
            DATA_BIAS_STEP,
            MODEL_QUALITY_STEP,
        },
        FAIL_STEP: {EVALUATE_STEP},
    }


def test_parameters_and_defaults(definition):
    assert {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definition["Parameters"]} == {
        "InputDataUrl": ("String", f"s3://{CONFIG.bucket_name}/datasets/sample/boston_housing.csv"),
        "TargetColumn": ("String", "medv"),
        "FeatureColumns": ("String", ""),
        "ProcessingInstanceType": ("String", "ml.m5.large"),
        "ProcessingInstanceCount": ("Integer", 1),
        "TrainingInstanceType": ("String", "ml.m5.large"),
        "NEstimators": ("Integer", 100),
        "MaxDepth": ("Integer", 0),
        "RandomState": ("Integer", 42),
        "MinTestR2": ("Float", 0.7),
        "ModelApprovalStatus": ("String", "PendingManualApproval"),
        "GitCommit": ("String", "unknown"),
        "BiasFacetColumn": ("String", "chas"),
        "BiasFacetThreshold": ("Float", 0.5),
        "BiasLabelThreshold": ("String", ""),
        "SkipDataQualityCheck": ("Boolean", False),
        "RegisterNewDataQualityBaseline": ("Boolean", False),
        "SkipDataBiasCheck": ("Boolean", False),
        "RegisterNewDataBiasBaseline": ("Boolean", False),
        "SkipModelQualityCheck": ("Boolean", False),
        "RegisterNewModelQualityBaseline": ("Boolean", False),
    }


def test_columns_and_hyperparameters_are_parameters_not_constants(definition):
    steps = all_steps(definition)
    arguments = json.dumps(steps[PREPROCESS_STEP]["Arguments"]["AppSpecification"])
    for name in ("TargetColumn", "FeatureColumns", "RandomState"):
        assert f'"Parameters.{name}"' in arguments
    assert "medv" not in json.dumps(steps[PREPROCESS_STEP]) + json.dumps(steps[TRAIN_STEP])
    hyperparameters = steps[TRAIN_STEP]["Arguments"]["HyperParameters"]
    assert hyperparameters["n_estimators"] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Parameters.NEstimators"}]}
    }
    assert json.loads(hyperparameters["sagemaker_program"]) == "train.py"


def test_quality_gate_registers_or_fails_with_the_metric(definition):
    gate = all_steps(definition)[QUALITY_GATE_STEP]["Arguments"]
    json_get = {
        "Std:JsonGet": {
            "Path": "regression_metrics.r2.value",
            "PropertyFile": {"Get": f"Steps.{EVALUATE_STEP}.PropertyFiles.EvaluationReport"},
        }
    }
    assert gate["Conditions"] == [
        {
            "Type": "GreaterThanOrEqualTo",
            "LeftValue": json_get,
            "RightValue": {"Get": "Parameters.MinTestR2"},
        }
    ]
    assert [s["Name"] for s in gate["IfSteps"]] == [REGISTER]
    assert [s["Name"] for s in gate["ElseSteps"]] == [FAIL_STEP]
    message = gate["ElseSteps"][0]["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert json_get in message
    assert {"Get": "Parameters.MinTestR2"} in message


def test_evaluation_report_is_a_property_file(definition):
    evaluate = all_steps(definition)[EVALUATE_STEP]
    assert evaluate["PropertyFiles"] == [
        {
            "PropertyFileName": "EvaluationReport",
            "OutputName": "evaluation",
            "FilePath": "evaluation.json",
        }
    ]


def test_expensive_steps_are_cached(definition):
    steps = all_steps(definition)
    for name in (PREPROCESS_STEP, TRAIN_STEP, EVALUATE_STEP):
        assert steps[name]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}, name


def source(step: str, attribute: str) -> dict[str, Any]:
    return {"ContentType": "application/json", "S3Uri": {"Get": f"Steps.{step}.{attribute}"}}


def test_registration_carries_metrics_baseline_and_approval(definition):
    register = all_steps(definition)[REGISTER]["Arguments"]
    assert register["ModelPackageGroupName"] == CONFIG.model_package_group_name
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    metrics = register["ModelMetrics"]
    assert "evaluation.json" in json.dumps(metrics["ModelQuality"]["Statistics"]["S3Uri"])
    assert metrics["ModelDataQuality"] == {
        "Statistics": source(DATA_QUALITY_STEP, "CalculatedBaselineStatistics"),
        "Constraints": source(DATA_QUALITY_STEP, "CalculatedBaselineConstraints"),
    }
    assert metrics["ModelQuality"]["Constraints"] == source(
        MODEL_QUALITY_STEP, "CalculatedBaselineConstraints"
    )
    assert metrics["Bias"] == {
        "PreTrainingReport": source(DATA_BIAS_STEP, "CalculatedBaselineConstraints")
    }
    assert register["DriftCheckBaselines"] == {
        "ModelDataQuality": {
            "Statistics": source(DATA_QUALITY_STEP, "BaselineUsedForDriftCheckStatistics"),
            "Constraints": source(DATA_QUALITY_STEP, "BaselineUsedForDriftCheckConstraints"),
        },
        "ModelQuality": {
            "Statistics": source(MODEL_QUALITY_STEP, "BaselineUsedForDriftCheckStatistics"),
            "Constraints": source(MODEL_QUALITY_STEP, "BaselineUsedForDriftCheckConstraints"),
        },
        "Bias": {
            "PreTrainingConstraints": source(DATA_BIAS_STEP, "BaselineUsedForDriftCheckConstraints")
        },
    }
    assert register["MetadataProperties"] == {
        "CommitId": {"Get": "Parameters.GitCommit"},
        "GeneratedBy": {"Get": "Execution.PipelineExecutionArn"},
    }
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {
        "Get": f"Steps.{TRAIN_STEP}.ModelArtifacts.S3ModelArtifacts"
    }
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Image"].endswith("sagemaker-scikit-learn:1.2-1-cpu-py3")


def test_code_is_referenced_by_content_hash(definition_text):
    code = package_code(pipeline_definition.TRAINING_DIR)
    prefix = f"s3://{CONFIG.bucket_name}/{CONFIG.pipeline_name}/code/{code.sha256}/"
    uris = set(re.findall(r"s3://[^\"\\]+/code/[^\"\\]+", definition_text))
    assert uris == {prefix + "preprocess.py", prefix + "evaluate.py", prefix + "sourcedir.tar.gz"}


def test_two_builds_are_byte_identical(definition_text):
    again = definition_json(get_pipeline(CONFIG, offline_session()))
    assert again == definition_text


def test_build_ignores_files_that_are_not_code(tmp_path, definition_text):
    copy = tmp_path / "training"
    shutil.copytree(pipeline_definition.TRAINING_DIR, copy)
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00compiled")
    (copy / "notes.md").write_text("scratch")
    rebuilt = definition_json(get_pipeline(CONFIG, offline_session(), training_dir=copy))
    assert rebuilt == definition_text


def test_a_code_change_changes_only_the_code_keys(tmp_path, definition_text):
    copy = tmp_path / "training"
    shutil.copytree(pipeline_definition.TRAINING_DIR, copy)
    with (copy / "evaluate.py").open("a") as handle:
        handle.write("\n# a change\n")
    rebuilt = definition_json(get_pipeline(CONFIG, offline_session(), training_dir=copy))
    assert rebuilt != definition_text
    normalise = re.compile(r"/code/[0-9a-f]{64}/")
    assert normalise.sub("/code/H/", rebuilt) == normalise.sub("/code/H/", definition_text)


def test_a_user_sdk_defaults_file_cannot_change_the_definition(
    tmp_path, monkeypatch, definition_text
):
    config = tmp_path / "config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\n"
        "SageMaker:\n"
        "  PythonSDK:\n"
        "    Modules:\n"
        "      TelemetryOptOut: false\n"
        "  ProcessingJob:\n"
        "    Tags:\n"
        "      - Key: injected\n"
        "        Value: by-a-config-file\n"
    )
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    rebuilt = definition_json(get_pipeline(CONFIG, offline_session()))
    assert rebuilt == definition_text


def test_sdk_telemetry_never_leaves_the_machine():
    assert telemetry_disabled()


def test_golden_definition(definition_text):
    """Regenerate with: UPDATE_GOLDEN=1 python -m pytest tests/definition/test_definition.py"""
    normalised = re.sub(r"/code/[0-9a-f]{64}/", "/code/<sha256>/", pretty(definition_text))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(normalised)
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing; create it with UPDATE_GOLDEN=1")
    assert normalised == GOLDEN.read_text(), (
        "The definition changed. Review the diff, then regenerate with "
        "UPDATE_GOLDEN=1 python -m pytest tests/definition/test_definition.py"
    )


def test_a_pipelines_dataset_settings_are_its_definitions_parameter_defaults():
    from pipelines.definition.builder import parameters_section
    from pipelines.definition.parameters import ParameterError, typed_defaults

    defaults = typed_defaults(
        {"TargetColumn": "quality", "BiasFacetColumn": "alcohol", "MinTestR2": "0.3"},
        "mlops.pipelines.wine",
    )
    section = {p["Name"]: p["DefaultValue"] for p in parameters_section("", defaults)["Parameters"]}
    assert section["TargetColumn"] == "quality"
    assert section["BiasFacetColumn"] == "alcohol"
    assert section["MinTestR2"] == 0.3
    with pytest.raises(ParameterError, match=r"mlops.pipelines.wine: .*MinTestR2=2.0 must be"):
        typed_defaults({"MinTestR2": 2}, "mlops.pipelines.wine")
    with pytest.raises(ParameterError, match="Unknown parameter Target"):
        typed_defaults({"Target": "x"}, "mlops.pipelines.wine")
