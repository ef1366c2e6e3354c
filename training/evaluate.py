#!/usr/bin/env python3
"""SageMaker Processing step: score the trained model on the test split.

Reads the model (``model.joblib`` directly, or the training job's ``model.tar.gz``, unpacked
safely into a temporary folder) and the test CSV(s) written by preprocess.py, and writes
``<output-dir>/evaluation.json``::

    {
      "regression_metrics": {
        "mse":  {"value": float, "standard_deviation": float},
        "rmse": {"value": float, "standard_deviation": float},
        "mae":  {"value": float, "standard_deviation": float},
        "r2":   {"value": float, "standard_deviation": float}
      },
      "metadata": {"test_rows": int, "target": str, "features": [...], ...}
    }

With ``--predictions-dir``, also ``<predictions-dir>/predictions.csv``: one row per test row,
columns ``prediction`` and ``label`` (with a header), the dataset a model-quality check
(``ModelQualityCheckConfig``, inference and ground-truth attributes) reads.

``value`` is the metric on the whole test split. ``standard_deviation`` is the standard
deviation of the same metric over ``--bootstrap-samples`` bootstrap resamples of the test rows
(seeded, so reproducible): an estimate of the metric's standard error, computed the same way for
all four metrics. The format is usable as SageMaker ModelMetrics/ModelQuality statistics and with
``JsonGet`` paths such as ``regression_metrics.rmse.value``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import joblib
import numpy as np
import pandas as pd

DEFAULT_MODEL_DIR = "/opt/ml/processing/model"
DEFAULT_TEST_DIR = "/opt/ml/processing/test"
DEFAULT_OUTPUT_DIR = "/opt/ml/processing/evaluation"
MODEL_FILE_NAME = "model.joblib"
METADATA_FILE_NAME = "model_metadata.json"
MODEL_ARCHIVE_NAME = "model.tar.gz"
EVALUATION_FILE_NAME = "evaluation.json"
PREDICTIONS_FILE_NAME = "predictions.csv"
METRIC_NAMES = ("mse", "rmse", "mae", "r2")
MAX_SEED = 2**32 - 1


class DataValidationError(ValueError):
    """Bad input data or arguments: reported by main() as one ``ERROR:`` line, exit code 2."""


def log(message: str) -> None:
    print(f"[evaluate] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Model loading
# --------------------------------------------------------------------------------------------


def check_member_name(name: str, archive: str) -> None:
    """Reject archive member names that would land outside the extraction folder."""
    normalized = name.replace("\\", "/")
    parts = PurePosixPath(normalized).parts
    if normalized.startswith("/") or (parts and ":" in parts[0]):
        raise DataValidationError(f"{archive}: unsafe member {name!r} (absolute path)")
    if ".." in parts:
        raise DataValidationError(f"{archive}: unsafe member {name!r} (contains '..')")


def safe_extract(archive: str | Path, destination: str | Path) -> list[str]:
    """Extract regular files and folders of a tar(.gz) archive; return the member names.

    Every member is checked before anything is written: absolute paths, ``..`` components,
    links and special files are rejected with DataValidationError.
    """
    archive = Path(archive)
    destination = Path(destination)
    root = destination.resolve()
    names = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member_name(member.name, str(archive))
                if not (member.isfile() or member.isdir()):
                    raise DataValidationError(
                        f"{archive}: unsafe member {member.name!r} (links and special files "
                        "are not allowed)"
                    )
                target = (destination / member.name).resolve()
                if target != root and root not in target.parents:
                    raise DataValidationError(
                        f"{archive}: unsafe member {member.name!r} (outside the folder)"
                    )
            for member in members:
                target = destination / member.name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise DataValidationError(f"{archive}: cannot read member {member.name!r}")
                with source, open(target, "wb") as handle:
                    while True:
                        chunk = source.read(1 << 20)
                        if not chunk:
                            break
                        handle.write(chunk)
                names.append(member.name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataValidationError(
            f"{archive} is not a valid tar.gz archive (corrupt or truncated): {exc}"
        ) from None
    return names


def find_model_dir(model_dir: str | Path, workdir: str | Path) -> Path:
    """Folder holding model.joblib: model_dir itself, or model.tar.gz unpacked into workdir."""
    model_dir = Path(model_dir)
    if (model_dir / MODEL_FILE_NAME).is_file():
        return model_dir
    archive = model_dir / MODEL_ARCHIVE_NAME
    if not archive.is_file():
        present = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else None
        where = f"found: {present}" if present is not None else "the folder does not exist"
        raise DataValidationError(
            f"no {MODEL_FILE_NAME} or {MODEL_ARCHIVE_NAME} in model directory {model_dir} ({where})"
        )
    names = safe_extract(archive, workdir)
    log(f"unpacked {archive} ({len(names)} members)")
    if not (Path(workdir) / MODEL_FILE_NAME).is_file():
        raise DataValidationError(
            f"{archive} has no {MODEL_FILE_NAME} at its top level (members: {names})"
        )
    return Path(workdir)


def load_model(directory: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load model.joblib and model_metadata.json (an empty dict if the file is absent)."""
    directory = Path(directory)
    path = directory / MODEL_FILE_NAME
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling can fail in many ways; all mean "bad model file"
        raise DataValidationError(f"cannot load model {path}: {exc}") from None
    if not hasattr(model, "predict"):
        raise DataValidationError(f"{path} does not contain an estimator with predict()")
    metadata: dict[str, Any] = {}
    metadata_path = directory / METADATA_FILE_NAME
    if metadata_path.is_file():
        try:
            metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataValidationError(f"cannot read {metadata_path}: {exc}") from None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("features"), list):
            raise DataValidationError(f"{metadata_path} has no 'features' list")
    return model, metadata


# --------------------------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------------------------


def read_test_frame(test_dir: str | Path) -> pd.DataFrame:
    """Concatenate the ``*.csv`` files of test_dir (header row, numeric and finite values)."""
    test_dir = Path(test_dir)
    if not test_dir.is_dir():
        raise DataValidationError(f"test directory {test_dir} does not exist")
    files = sorted(p for p in test_dir.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if not files:
        present = sorted(p.name for p in test_dir.iterdir())
        raise DataValidationError(f"no .csv file in test directory {test_dir} (found: {present})")
    frames = []
    for path in files:
        source = str(path)
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                header = [name.strip() for name in next(csv.reader(handle), [])]
            frame = pd.read_csv(path, encoding="utf-8-sig")
        except (OSError, ValueError, csv.Error, pd.errors.ParserError) as exc:
            raise DataValidationError(f"{source} is not a valid CSV: {exc}") from None
        if len(set(header)) != len(header):
            raise DataValidationError(f"{source}: duplicate column names in header {header}")
        frame.columns = header
        if frames and header != list(frames[0].columns):
            raise DataValidationError(f"{source}: header differs from {files[0]}")
        for name in header:
            numeric = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(numeric))
            if bad.size:
                raise DataValidationError(
                    f"{source}: column {name!r} has {bad.size} non-numeric, empty, NaN or inf "
                    f"value(s) in {len(frame)} data rows; first at row {int(bad[0]) + 1}: "
                    f"{frame[name].iloc[int(bad[0])]!r}"
                )
            frame[name] = numeric
        frames.append(frame)
        log(f"read {source} ({len(frame)} rows)")
    return pd.concat(frames, ignore_index=True)


def select_test_columns(
    frame: pd.DataFrame, model: Any, metadata: dict[str, Any], target: str | None
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Match the test columns against the model's features; return (X, y, target, features)."""
    columns = list(frame.columns)
    target = target or metadata.get("target") or columns[0]
    if target not in columns:
        raise DataValidationError(
            f"test data has no target column {target!r}; columns: {columns} ({len(frame)} rows)"
        )
    available = [name for name in columns if name != target]
    features = list(metadata.get("features") or available)
    missing = [name for name in features if name not in available]
    unexpected = [name for name in available if name not in features]
    if missing or unexpected:
        raise DataValidationError(
            f"test feature columns do not match the model's ({len(features)} features): "
            f"missing {missing}, unexpected {unexpected} ({len(frame)} rows)"
        )
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and int(expected) != len(features):
        raise DataValidationError(
            f"the model expects {int(expected)} features but the test data has "
            f"{len(features)}: {features}"
        )
    if len(frame) < 2:
        raise DataValidationError(f"test data has {len(frame)} row(s); at least 2 are needed")
    X = frame[features].to_numpy(dtype=np.float64)
    y = frame[target].to_numpy(dtype=np.float64)
    return X, y, target, features


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def r2_from_sums(ss_res: float, ss_tot: float) -> float:
    """1 - ss_res/ss_tot; for a constant target (ss_tot == 0) scikit-learn's 1.0 or 0.0."""
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """mse, rmse, mae and r2 (r2 = 1.0 / 0.0 for a constant target, like scikit-learn)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    errors = y_true - np.asarray(y_pred, dtype=np.float64)
    mse = float(np.mean(errors**2))
    ss_res = float(np.sum(errors**2))
    ss_tot = float(np.sum((y_true - np.mean(y_true)) ** 2))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(np.mean(np.abs(errors))),
        "r2": r2_from_sums(ss_res, ss_tot),
    }


def bootstrap_standard_deviations(
    y_true: np.ndarray, y_pred: np.ndarray, samples: int, seed: int
) -> dict[str, float]:
    """Standard deviation (ddof=1) of each metric over seeded bootstrap resamples."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    rng = np.random.RandomState(seed)
    values: dict[str, list[float]] = {name: [] for name in METRIC_NAMES}
    for _ in range(samples):
        index = rng.randint(0, len(y_true), size=len(y_true))
        for name, value in regression_metrics(y_true[index], y_pred[index]).items():
            values[name].append(value)
    return {name: float(np.std(values[name], ddof=1)) for name in METRIC_NAMES}


def build_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    target: str,
    features: list[str],
    samples: int,
    seed: int,
) -> dict[str, Any]:
    metrics = regression_metrics(y_true, y_pred)
    stds = bootstrap_standard_deviations(y_true, y_pred, samples, seed)
    return {
        "regression_metrics": {
            name: {"value": metrics[name], "standard_deviation": stds[name]}
            for name in METRIC_NAMES
        },
        "metadata": {
            "test_rows": len(y_true),
            "target": target,
            "features": features,
            "standard_deviation": {
                "method": "bootstrap",
                "resamples": samples,
                "seed": seed,
                "description": "standard deviation (ddof=1) of the metric over bootstrap "
                "resamples of the test rows",
            },
        },
    }


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Evaluate the model on the test split.", allow_abbrev=False
    )
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--test-dir", default=DEFAULT_TEST_DIR)
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR)
    parser.add_argument(
        "--target-column", default=None, help="default: from model_metadata.json, else column 1"
    )
    parser.add_argument(
        "--predictions-dir", default=None, help="also write predictions.csv (prediction, label)"
    )
    parser.add_argument("--bootstrap-samples", type=int, default=200)
    parser.add_argument("--bootstrap-seed", type=int, default=42)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.bootstrap_samples < 2:
        raise DataValidationError(
            f"--bootstrap-samples must be at least 2, got {args.bootstrap_samples}"
        )
    if not 0 <= args.bootstrap_seed <= MAX_SEED:
        raise DataValidationError(
            f"--bootstrap-seed must be from 0 to {MAX_SEED} (the seeds numpy accepts), "
            f"got {args.bootstrap_seed}"
        )
    with tempfile.TemporaryDirectory(prefix="model-") as workdir:
        model, metadata = load_model(find_model_dir(args.model_dir, workdir))
    frame = read_test_frame(args.test_dir)
    X, y, target, features = select_test_columns(frame, model, metadata, args.target_column)
    predictions = np.asarray(model.predict(X), dtype=np.float64).reshape(len(y))
    with np.errstate(over="ignore", invalid="ignore"):
        report = build_report(
            y, predictions, target, features, args.bootstrap_samples, args.bootstrap_seed
        )
    overflowed = [
        name
        for name, entry in report["regression_metrics"].items()
        if not all(math.isfinite(value) for value in entry.values())
    ]
    if overflowed:
        # JSON has no inf: say which metric and why, rather than fail while writing it.
        raise DataValidationError(
            f"the test metrics {', '.join(overflowed)} overflow float64: the target or the "
            f"predictions in {args.test_dir} are too large to square and sum"
        )
    output = Path(args.output_dir) / EVALUATION_FILE_NAME
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8", newline="") as handle:
        handle.write(json.dumps(report, sort_keys=True, indent=2, allow_nan=False) + "\n")
    for name in METRIC_NAMES:
        entry = report["regression_metrics"][name]
        log(f"test {name} = {entry['value']:.6g} (bootstrap std {entry['standard_deviation']:.3g})")
    log(f"wrote {output}")
    if args.predictions_dir:
        write_predictions(Path(args.predictions_dir) / PREDICTIONS_FILE_NAME, predictions, y)
    return report


def write_predictions(path: Path, predictions: np.ndarray, labels: np.ndarray) -> None:
    """The model's predictions beside the true labels, for the model-quality check."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"prediction": predictions, "label": labels}).to_csv(
        path, index=False, float_format="%.10g"
    )
    log(f"wrote {path} ({len(predictions)} rows)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage message
        return int(exc.code or 0)
    try:
        run(args)
    except DataValidationError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 2
    except OSError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
