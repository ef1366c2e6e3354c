"""Registered model versions in the emulator, made the way the pipeline makes them:
real training on the sample data, the real code bundle, real reports, and the baselines the
check steps calculate (``pipelines.executor.checks``), registered where the definition's
RegisterModel step puts them (``build_register_step``: ``ModelMetrics`` and, as on a group's
first run, the same files as ``DriftCheckBaselines``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.config.infra_config import InfraConfig
from pipelines.config.settings import PROJECT_ROOT
from pipelines.containers.environments import EnvironmentCache
from pipelines.containers.profiles import profile_for_image
from pipelines.definition.builder import TRAINING_DIR
from pipelines.definition.code_package import package_code, upload_code
from pipelines.executor import checks
from pipelines.executor.runners import artifact_identities
from pipelines.registry import APPROVED, ModelVersion, Registry
from tests.support import terraform_named

ACCOUNT = "123456789012"
CONFIG = terraform_named(
    InfraConfig(
        region="us-east-1",
        account_id=ACCOUNT,
        environment="test",
        name_prefix="serving",
        bucket_name="serving-tests",
        bucket_arn="arn:aws:s3:::serving-tests",
        execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/serving-tests",
        model_package_group_name="serving-models",
        model_package_group_arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/serving-models",
        pipeline_name="serving-pipeline",
    )
)
SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
EXECUTION = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/p/execution/exec"


def run_script(name: str, *args: str) -> None:
    """Run a training script where SageMaker runs it: in the 1.2-1 image's runtime, so
    the model server (which runs there too) can load what it trained."""
    python = EnvironmentCache(Path(os.environ["MLOPS_RUNTIME_CACHE"])).ensure(
        profile_for_image(IMAGE)
    )
    subprocess.run(
        [python.python, str(TRAINING_DIR / name), *args], check=True, capture_output=True
    )


@pytest.fixture(scope="session")
def splits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("splits")
    run_script(
        "preprocess.py",
        f"--input-dir={SAMPLE.parent}",
        f"--input-file={SAMPLE.name}",
        f"--output-dir={out}",
        "--target-column=medv",
        "--bias-facet=chas",
    )
    return out


def _csv_format(**more: str) -> dict:
    return {"Environment": {"dataset_format": json.dumps({"csv": {"header": True}}), **more}}


def _metrics_source(uri: str) -> dict:
    return {"ContentType": "application/json", "S3Uri": uri}


@pytest.fixture(scope="session")
def register_version(
    tmp_path_factory: pytest.TempPathFactory, emulator_connection, splits: Path
) -> Callable[..., ModelVersion]:
    """Train a model with ``n_estimators`` trees and register it; returns the version."""
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=CONFIG.bucket_name)
    sagemaker = emulator_connection.client("sagemaker")
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.create_model_package_group(ModelPackageGroupName=CONFIG.model_package_group_name)
    code = package_code(TRAINING_DIR)
    upload_code(code, s3, CONFIG.bucket_name, CONFIG.pipeline_name)
    analyzer = checks.load_analyzer()

    def put_json(key: str, document: dict) -> str:
        s3.put_object(Bucket=CONFIG.bucket_name, Key=key, Body=json.dumps(document).encode())
        return f"s3://{CONFIG.bucket_name}/{key}"

    # CheckDataQuality's and CheckDataBias's calculated baselines of the train split.
    data_quality = checks.analyze_quality(analyzer, _csv_format(), splits / "train").documents
    data_statistics = put_json("baselines/data/statistics.json", data_quality["statistics.json"])
    data_constraints = put_json("baselines/data/constraints.json", data_quality["constraints.json"])
    bias = checks.analyze_bias(analyzer, splits / "baseline", splits / "train").documents
    bias_analysis = put_json("baselines/bias/analysis.json", bias["analysis.json"])

    def register(n_estimators: int = 10, approve: bool = True) -> ModelVersion:
        work = tmp_path_factory.mktemp(f"model-{n_estimators}")
        run_script(
            "train.py",
            f"--train={splits / 'train'}",
            f"--validation={splits / 'validation'}",
            f"--model-dir={work / 'model'}",
            f"--output-data-dir={work / 'output'}",
            "--n_estimators",
            str(n_estimators),
        )
        run_script(
            "evaluate.py",
            f"--model-dir={work / 'model'}",
            f"--test-dir={splits / 'test'}",
            f"--output-dir={work / 'evaluation'}",
            f"--predictions-dir={work / 'predictions'}",
        )
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for path in sorted((work / "model").iterdir()):
                tar.add(path, arcname=path.name)
        model_key = f"models/{n_estimators}/model.tar.gz"
        s3.put_object(Bucket=CONFIG.bucket_name, Key=model_key, Body=archive.getvalue())
        report = put_json(
            f"reports/{n_estimators}/evaluation.json",
            json.loads((work / "evaluation" / "evaluation.json").read_text()),
        )
        # CheckModelQualityBaseline's calculated baseline of the test predictions.
        model_quality = checks.analyze_quality(
            analyzer,
            _csv_format(
                analysis_type="MODEL_QUALITY",
                problem_type="Regression",
                inference_attribute="prediction",
                ground_truth_attribute="label",
            ),
            work / "predictions",
        ).documents
        quality_statistics = put_json(
            f"baselines/model/{n_estimators}/statistics.json", model_quality["statistics.json"]
        )
        quality_constraints = put_json(
            f"baselines/model/{n_estimators}/constraints.json", model_quality["constraints.json"]
        )
        inference = {
            "Containers": [
                {
                    "Image": IMAGE,
                    "ModelDataUrl": f"s3://{CONFIG.bucket_name}/{model_key}",
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": code.s3_uri(
                            CONFIG.bucket_name, CONFIG.pipeline_name
                        ),
                    },
                }
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["text/csv", "application/json"],
        }
        arn = sagemaker.create_model_package(
            ModelPackageGroupName=CONFIG.model_package_group_name,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification=inference,
            # What the local executor's RegisterModel records: the tarballs' digests.
            CustomerMetadataProperties=artifact_identities(
                s3, {"InferenceSpecification": inference}
            ),
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": _metrics_source(report),
                    "Constraints": _metrics_source(quality_constraints),
                },
                "ModelDataQuality": {
                    "Statistics": _metrics_source(data_statistics),
                    "Constraints": _metrics_source(data_constraints),
                },
                "Bias": {"PreTrainingReport": _metrics_source(bias_analysis)},
            },
            DriftCheckBaselines={
                "ModelQuality": {
                    "Statistics": _metrics_source(quality_statistics),
                    "Constraints": _metrics_source(quality_constraints),
                },
                "ModelDataQuality": {
                    "Statistics": _metrics_source(data_statistics),
                    "Constraints": _metrics_source(data_constraints),
                },
                "Bias": {"PreTrainingConstraints": _metrics_source(bias_analysis)},
            },
            MetadataProperties={
                "GeneratedBy": f"{EXECUTION}{n_estimators}",
                "CommitId": "0123456789abcdef",
            },
        )["ModelPackageArn"]
        registry = Registry(emulator_connection, CONFIG.model_package_group_name)
        version = registry.describe(arn)
        if approve:
            version = registry.set_status(version.version, APPROVED, "tests", "pytest")
        return version

    return register


def read_jsonl(s3, bucket: str, prefix: str) -> list[dict]:
    records = []
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
        records += [json.loads(line) for line in body.splitlines() if line]
    return records


# --- an XGBoost built-in-algorithm model (algorithm mode: a pickled Booster, no code) ---------

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
_TRAIN_XGBOOST = """
import pickle, sys
import numpy as np, xgboost as xgb
rng = np.random.default_rng(0)
features = rng.normal(size=(200, 3))
label = features @ np.array([1.5, -2.0, 0.5]) + 3.0
booster = xgb.train({"objective": "reg:squarederror", "max_depth": 3},
                    xgb.DMatrix(features, label=label), num_boost_round=20)
with open(sys.argv[1], "wb") as handle:
    pickle.dump(booster, handle)
"""
_PREDICT_XGBOOST = """
import json, pickle, sys
import numpy as np, xgboost as xgb
with open(sys.argv[1], "rb") as handle:
    booster = pickle.load(handle)
rows = json.loads(sys.argv[2])
print(json.dumps([float(p) for p in booster.predict(xgb.DMatrix(np.array(rows, dtype=float)))]))
"""


def xgboost_python() -> str:
    profile = profile_for_image(XGBOOST_IMAGE)
    return EnvironmentCache(Path(os.environ["MLOPS_RUNTIME_CACHE"])).ensure(profile).python


def xgboost_model_tarball(folder: Path) -> bytes:
    """model.tar.gz holding ``xgboost-model``: a Booster pickled in the 1.7-1 runtime, as the
    container's algorithm mode saves it (3 features, regression)."""
    model = folder / "xgboost-model"
    subprocess.run([xgboost_python(), "-c", _TRAIN_XGBOOST, str(model)], check=True)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(model, arcname="xgboost-model")
    return archive.getvalue()


def xgboost_predictions(folder: Path, rows: list[list[float]]) -> list[float]:
    """What the pickled Booster predicts for ``rows``, computed in its own runtime."""
    result = subprocess.run(
        [xgboost_python(), "-c", _PREDICT_XGBOOST, str(folder / "xgboost-model"), json.dumps(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)
