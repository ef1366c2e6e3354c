"""XGBoost training jobs built with the SageMaker SDK, run by the local executor in the
XGBoost image's runtime: the built-in algorithm (hyperparameters only) and the framework
estimator (a script), as AWS's project templates use them.

Every definition comes from the SDK (``Pipeline.definition()``) with a session bound to the
emulator, like ``test_container_runtime``, whose helpers these tests share.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sagemaker import image_uris
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.workflow.parameters import ParameterFloat
from sagemaker.workflow.steps import TrainingStep
from sagemaker.xgboost.estimator import XGBoost

from pipelines.containers.environments import EnvironmentCache
from pipelines.containers.profiles import profiles
from pipelines.definition.sdk_session import definition_session
from tests.executor.test_container_runtime import (
    BUCKET,
    ROLE,
    definition,
    log_of,
    make_backend,
    put,
    run,
)
from tests.support import source_tarball

# A metric line of the algorithm, as xgboost's EvaluationMonitor prints it.
METRIC_LINE = re.compile(r"^\[(\d+)\]\ttrain-rmse:([0-9.]+)\tvalidation-rmse:([0-9.]+)$", re.M)


@pytest.fixture(scope="module")
def session(emulator_connection):
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    return definition_session(
        "us-east-1",
        BUCKET,
        emulator_connection.session,
        endpoint_url=emulator_connection.endpoint_url,
        ca_bundle=str(emulator_connection.ca_bundle),
    )


@pytest.fixture
def backend(tmp_path, emulator_connection, runtime_cache):
    return make_backend(tmp_path, emulator_connection, runtime_cache)


def xgboost_image(version: str) -> str:
    return image_uris.retrieve("xgboost", region="us-east-1", version=version)


def regression_rows(count: int, seed: int) -> np.ndarray:
    """label, x0, x1, x2 with label = 3*x0 - 2*x1 + noise (x2 is noise)."""
    rng = np.random.default_rng(seed)
    features = rng.uniform(-1, 1, size=(count, 3))
    label = 3 * features[:, 0] - 2 * features[:, 1] + rng.normal(0, 0.1, count)
    return np.column_stack([label, features])


def csv_text(rows: np.ndarray) -> str:
    # The algorithm's CSV: label first, no header.
    return "".join(",".join(f"{value:.6f}" for value in row) + "\n" for row in rows)


def upload_csv(connection, prefix: str, rows: np.ndarray, parts: int = 1) -> str:
    for index, chunk in enumerate(np.array_split(rows, parts)):
        put(connection, f"{prefix}/part-{index}.csv", csv_text(chunk))
    return f"s3://{BUCKET}/{prefix}"


def algorithm_step(session, name: str, version: str, hyperparameters, inputs) -> TrainingStep:
    estimator = Estimator(
        image_uri=xgboost_image(version),
        role=ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"s3://{BUCKET}/xgboost-models",
        hyperparameters=hyperparameters,
        sagemaker_session=session,
    )
    return TrainingStep(name=name, estimator=estimator, inputs=inputs)


def runtime_python(runtime_cache: Path, version: str) -> str:
    return EnvironmentCache(runtime_cache).ensure(profiles()[f"xgboost-{version}"]).python


# What AWS's abalone evaluation script does with model.tar.gz (pipelines/abalone/
# evaluate.py of the SageMaker project templates): extract it, unpickle xgboost-model,
# predict on the test split. The pickle.load is tried as the template does; a model of
# the 1.3-1 and later containers is Booster.save_model's format, so it is loaded the way
# the container's own serving falls back to (serve_utils.get_loaded_booster).
EVALUATE = """
import json, pickle, sys, tarfile
import numpy, xgboost
unpickle_error = None
with tarfile.open(sys.argv[1]) as tar:
    names = tar.getnames()
    tar.extractall(path=".")
try:
    model = pickle.load(open("xgboost-model", "rb"))
    loaded_by = "pickle"
except Exception as error:
    unpickle_error = type(error).__name__
    model = xgboost.Booster()
    model.load_model("xgboost-model")
    loaded_by = "load_model"
test = numpy.loadtxt(sys.argv[2], delimiter=",")
predictions = model.predict(xgboost.DMatrix(test[:, 1:]))
residual = ((test[:, 0] - predictions) ** 2).sum()
total = ((test[:, 0] - test[:, 0].mean()) ** 2).sum()
print(json.dumps({
    "names": names, "loaded_by": loaded_by, "unpickle_error": unpickle_error,
    "header": open("xgboost-model", "rb").read(4).decode("latin-1"),
    "r2": 1 - residual / total, "rounds": model.num_boosted_rounds(),
    "xgboost": xgboost.__version__,
}))
"""


@pytest.mark.parametrize(
    ("version", "header", "xgboost_version"),
    [("1.7-1", "binf", "1.7.4"), ("3.0-5", "{L\x00\x00", "3.0.5")],
)
def test_the_builtin_algorithm_trains_and_an_evaluation_script_loads_its_model(
    backend,
    session,
    emulator_connection,
    runtime_cache,
    tmp_path,
    version,
    header,
    xgboost_version,
):
    train = upload_csv(emulator_connection, f"xgb-{version}/train", regression_rows(400, 1), 2)
    validation = upload_csv(
        emulator_connection, f"xgb-{version}/validation", regression_rows(100, 2)
    )
    step = algorithm_step(
        session,
        "Train",
        version,
        {
            "objective": "reg:squarederror",
            "num_round": 300,
            "max_depth": 3,
            "eta": 0.3,
            "eval_metric": "rmse",
            "early_stopping_rounds": 5,
        },
        {
            "train": TrainingInput(train, content_type="text/csv"),
            "validation": TrainingInput(validation, content_type="text/csv"),
        },
    )
    text = definition(session, step)
    assert "sagemaker_program" not in text  # the built-in algorithm: no script
    execution = run(backend, text)
    assert execution.status == "Succeeded", execution.failure_reason
    (fit,) = backend.steps(execution.execution_id)
    log = log_of(backend, execution, "Train")
    assert "Running XGBoost Sagemaker in algorithm mode" in log
    assert "Train matrix has 400 rows and 3 columns" in log
    lines = METRIC_LINE.findall(log)
    # Early stopping: rounds stop 5 after the best validation-rmse, well before 300.
    assert 5 < len(lines) < 300
    assert [int(number) for number, _, _ in lines] == list(range(len(lines)))

    # FinalMetricDataList: the algorithm's own metric definitions, the last value each.
    final = {item["MetricName"]: item["Value"] for item in fit.properties["FinalMetricDataList"]}
    assert final == {
        "train:rmse": float(lines[-1][1]),
        "validation:rmse": float(lines[-1][2]),
    }
    assert final["validation:rmse"] < 0.3  # the noise is 0.1; the label's spread is ~2
    # DescribeTrainingJob shows the definitions SageMaker applied, as it does on AWS.
    defined = fit.properties["AlgorithmSpecification"]["MetricDefinitions"]
    assert {d["Name"]: d["Regex"] for d in defined}["validation:rmse"].startswith(
        ".*\\[[0-9]+\\].*#011validation-rmse:"
    )

    archive = tmp_path / "model.tar.gz"
    uri = fit.properties["ModelArtifacts"]["S3ModelArtifacts"]
    emulator_connection.client("s3").download_file(
        BUCKET, uri.split(f"{BUCKET}/", 1)[1], str(archive)
    )
    test_split = tmp_path / "test.csv"
    test_split.write_text(csv_text(regression_rows(100, 3)))
    result = subprocess.run(
        [runtime_python(runtime_cache, version), "-c", EVALUATE, str(archive), str(test_split)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    evaluation = json.loads(result.stdout.strip().splitlines()[-1])
    assert evaluation["xgboost"] == xgboost_version
    assert evaluation["names"] == ["xgboost-model"]
    # The model file is the container's: Booster.save_model's format, not a pickle
    # (legacy binary under 1.7, UBJSON under 3.0), exactly as on SageMaker.
    assert evaluation["header"] == header
    assert evaluation["loaded_by"] == "load_model"
    assert evaluation["unpickle_error"] == "UnpicklingError"
    assert evaluation["r2"] > 0.95
    # save_best: the model ends at the round with the best validation-rmse.
    best = min(range(len(lines)), key=lambda index: float(lines[index][2]))
    assert evaluation["rounds"] == best + 1 < len(lines)


def test_hyperparameters_the_algorithm_refuses_fail_before_the_first_step(
    backend, session, emulator_connection
):
    data = upload_csv(emulator_connection, "xgb-refused/train", regression_rows(50, 4))
    eta = ParameterFloat(name="Eta", default_value=0.2)
    fit = algorithm_step(
        session,
        "Fit",
        "1.7-1",
        {"objective": "reg:squarederror", "num_round": 10, "eta": eta},
        {"train": TrainingInput(data, content_type="text/csv")},
    )
    text = definition(session, fit, parameters=[eta])

    execution = run(backend, text, {"Eta": 1.5})
    assert execution.status == "Failed"
    assert backend.steps(execution.execution_id) == []  # nothing ran
    assert (
        "Step Fit: HyperParameters.eta: UserError: Hyperparameter eta: 1.5 is not in [0, 1]"
        in execution.failure_reason
    )

    typo = algorithm_step(
        session,
        "Typo",
        "1.7-1",
        {"objective": "reg:squarederror", "num_rounds": 10},
        {"train": TrainingInput(data, content_type="text/csv")},
    )
    execution = run(backend, definition(session, typo))
    assert backend.steps(execution.execution_id) == []
    assert (
        "Step Typo: HyperParameters.num_round: UserError: Missing required hyperparameter: "
        "num_round" in execution.failure_reason
    )


def test_a_request_only_the_data_shows_wrong_fails_the_job_as_the_container_does(
    backend, session, emulator_connection
):
    # Labels of a regression for a logistic objective: xgboost refuses them once it sees
    # the data, and the container reports that as the user's error.
    data = upload_csv(emulator_connection, "xgb-labels/train", regression_rows(50, 5))
    step = algorithm_step(
        session,
        "Logistic",
        "1.7-1",
        {"objective": "binary:logistic", "num_round": 5},
        {"train": TrainingInput(data, content_type="text/csv")},
    )
    execution = run(backend, definition(session, step))
    assert execution.status == "Failed"
    (failed,) = backend.steps(execution.execution_id)
    assert failed.failure_reason.startswith("AlgorithmError: UserError: ")
    assert "label must be in [0,1] for logistic regression" in failed.failure_reason
    assert "Reporting training FAILURE" in log_of(backend, execution, "Logistic")


def test_an_xgboost_version_without_a_runtime_is_refused_naming_the_supported_ones(
    backend, session, emulator_connection
):
    step = algorithm_step(
        session,
        "Old",
        "1.5-1",
        {"num_round": 10},
        {"train": TrainingInput(f"s3://{BUCKET}/xgb-refused/train", content_type="text/csv")},
    )
    execution = run(backend, definition(session, step))
    assert execution.status == "Failed"
    assert backend.steps(execution.execution_id) == []
    assert (
        "Step Old: AlgorithmSpecification.TrainingImage: xgboost 1.5-1 (image "
        in execution.failure_reason
    )
    assert "the supported xgboost versions are 1.7-1, 3.0-5" in execution.failure_reason


FRAMEWORK_SCRIPT = """
import argparse, json, os, sys
import numpy, xgboost
parser = argparse.ArgumentParser()
parser.add_argument("--num_round", type=int)
parser.add_argument("--max_depth", type=int)
args = parser.parse_args()
names = ["SAGEMAKER_TRAINING_MODULE", "SM_FRAMEWORK_MODULE", "SM_MODULE_NAME",
         "SM_USER_ENTRY_POINT", "SM_HP_NUM_ROUND", "LC_ALL"]
print("env", json.dumps({name: os.environ.get(name) for name in names}))
print("versions", sys.version_info[:2], xgboost.__version__)
data = numpy.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "part-0.csv"), delimiter=",")
matrix = xgboost.DMatrix(data[:, 1:], label=data[:, 0])
booster = xgboost.train({"max_depth": args.max_depth}, matrix, num_boost_round=args.num_round)
booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "xgboost-model"))
print("trained", booster.num_boosted_rounds())
"""


def test_the_xgboost_framework_estimator_runs_its_script_in_the_xgboost_runtime(
    backend, session, emulator_connection
):
    source = put(
        emulator_connection,
        "xgb-script/sourcedir.tar.gz",
        source_tarball({"train.py": FRAMEWORK_SCRIPT}),
    )
    data = upload_csv(emulator_connection, "xgb-script/train", regression_rows(60, 6))
    estimator = XGBoost(
        entry_point="train.py",
        source_dir=source,
        framework_version="1.7-1",
        role=ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        hyperparameters={"num_round": 7, "max_depth": 2},
        output_path=f"s3://{BUCKET}/xgboost-models",
        sagemaker_session=session,
    )
    step = TrainingStep(
        name="Script",
        estimator=estimator,
        inputs={"train": TrainingInput(data, content_type="text/csv")},
    )
    execution = run(backend, definition(session, step))
    assert execution.status == "Succeeded", execution.failure_reason
    log = log_of(backend, execution, "Script")
    env = json.loads(log.split("env ", 1)[1].splitlines()[0])
    assert env == {
        "SAGEMAKER_TRAINING_MODULE": "sagemaker_xgboost_container.training:main",
        "SM_FRAMEWORK_MODULE": "sagemaker_xgboost_container.training:main",
        "SM_MODULE_NAME": "train",
        "SM_USER_ENTRY_POINT": "train.py",
        "SM_HP_NUM_ROUND": "7",
        "LC_ALL": "C.UTF-8",
    }
    assert "versions (3, 9) 1.7.4" in log
    assert "trained 7" in log
