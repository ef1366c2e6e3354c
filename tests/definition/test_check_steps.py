"""The quality gates in the definition: the SDK's check steps, their switches, and the
ProcessingJob requests they imply, validated against botocore's CreateProcessingJob."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters

from pipelines.definition.builder import (
    DATA_BIAS_STEP,
    DATA_QUALITY_STEP,
    EVALUATE_STEP,
    MODEL_QUALITY_STEP,
    PREPROCESS_STEP,
)
from pipelines.executor.expressions import EvaluationContext, resolve
from tests.definition.conftest import CONFIG


@pytest.fixture(scope="module")
def steps(definition_text: str) -> dict[str, dict[str, Any]]:
    return {s["Name"]: s for s in json.loads(definition_text)["Steps"]}


def outputs(step: str, *names: str) -> dict[str, Any]:
    return {
        "ProcessingOutputConfig": {
            "Outputs": [
                {"OutputName": n, "S3Output": {"S3Uri": f"s3://b/exec/{step}/{n}"}} for n in names
            ]
        }
    }


def context(definition_text: str) -> EvaluationContext:
    definition = json.loads(definition_text)
    return EvaluationContext(
        parameters={p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]},
        execution={"PipelineExecutionId": "abc123"},
        step_properties={
            PREPROCESS_STEP: outputs(PREPROCESS_STEP, "train", "validation", "test", "baseline"),
            EVALUATE_STEP: outputs(EVALUATE_STEP, "evaluation", "predictions"),
        },
    )


@pytest.mark.parametrize(
    ("name", "check_type", "skip", "register_new"),
    [
        (
            DATA_QUALITY_STEP,
            "DATA_QUALITY",
            "SkipDataQualityCheck",
            "RegisterNewDataQualityBaseline",
        ),
        (DATA_BIAS_STEP, "DATA_BIAS", "SkipDataBiasCheck", "RegisterNewDataBiasBaseline"),
        (
            MODEL_QUALITY_STEP,
            "MODEL_QUALITY",
            "SkipModelQualityCheck",
            "RegisterNewModelQualityBaseline",
        ),
    ],
)
def test_each_check_has_its_switches_and_the_group(steps, name, check_type, skip, register_new):
    step = steps[name]
    assert step["CheckType"] == check_type
    assert step["SkipCheck"] == {"Get": f"Parameters.{skip}"}
    assert step["RegisterNewBaseline"] == {"Get": f"Parameters.{register_new}"}
    assert step["FailOnViolation"] is True
    # SageMaker looks the latest Approved version's baselines up in this group.
    assert step["ModelPackageGroupName"] == CONFIG.model_package_group_name


def test_checks_read_the_train_split_and_the_predictions(steps, definition_text):
    ctx = context(definition_text)
    data = resolve(steps[DATA_QUALITY_STEP]["Arguments"], ctx)
    assert data["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "s3://b/exec/PreprocessData/train"
    assert json.loads(data["Environment"]["dataset_format"])["csv"]["header"] is True
    model = resolve(steps[MODEL_QUALITY_STEP]["Arguments"], ctx)
    assert model["ProcessingInputs"][0]["S3Input"]["S3Uri"] == (
        "s3://b/exec/EvaluateModel/predictions"
    )
    assert model["Environment"]["problem_type"] == "Regression"
    assert model["Environment"]["inference_attribute"] == "prediction"
    assert model["Environment"]["ground_truth_attribute"] == "label"


def test_the_bias_config_comes_from_the_parameters_through_preprocess(steps, definition_text):
    ctx = context(definition_text)
    bias = resolve(steps[DATA_BIAS_STEP]["Arguments"], ctx)
    inputs = {i["InputName"]: i["S3Input"] for i in bias["ProcessingInputs"]}
    assert inputs["analysis_config"]["S3Uri"] == (
        "s3://b/exec/PreprocessData/baseline/analysis_config.json"
    )
    assert inputs["analysis_config"]["LocalPath"] == "/opt/ml/processing/input/config"
    # Every validated row, not the train split: the same data whatever the seed.
    assert inputs["dataset"]["S3Uri"] == "s3://b/exec/PreprocessData/baseline/dataset.csv"
    preprocess = json.dumps(steps[PREPROCESS_STEP]["Arguments"]["AppSpecification"])
    for name in ("BiasFacetColumn", "BiasFacetThreshold", "BiasLabelThreshold"):
        assert f'"Parameters.{name}"' in preprocess


@pytest.mark.parametrize("name", [DATA_QUALITY_STEP, DATA_BIAS_STEP, MODEL_QUALITY_STEP])
def test_check_requests_are_valid_create_processing_job_requests(steps, definition_text, name):
    """What SageMaker sends to CreateProcessingJob for the analyzer and Clarify images."""
    request = resolve(steps[name]["Arguments"], context(definition_text))
    request["ProcessingJobName"] = f"pipelines-abc123-{name}"
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model("CreateProcessingJob").input_shape)
    image = request["AppSpecification"]["ImageUri"]
    expected = (
        "sagemaker-clarify-processing" if name == DATA_BIAS_STEP else "model-monitor-analyzer"
    )
    assert expected in image
