"""training/train.py: hyperparameters, metric lines, model artefacts, bad channels."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "training" / "train.py"


def train_args(cli, splits: Path, out: Path, **extra: object) -> list[str]:
    return cli(
        train=splits / "train",
        validation=splits / "validation",
        model_dir=out / "model",
        output_data_dir=out / "output",
        **extra,
    )


def test_import_has_no_side_effects_and_exposes_metric_definitions(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("train_import_probe", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")
    assert list(tmp_path.iterdir()) == []
    names = [d["Name"] for d in module.METRIC_DEFINITIONS]
    assert names == ["train:rmse", "validation:rmse", "validation:mae", "validation:r2"]
    assert module.METRIC_DEFINITIONS[1]["Regex"] == "validation:rmse=([0-9\\.eE+-]+);"


@pytest.mark.parametrize("value", [None, "None", "none", "null", "0", "", '"None"'])
def test_max_depth_none_spellings(train, value):
    assert train.parse_max_depth(value) is None


def test_max_depth_and_int_parsing(train):
    assert train.parse_max_depth("8") == 8
    assert train.parse_int("n_estimators", "100.0") == 100
    assert train.parse_int("n_estimators", '"50"') == 50
    with pytest.raises(train.DataValidationError, match="n_estimators must be an integer"):
        train.parse_int("n_estimators", "ten")
    with pytest.raises(train.DataValidationError, match="must be >= 1"):
        train.parse_int("min_samples_leaf", "0", minimum=1)
    with pytest.raises(train.DataValidationError, match="max_depth must be >= 1"):
        train.parse_max_depth("-3")


def test_sagemaker_style_hyperparameters_underscores_and_dashes(train):
    parser = train.build_parser()
    args, unknown = parser.parse_known_args(
        ["--n_estimators", "25", "--max-depth", "4", "--min_samples_leaf", "2", "--extra", "x"]
    )
    assert train.resolve_hyperparameters(args) == {
        "n_estimators": 25,
        "max_depth": 4,
        "min_samples_leaf": 2,
        "random_state": 42,
        "n_jobs": 1,
    }
    assert unknown == ["--extra", "x"]


def test_channel_paths_come_from_sagemaker_environment(train, monkeypatch):
    monkeypatch.setenv("SM_CHANNEL_TRAIN", "/data/tr")
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", "/data/va")
    monkeypatch.setenv("SM_MODEL_DIR", "/m")
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", "/o")
    args = train.build_parser().parse_args([])
    assert (args.train, args.validation, args.model_dir, args.output_data_dir) == (
        "/data/tr",
        "/data/va",
        "/m",
        "/o",
    )
    assert train.build_parser().parse_args(["--train", "/x"]).train == "/x"


def test_training_writes_model_metadata_and_metrics(train, cli, boston_splits, tmp_path, capsys):
    rc = train.main(
        train_args(cli, boston_splits, tmp_path, n_estimators=10, max_depth=6, unknown_hp=1)
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "ignoring unknown arguments: ['--unknown-hp', '1']" in out
    model = joblib.load(tmp_path / "model" / "model.joblib")
    assert (model.n_estimators, model.max_depth, model.n_features_in_) == (10, 6, 13)
    metadata = json.loads((tmp_path / "model" / "model_metadata.json").read_text())
    header = (boston_splits / "train" / "train.csv").read_text().splitlines()[0].split(",")
    assert metadata["target"] == header[0] == "medv"
    assert metadata["features"] == header[1:]
    assert metadata["hyperparameters"]["max_depth"] == 6
    metrics = json.loads((tmp_path / "output" / "metrics.json").read_text())
    assert set(metrics) == {"train", "validation"}
    assert metrics["validation"]["rmse"] == pytest.approx(metrics["validation"]["mse"] ** 0.5)


def test_metric_lines_match_the_metric_definitions(train, cli, boston_splits, tmp_path, capsys):
    assert train.main(train_args(cli, boston_splits, tmp_path, n_estimators=10)) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "output" / "metrics.json").read_text())
    for definition in train.METRIC_DEFINITIONS:
        matches = re.findall(definition["Regex"], out)
        assert len(matches) == 1, definition["Name"]
        split, name = definition["Name"].split(":")
        assert float(matches[0]) == metrics[split][name]
    lines = [line for line in out.splitlines() if "=" in line and line.endswith(";")]
    assert lines == train.metric_lines(metrics)


def test_metric_lines_format_negative_and_exponent_values(train):
    metrics = {
        "train": {"rmse": 1.5e-7, "mae": 0.0, "r2": 1.0},
        "validation": {"rmse": 3.25, "mae": 2.0, "r2": -0.5},
    }
    lines = train.metric_lines(metrics)
    assert lines == [
        "train:rmse=1.5e-07;",
        "validation:rmse=3.25;",
        "validation:mae=2.0;",
        "validation:r2=-0.5;",
    ]
    for definition, line in zip(train.METRIC_DEFINITIONS, lines, strict=True):
        assert float(re.search(definition["Regex"], line).group(1)) == float(
            line.split("=")[1].rstrip(";")
        )


def test_csv_files_of_a_channel_are_concatenated(train, cli, boston_splits, tmp_path):
    splits = tmp_path / "splits"
    shutil.copytree(boston_splits / "validation", splits / "validation")
    lines = (boston_splits / "train" / "train.csv").read_text().splitlines()
    (splits / "train").mkdir(parents=True)
    (splits / "train" / "part-1.csv").write_text("\n".join(lines[:201]) + "\n")
    (splits / "train" / "part-2.csv").write_text("\n".join([lines[0], *lines[201:]]) + "\n")
    assert train.main(train_args(cli, splits, tmp_path, n_estimators=5)) == 0
    metadata = json.loads((tmp_path / "model" / "model_metadata.json").read_text())
    assert metadata["row_counts"]["train"] == len(lines) - 1 == 354


def test_target_column_argument_overrides_first_column(train, cli, boston_splits, tmp_path):
    rc = train.main(train_args(cli, boston_splits, tmp_path, n_estimators=5, target_column="lstat"))
    assert rc == 0
    metadata = json.loads((tmp_path / "model" / "model_metadata.json").read_text())
    assert metadata["target"] == "lstat"
    assert "medv" in metadata["features"]
    assert "lstat" not in metadata["features"]


def expect_error(train, cli, splits, tmp_path, capsys, **extra) -> str:
    rc = train.main(train_args(cli, splits, tmp_path, n_estimators=5, **extra))
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("ERROR: ")
    assert "Traceback" not in err
    assert not (tmp_path / "model" / "model.joblib").exists()
    return err


def test_empty_channel_is_an_error(train, cli, boston_splits, tmp_path, capsys):
    splits = tmp_path / "splits"
    shutil.copytree(boston_splits / "validation", splits / "validation")
    (splits / "train").mkdir()
    err = expect_error(train, cli, splits, tmp_path, capsys)
    assert f"train channel directory {splits / 'train'} is empty" in err


def test_channel_without_csv_is_an_error(train, cli, boston_splits, tmp_path, capsys):
    splits = tmp_path / "splits"
    shutil.copytree(boston_splits / "train", splits / "train")
    (splits / "validation").mkdir()
    (splits / "validation" / "data.parquet").write_bytes(b"PAR1")
    err = expect_error(train, cli, splits, tmp_path, capsys)
    assert "no .csv file in validation channel directory" in err
    assert "data.parquet" in err


def test_missing_channel_directory_is_an_error(train, cli, boston_splits, tmp_path, capsys):
    splits = tmp_path / "splits"
    shutil.copytree(boston_splits / "train", splits / "train")
    err = expect_error(train, cli, splits, tmp_path, capsys)
    assert "validation channel directory" in err
    assert "does not exist" in err


def test_non_numeric_training_data_is_an_error(train, cli, boston_splits, tmp_path, capsys):
    splits = tmp_path / "splits"
    shutil.copytree(boston_splits, splits)
    path = splits / "train" / "train.csv"
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[2] = "high"
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    err = expect_error(train, cli, splits, tmp_path, capsys)
    assert str(path) in err
    assert "column 'zn' has 1 non-numeric" in err
    assert "in 354 data rows; first at row 3: 'high'" in err


def test_empty_csv_file_is_an_error(train, cli, boston_splits, tmp_path, capsys):
    splits = tmp_path / "splits"
    shutil.copytree(boston_splits, splits)
    (splits / "train" / "train.csv").write_text("")
    err = expect_error(train, cli, splits, tmp_path, capsys)
    assert f"{splits / 'train' / 'train.csv'} is empty" in err


def test_bad_hyperparameter_is_an_error(train, cli, boston_splits, tmp_path, capsys):
    err = expect_error(train, cli, boston_splits, tmp_path, capsys, max_depth="deep")
    assert "hyperparameter max_depth must be an integer, got 'deep'" in err


def test_importing_train_for_its_metric_definitions_loads_no_ml_library():
    """The pipeline builder imports train.py on every build; it must stay cheap."""
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('t', 'training/train.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert module.METRIC_DEFINITIONS\n"
        "print(sorted(m for m in ('sklearn', 'pandas', 'joblib') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("seed", ["99999999999", "4294967296", "-1"])
def test_random_state_outside_the_seed_range_is_an_error(
    train, cli, boston_splits, tmp_path, capsys, seed
):
    err = expect_error(train, cli, boston_splits, tmp_path, capsys, random_state=seed)
    assert f"hyperparameter random_state must be from 0 to 4294967295, got {seed}" in err


def test_the_seed_range_is_scikit_learns(train):
    """The rule above mirrors what RandomForestRegressor accepts: 0 to 2**32 - 1."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    X, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
    RandomForestRegressor(n_estimators=2, random_state=train.MAX_SEED).fit(X, y)
    for seed in (train.MAX_SEED + 1, -1):
        with pytest.raises(ValueError, match="random_state"):
            RandomForestRegressor(n_estimators=2, random_state=seed).fit(X, y)
