"""The built-in XGBoost algorithm: its checks as pure functions, and the script itself run
in the XGBoost runtime against the container contract the executor writes (no server)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipelines.containers.algorithms import builtin_algorithm
from pipelines.containers.algorithms import xgboost_algorithm as algorithm
from pipelines.containers.environments import EnvironmentCache
from pipelines.containers.profiles import profiles
from pipelines.executor import toolkit
from pipelines.executor.jobs import Sandbox

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def test_the_xgboost_image_is_the_algorithm_unless_a_script_is_named():
    assert builtin_algorithm(IMAGE, {"num_round": "5"}) == Path(algorithm.__file__)
    assert builtin_algorithm(IMAGE, {"sagemaker_program": '"train.py"'}) is None
    sklearn = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert builtin_algorithm(sklearn, {}) is None


@pytest.mark.parametrize(
    ("given", "kind", "hyperparameter", "message"),
    [
        ({"eta": "0.2"}, "UserError", "num_round", "Missing required hyperparameter: num_round"),
        (
            {"num_round": "10", "eta": "2"},
            "UserError",
            "eta",
            "Hyperparameter eta: 2.0 is not in [0, 1]",
        ),
        (
            {"num_round": "10", "learning_rate": "1.5"},  # an alias of eta
            "UserError",
            "eta",
            "Hyperparameter eta: 1.5 is not in [0, 1]",
        ),
        ({"num_round": "0"}, "UserError", "num_round", "num_round: 0 is not in [1, +inf)"),
        (
            {"num_round": "1.5"},
            "UserError",
            "num_round",
            "Hyperparameter num_round: could not parse value (caused by ValueError)",
        ),
        (
            {"num_round": "5", "silent": "0"},  # AWS's abalone template passes it to 1.0-1
            "UserError",
            "silent",
            "Extraneous hyperparameter found: silent",
        ),
        (
            {"num_round": "5", "objective": "reg:nope"},
            "UserError",
            "objective",
            "Hyperparameter objective: reg:nope is not in ['aft_loss_distribution',",
        ),
        (
            {"num_round": "5", "objective": "multi:softmax"},
            "UserError",
            "objective",
            "Require input for parameter 'num_class' for multi-classification",
        ),
        (
            {"num_round": "5", "objective": "reg:squarederror", "eval_metric": "auc"},
            "UserError",
            "eval_metric",
            "Metric 'auc' can only be applied for classification and ranking problems.",
        ),
        (
            {"num_round": "5", "objective": "reg:squarederror", "eval_metric": "rmse,bogus"},
            "UserError",
            "eval_metric",
            "Hyperparameter eval_metric: value ['rmse', 'bogus'] not in range ['accuracy',",
        ),
        (
            {"num_round": "5", "eval_metric": "rmse"},
            "AlgorithmError",
            "eval_metric",
            "KeyError: 'objective'",
        ),
        (
            {"num_round": "5", "monotone_constraints": "(1,-1)"},
            "UserError",
            "monotone_constraints",
            "monotone_constraints can be used only when the tree_method parameter is set to "
            "either 'exact' or 'hist'.",
        ),
        ({"num_round": "5", "_kfold": "3"}, "NotLocal", "_kfold", "does not run locally"),
    ],
)
def test_hyperparameters_are_refused_as_the_container_refuses_them(
    given, kind, hyperparameter, message
):
    with pytest.raises(algorithm.ToolkitError) as caught:
        algorithm.check_request(given)
    assert type(caught.value).__name__ == kind
    assert caught.value.hyperparameter == hyperparameter
    assert message in str(caught.value)


def test_valid_hyperparameters_parse_to_the_containers_types():
    validated, _ = algorithm.check_request(
        {
            "num_round": "50",
            "learning_rate": "0.2",
            "objective": "reg:squarederror",
            "eval_metric": "rmse,mae",
            "tree_method": "hist",
            "monotone_constraints": "(1,0,-1)",
        }
    )
    assert validated == {
        "num_round": 50,
        "eta": 0.2,
        "objective": "reg:squarederror",
        "eval_metric": ["rmse", "mae"],
        "tree_method": "hist",
        "monotone_constraints": (1, 0, -1),
    }


def test_values_not_known_before_the_run_are_left_to_the_run():
    # num_round from a step's property: present, unchecked; the rest still checked.
    assert algorithm.check_request({"eta": "0.1"}, unresolved={"num_round"})[0] == {"eta": 0.1}
    with pytest.raises(algorithm.UserError, match=r"eta: 3\.0 is not in"):
        algorithm.check_request({"eta": "3"}, unresolved={"num_round"})
    # A dependency not known yet skips the check that needs it.
    validated, _ = algorithm.check_request(
        {"num_round": "5", "eval_metric": "auc"}, unresolved={"objective"}
    )
    assert validated["eval_metric"] == ["auc"]


FILE = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}


def test_channels_default_to_libsvm_and_refuse_what_the_container_refuses():
    _, channels = algorithm.check_request({"num_round": "5"}, {"train": dict(FILE)})
    assert channels["train"]["ContentType"] == "text/libsvm"
    assert algorithm.content_format("text/csv; label_size=1") == "csv"
    assert algorithm.content_format("application/x-parquet") == "parquet"
    cases = [
        ({"validation": {**FILE, "ContentType": "text/csv"}}, "Missing required channel: train"),
        ({"train": FILE, "test": FILE}, "Extraneous channel found: test"),
        (
            # Channel validation compares the whole content type: parameters are refused.
            {"train": {**FILE, "ContentType": "text/csv;label_size=1"}},
            "Channel configuration for 'train' channel is not supported",
        ),
        ({"train": {**FILE, "ContentType": "application/json"}}, "is not supported"),
        (
            {"train": {**FILE, "ContentType": "application/x-recordio-protobuf"}},
            "does not run locally",
        ),
    ]
    for channels_given, message in cases:
        with pytest.raises(algorithm.ToolkitError, match=message):
            algorithm.check_request({"num_round": "5"}, channels_given)


def test_the_algorithms_metric_lines_fill_its_metric_definitions():
    log = "\n".join(
        [
            "[0]\ttrain-rmse:1.50000\tvalidation-rmse:1.70000",
            "[1]\ttrain-rmse:1.20000\tvalidation-rmse:1.40000\tvalidation-mae:1.1",
            "[2022-08-27:00:38:46:INFO] Single node training.",
        ]
    )
    assert toolkit.scrape_metric_lines(log, algorithm.METRIC_DEFINITIONS) == {
        "train:rmse": 1.2,
        "validation:rmse": 1.4,
        "validation:mae": 1.1,
    }


# --- The script, in the runtime ----------------------------------------------------------


@pytest.fixture(scope="module")
def python(runtime_cache: Path) -> str:
    return EnvironmentCache(runtime_cache).ensure(profiles()["xgboost-1.7-1"]).python


def rows(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    features = rng.uniform(-1, 1, size=(count, 2))
    return np.column_stack([2 * features[:, 0] - features[:, 1], features])


def run_algorithm(python: str, root: Path, hyperparameters: dict, channels: dict) -> tuple:
    """Write the contract as the executor does and run the script; (exit code, log)."""
    sandbox = Sandbox(root)
    request = {
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {"ChannelName": name, **({"ContentType": kind} if kind else {})}
            for name, kind in channels.items()
        ],
        "ResourceConfig": {"InstanceType": "ml.m5.large"},
    }
    contract = toolkit.training_contract(
        request, sandbox, job_name="job", program=None, submit_dir=None, cmd_args=lambda _: []
    )
    for folder in ("/opt/ml/model", "/opt/ml/output/data"):
        sandbox.path(folder).mkdir(parents=True, exist_ok=True)
    image_env = {
        name: sandbox.remap(value) for name, value in profiles()["xgboost-1.7-1"].environment
    }
    result = subprocess.run(
        [python, str(Path(algorithm.__file__))],
        env={**image_env, **contract.env, "TEMP": str(root)},
        capture_output=True,
        text=True,
        cwd=root,
    )
    return result.returncode, result.stdout + result.stderr


def test_libsvm_files_anywhere_under_the_channel_are_read_by_default(python, tmp_path):
    train = tmp_path / "opt/ml/input/data/train"
    (train / "more/deeper").mkdir(parents=True)
    data = rows(90, 1)
    for index, (folder, chunk) in enumerate(
        zip([train, train / "more", train / "more/deeper"], np.array_split(data, 3), strict=True)
    ):
        (folder / f"part-{index}").write_text(
            "".join(f"{r[0]:.5f} 1:{r[1]:.5f} 2:{r[2]:.5f}\n" for r in chunk)
        )
    code, log = run_algorithm(
        python, tmp_path, {"num_round": "20", "objective": "reg:squarederror"}, {"train": None}
    )
    assert code == 0, log
    assert "Train matrix has 90 rows" in log  # all three files, the nested ones too
    assert "[19]\ttrain-rmse:" in log
    assert (tmp_path / "opt/ml/model/xgboost-model").read_bytes()[:4] == b"binf"


def test_parquet_reads_the_label_from_the_first_column(python, tmp_path):
    train = tmp_path / "opt/ml/input/data/train"
    validation = tmp_path / "opt/ml/input/data/validation"
    # One interpreter start writes both splits (pyarrow is the runtime's, not the host's).
    writer = (
        "import sys, numpy, pyarrow, pyarrow.parquet as pq\n"
        "for source, target in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    data = numpy.loadtxt(source, delimiter=',')\n"
        "    columns = {f'c{i}': data[:, i] for i in range(data.shape[1])}\n"
        "    pq.write_table(pyarrow.table(columns), target)\n"
    )
    arguments = []
    for folder, seed, count in ((train, 2, 80), (validation, 3, 20)):
        folder.mkdir(parents=True)
        source = tmp_path / f"{folder.name}.csv"
        np.savetxt(source, rows(count, seed), delimiter=",")
        arguments += [str(source), str(folder / "data.parquet")]
    subprocess.run([python, "-c", writer, *arguments], check=True)
    code, log = run_algorithm(
        python,
        tmp_path,
        {"num_round": "30", "objective": "reg:squarederror"},
        {"train": "application/x-parquet", "validation": "application/x-parquet"},
    )
    assert code == 0, log
    assert "Train matrix has 80 rows and 2 columns" in log
    assert "Validation matrix has 20 rows" in log
    last = next(line for line in log.splitlines() if line.startswith("[29]\t"))
    assert float(last.rsplit("validation-rmse:", 1)[1]) < 0.3  # label = 2*x0 - x1


def test_a_refused_hyperparameter_fails_the_run_and_explains_it_in_the_failure_file(
    python, tmp_path
):
    (tmp_path / "opt/ml/input/data/train").mkdir(parents=True)
    code, log = run_algorithm(python, tmp_path, {"num_round": "5", "eta": "2"}, {"train": None})
    assert code == 1
    assert "Reporting training FAILURE" in log
    failure = (tmp_path / "opt/ml/output/failure").read_text()
    assert failure == "UserError: Hyperparameter eta: 2.0 is not in [0, 1]"
    assert not (tmp_path / "opt/ml/model/xgboost-model").exists()
    assert json.loads((tmp_path / "opt/ml/input/config/hyperparameters.json").read_text()) == {
        "num_round": "5",
        "eta": "2",
    }
