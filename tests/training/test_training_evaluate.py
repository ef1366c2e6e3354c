"""training/evaluate.py: metrics, evaluation.json schema, safe model.tar.gz handling."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


def make_tarball(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def model_tarball(model_dir: Path, target: Path) -> Path:
    return make_tarball(
        target / "model.tar.gz",
        {name: (model_dir / name).read_bytes() for name in ("model.joblib", "model_metadata.json")},
    )


def run_evaluate(evaluate, cli, model_dir: Path, test_dir: Path, out: Path) -> int:
    return evaluate.main(cli(model_dir=model_dir, test_dir=test_dir, output_dir=out))


def test_regression_metrics_match_scikit_learn(evaluate):
    rng = np.random.RandomState(0)
    y = rng.normal(20, 5, size=50)
    pred = y + rng.normal(0, 2, size=50)
    metrics = evaluate.regression_metrics(y, pred)
    assert metrics["mse"] == pytest.approx(mean_squared_error(y, pred))
    assert metrics["rmse"] == pytest.approx(mean_squared_error(y, pred) ** 0.5)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert metrics["r2"] == pytest.approx(r2_score(y, pred))


def test_r2_of_a_constant_target_follows_scikit_learn(evaluate):
    y = np.array([3.0, 3.0, 3.0])
    assert evaluate.regression_metrics(y, y)["r2"] == 1.0
    assert evaluate.regression_metrics(y, y + 1)["r2"] == 0.0


def test_bootstrap_standard_deviation_is_seeded(evaluate):
    rng = np.random.RandomState(1)
    y = rng.normal(size=80)
    pred = y + rng.normal(scale=0.5, size=80)
    first = evaluate.bootstrap_standard_deviations(y, pred, 50, 42)
    assert first == evaluate.bootstrap_standard_deviations(y, pred, 50, 42)
    assert first != evaluate.bootstrap_standard_deviations(y, pred, 50, 7)
    assert all(value > 0 for value in first.values())
    # The spread of the mean squared error shrinks roughly like 1/sqrt(n).
    assert first["mse"] < np.std((y - pred) ** 2)


def test_evaluation_json_schema_from_tarball(evaluate, cli, boston_model, boston_splits, tmp_path):
    archive_dir = tmp_path / "model"
    model_tarball(boston_model, archive_dir)
    assert run_evaluate(evaluate, cli, archive_dir, boston_splits / "test", tmp_path / "eval") == 0
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert set(report) == {"regression_metrics", "metadata"}
    metrics = report["regression_metrics"]
    assert set(metrics) == {"mse", "rmse", "mae", "r2"}
    for entry in metrics.values():
        assert set(entry) == {"value", "standard_deviation"}
        assert type(entry["value"]) is float
        assert type(entry["standard_deviation"]) is float
        assert entry["standard_deviation"] >= 0.0
    assert metrics["rmse"]["value"] == pytest.approx(metrics["mse"]["value"] ** 0.5)
    assert report["metadata"]["test_rows"] == 76
    assert report["metadata"]["target"] == "medv"
    assert len(report["metadata"]["features"]) == 13


def test_model_joblib_directly_in_model_dir(evaluate, cli, boston_model, boston_splits, tmp_path):
    rc = run_evaluate(evaluate, cli, boston_model, boston_splits / "test", tmp_path / "a")
    assert rc == 0
    archive_dir = tmp_path / "tar"
    model_tarball(boston_model, archive_dir)
    assert run_evaluate(evaluate, cli, archive_dir, boston_splits / "test", tmp_path / "b") == 0
    first = (tmp_path / "a" / "evaluation.json").read_bytes()
    assert first == (tmp_path / "b" / "evaluation.json").read_bytes()


def expect_error(evaluate, cli, model_dir, test_dir, tmp_path, capsys) -> str:
    rc = run_evaluate(evaluate, cli, model_dir, test_dir, tmp_path / "eval")
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("ERROR: ")
    assert "Traceback" not in err
    assert not (tmp_path / "eval" / "evaluation.json").exists()
    return err


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../escaped.txt", "contains '..'"),
        ("nested/../../escaped.txt", "contains '..'"),
        ("/tmp/escaped.txt", "absolute path"),
    ],
)
def test_tar_path_traversal_is_rejected(
    evaluate, cli, boston_model, boston_splits, tmp_path, capsys, member, reason
):
    model_dir = tmp_path / "model"
    make_tarball(
        model_dir / "model.tar.gz",
        {"model.joblib": (boston_model / "model.joblib").read_bytes(), member: b"evil"},
    )
    err = expect_error(evaluate, cli, model_dir, boston_splits / "test", tmp_path, capsys)
    assert f"unsafe member {member!r} ({reason})" in err
    destination = tmp_path / "unpack" / "here"
    destination.mkdir(parents=True)
    with pytest.raises(evaluate.DataValidationError, match="unsafe member"):
        evaluate.safe_extract(model_dir / "model.tar.gz", destination)
    assert list(destination.iterdir()) == []  # nothing extracted, not even model.joblib
    assert not (tmp_path / "unpack" / "escaped.txt").exists()


def test_safe_extract_rejects_symlinks_before_writing(evaluate, tmp_path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"ok"
        info = tarfile.TarInfo("model.joblib")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(evaluate.DataValidationError, match="links and special files"):
        evaluate.safe_extract(archive, out)
    assert list(out.iterdir()) == []


def test_corrupt_tarball_is_an_error(evaluate, cli, boston_model, boston_splits, tmp_path, capsys):
    model_dir = tmp_path / "model"
    good = model_tarball(boston_model, tmp_path / "good").read_bytes()
    model_dir.mkdir()
    (model_dir / "model.tar.gz").write_bytes(good[: len(good) // 2])
    err = expect_error(evaluate, cli, model_dir, boston_splits / "test", tmp_path, capsys)
    assert f"{model_dir / 'model.tar.gz'} is not a valid tar.gz archive" in err


def test_missing_model_is_an_error(evaluate, cli, boston_splits, tmp_path, capsys):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "notes.txt").write_text("nothing here")
    err = expect_error(evaluate, cli, model_dir, boston_splits / "test", tmp_path, capsys)
    assert f"no model.joblib or model.tar.gz in model directory {model_dir}" in err
    assert "notes.txt" in err


def test_corrupt_model_file_is_an_error(evaluate, cli, boston_splits, tmp_path, capsys):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.joblib").write_bytes(b"not a pickle")
    err = expect_error(evaluate, cli, model_dir, boston_splits / "test", tmp_path, capsys)
    assert f"cannot load model {model_dir / 'model.joblib'}" in err


def test_test_features_not_matching_the_model(
    evaluate, cli, boston_model, boston_splits, tmp_path, capsys
):
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    lines = (boston_splits / "test" / "test.csv").read_text().splitlines()
    trimmed = [line.rsplit(",", 1)[0] for line in lines]  # drop the last column, lstat
    (test_dir / "test.csv").write_text("\n".join(trimmed) + "\n")
    err = expect_error(evaluate, cli, boston_model, test_dir, tmp_path, capsys)
    assert "test feature columns do not match the model's (13 features)" in err
    assert "missing ['lstat'], unexpected []" in err


def test_test_columns_in_another_order_are_matched_by_name(
    evaluate, cli, boston_model, boston_splits, tmp_path
):
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    rows = [line.split(",") for line in (boston_splits / "test" / "test.csv").read_text().split()]
    (test_dir / "test.csv").write_text("\n".join(",".join(row[::-1]) for row in rows) + "\n")
    assert run_evaluate(evaluate, cli, boston_model, test_dir, tmp_path / "reordered") == 0
    assert run_evaluate(evaluate, cli, boston_model, boston_splits / "test", tmp_path / "o") == 0
    reordered = json.loads((tmp_path / "reordered" / "evaluation.json").read_text())
    original = json.loads((tmp_path / "o" / "evaluation.json").read_text())
    assert reordered["regression_metrics"] == original["regression_metrics"]


def test_missing_test_directory_is_an_error(evaluate, cli, boston_model, tmp_path, capsys):
    err = expect_error(evaluate, cli, boston_model, tmp_path / "nope", tmp_path, capsys)
    assert f"test directory {tmp_path / 'nope'} does not exist" in err


def test_model_without_metadata_uses_test_columns(
    evaluate, cli, boston_model, boston_splits, tmp_path
):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(boston_model / "model.joblib", model_dir)
    assert run_evaluate(evaluate, cli, model_dir, boston_splits / "test", tmp_path / "eval") == 0
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["metadata"]["target"] == "medv"


def test_predictions_file_for_the_model_quality_check(
    evaluate, cli, boston_model, boston_splits, tmp_path
):
    args = cli(
        model_dir=boston_model,
        test_dir=boston_splits / "test",
        output_dir=tmp_path / "eval",
        predictions_dir=tmp_path / "predictions",
    )
    assert evaluate.main(args) == 0
    predictions = pd.read_csv(tmp_path / "predictions" / "predictions.csv")
    test = pd.read_csv(boston_splits / "test" / "test.csv")
    assert list(predictions.columns) == ["prediction", "label"]
    assert predictions["label"].tolist() == pytest.approx(test["medv"].tolist())
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    rmse = float(((predictions["prediction"] - predictions["label"]) ** 2).mean() ** 0.5)
    assert report["regression_metrics"]["rmse"]["value"] == pytest.approx(rmse, rel=1e-6)


def test_metrics_that_overflow_are_an_error_not_a_json_traceback(
    evaluate, cli, boston_model, boston_splits, tmp_path, capsys
):
    # A finite target whose squared error is not (preprocess refuses such data; evaluate
    # must still not fail while writing "inf" into JSON).
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    lines = (boston_splits / "test" / "test.csv").read_text().splitlines()
    lines[1] = ",".join(["1e200", *lines[1].split(",")[1:]])
    (test_dir / "test.csv").write_text("\n".join(lines) + "\n")
    err = expect_error(evaluate, cli, boston_model, test_dir, tmp_path, capsys)
    assert "the test metrics mse, rmse, mae, r2 overflow float64: the target" in err
    assert f"the predictions in {test_dir} are too large to square and sum" in err


def test_bootstrap_seed_outside_numpys_range_is_an_error(
    evaluate, cli, boston_model, boston_splits, tmp_path, capsys
):
    args = cli(
        model_dir=boston_model,
        test_dir=boston_splits / "test",
        output_dir=tmp_path / "eval",
        bootstrap_seed=2**32,
    )
    assert evaluate.main(args) == 2
    assert "--bootstrap-seed must be from 0 to 4294967295" in capsys.readouterr().err
