"""preprocess -> train -> evaluate -> serve, in-process and as standalone subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pipelines.containers.environments import EnvironmentCache
from pipelines.containers.profiles import profiles

TRAINING_DIR = Path(__file__).resolve().parents[2] / "training"


def run_pipeline(preprocess, train, evaluate, cli, csv_path: Path, base: Path, target: str):
    """Run the three steps with default hyperparameters; return evaluation.json."""
    assert (
        preprocess.main(
            cli(
                input_dir=csv_path.parent,
                input_file=csv_path.name,
                output_dir=base / "processing",
                target_column=target,
            )
        )
        == 0
    )
    assert (
        train.main(
            cli(
                train=base / "processing" / "train",
                validation=base / "processing" / "validation",
                model_dir=base / "model",
                output_data_dir=base / "output",
            )
        )
        == 0
    )
    # What SageMaker uploads as the model artifact: the model dir as model.tar.gz.
    (base / "artifact").mkdir()
    with tarfile.open(base / "artifact" / "model.tar.gz", "w:gz", compresslevel=1) as tar:
        for path in sorted((base / "model").iterdir()):
            tar.add(path, arcname=path.name)
    assert (
        evaluate.main(
            cli(
                model_dir=base / "artifact",
                test_dir=base / "processing" / "test",
                output_dir=base / "evaluation",
            )
        )
        == 0
    )
    return json.loads((base / "evaluation" / "evaluation.json").read_text())


def test_boston_reaches_r2_of_0_7_on_the_test_split(
    preprocess, train, evaluate, cli, boston_csv, tmp_path, capsys
):
    report = run_pipeline(preprocess, train, evaluate, cli, boston_csv, tmp_path, "medv")
    r2 = report["regression_metrics"]["r2"]["value"]
    with capsys.disabled():
        print(f"\n[boston] test R2 = {r2:.4f}")
    assert r2 >= 0.7
    assert report["metadata"]["test_rows"] == 76


def test_diabetes_needs_only_the_target_argument(
    preprocess, train, evaluate, inference, cli, diabetes_csv, tmp_path, capsys
):
    report = run_pipeline(preprocess, train, evaluate, cli, diabetes_csv, tmp_path, "target")
    r2 = report["regression_metrics"]["r2"]["value"]
    with capsys.disabled():
        print(f"\n[diabetes] test R2 = {r2:.4f}")
    assert report["metadata"]["features"] == [
        "age",
        "sex",
        "bmi",
        "bp",
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
        "s6",
    ]
    assert report["metadata"]["test_rows"] == 67
    assert r2 > 0.2  # clearly better than predicting the mean
    bundle = inference.model_fn(str(tmp_path / "model"))
    data = inference.input_fn("0.03,0.05,0.06,0.02,-0.04,-0.03,-0.04,0.0,0.02,-0.02", "text/csv")
    body, content_type = inference.output_fn(inference.predict_fn(data, bundle), "text/csv")
    assert content_type == "text/csv"
    assert 25.0 <= float(body) <= 346.0  # within the range of the diabetes target


# --------------------------------------------------------------------------------------------
# Standalone: each script runs alone in an isolated interpreter (python -I: no cwd on sys.path,
# no PYTHON* variables), exactly as when copied into a container.
# --------------------------------------------------------------------------------------------


def run_script(
    name: str, *args: object, cwd: Path, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-I", str(TRAINING_DIR / f"{name}.py"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(params=["host", "sklearn-1.2-1"])
def script_python(request: pytest.FixtureRequest, runtime_cache: Path) -> str:
    """The host interpreter, and the SageMaker scikit-learn 1.2-1 container's runtime
    (Python 3.9, scikit-learn 1.2.1, pandas 1.1.3, numpy 1.24.1), where they really run."""
    if request.param == "host":
        return sys.executable
    return EnvironmentCache(runtime_cache).ensure(profiles()[request.param]).python


def test_scripts_run_standalone_as_subprocesses(boston_csv, tmp_path, script_python):
    out = tmp_path / "processing"
    done = run_script(
        "preprocess",
        "--input-dir",
        boston_csv.parent,
        "--input-file",
        boston_csv.name,
        "--output-dir",
        out,
        "--target-column",
        "medv",
        cwd=tmp_path,
        python=script_python,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    done = run_script(
        "train",
        "--train",
        out / "train",
        "--validation",
        out / "validation",
        "--model-dir",
        tmp_path / "model",
        "--output-data-dir",
        tmp_path / "output",
        "--n_estimators",
        "10",
        cwd=tmp_path,
        python=script_python,
    )
    assert done.returncode == 0, done.stderr
    assert "validation:rmse=" in done.stdout
    done = run_script(
        "evaluate",
        "--model-dir",
        tmp_path / "model",
        "--test-dir",
        out / "test",
        "--output-dir",
        tmp_path / "evaluation",
        cwd=tmp_path,
        python=script_python,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "evaluation" / "evaluation.json").is_file()
    probe = (
        "import runpy, sys; handlers = runpy.run_path(sys.argv[1]); "
        "bundle = handlers['model_fn'](sys.argv[2]); "
        "rows = handlers['input_fn']('[[0.1,0,7,0,0.5,6,60,4,4,300,17,390,10]]', "
        "'application/json'); "
        "print(handlers['output_fn'](handlers['predict_fn'](rows, bundle), 'text/csv')[0])"
    )
    done = subprocess.run(
        [script_python, "-I", "-c", probe, str(TRAINING_DIR / "inference.py"), tmp_path / "model"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert 5.0 <= float(done.stdout) <= 50.0


@pytest.mark.parametrize(
    ("script", "options", "message"),
    [
        (
            "preprocess",
            {"--input-dir": "in", "--output-dir": "out", "--target-column": "y"},
            "is empty (0 bytes, 0 data rows)",
        ),
        (
            "train",
            {"--train": "in", "--validation": "in", "--model-dir": "m", "--output-data-dir": "o"},
            "is empty (no header row, 0 data rows)",
        ),
        (
            "evaluate",
            {"--model-dir": "in", "--test-dir": "in", "--output-dir": "out"},
            "no model.joblib or model.tar.gz in model directory",
        ),
    ],
)
def test_bad_input_exits_non_zero_without_traceback(
    tmp_path, script, options, message, script_python
):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.csv").write_bytes(b"")
    args = [item for flag, value in options.items() for item in (flag, value)]
    # Relative paths resolve against tmp_path.
    done = run_script(script, *args, cwd=tmp_path, python=script_python)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("ERROR: ")
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written
