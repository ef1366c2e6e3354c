"""Fixtures for the container scripts in training/ (they are standalone files, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_DIR = REPO_ROOT / "training"
SAMPLE_DATA_DIR = REPO_ROOT / "sample_data"


def load_script(name: str) -> ModuleType:
    """Import training/<name>.py by file path, the way the pipeline builder does."""
    path = TRAINING_DIR / f"{name}.py"
    module_name = f"training_script_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def cli_args(**options: object) -> list[str]:
    """``cli_args(input_dir=p, target_column="y")`` -> ``["--input-dir", "p", ...]``."""
    return [
        item
        for key, value in options.items()
        for item in (f"--{key.replace('_', '-')}", str(value))
    ]


@pytest.fixture(scope="session")
def cli() -> Callable[..., list[str]]:
    return cli_args


@pytest.fixture(scope="session")
def preprocess() -> ModuleType:
    return load_script("preprocess")


@pytest.fixture(scope="session")
def train() -> ModuleType:
    return load_script("train")


@pytest.fixture(scope="session")
def evaluate() -> ModuleType:
    return load_script("evaluate")


@pytest.fixture(scope="session")
def inference() -> ModuleType:
    return load_script("inference")


@pytest.fixture(scope="session")
def boston_csv() -> Path:
    return SAMPLE_DATA_DIR / "boston_housing.csv"


@pytest.fixture(scope="session")
def boston_schema() -> Path:
    return SAMPLE_DATA_DIR / "schema.json"


@pytest.fixture(scope="session")
def diabetes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's bundled diabetes data as CSV: age,sex,bmi,bp,s1..s6,target."""
    from sklearn.datasets import load_diabetes

    path = tmp_path_factory.mktemp("diabetes") / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


@pytest.fixture
def write_input(tmp_path: Path) -> Callable[..., Path]:
    """Write content as <tmp>/input/<name> and return the input folder."""

    def _write(content: str | bytes, name: str = "data.csv") -> Path:
        folder = tmp_path / "input"
        folder.mkdir(exist_ok=True)
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return folder

    return _write


@pytest.fixture(scope="session")
def boston_splits(tmp_path_factory: pytest.TempPathFactory, preprocess, boston_csv) -> Path:
    """Output base folder of preprocess.py run on the Boston sample data."""
    base = tmp_path_factory.mktemp("boston_splits")
    rc = preprocess.main(
        cli_args(
            input_dir=boston_csv.parent,
            input_file=boston_csv.name,
            output_dir=base,
            target_column="medv",
        )
    )
    assert rc == 0
    return base


@pytest.fixture(scope="session")
def boston_model(tmp_path_factory: pytest.TempPathFactory, train, boston_splits) -> Path:
    """Model folder of train.py (default hyperparameters) fitted on the Boston splits."""
    base = tmp_path_factory.mktemp("boston_model")
    rc = train.main(
        cli_args(
            train=boston_splits / "train",
            validation=boston_splits / "validation",
            model_dir=base / "model",
            output_data_dir=base / "output",
        )
    )
    assert rc == 0
    return base / "model"
