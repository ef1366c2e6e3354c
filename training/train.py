#!/usr/bin/env python3
"""SageMaker training script (script mode) for a RandomForestRegressor.

Reads the CSV files written by preprocess.py (header row, target first, then the features) from
the train and validation channels, fits the model, prints scrapeable metric lines and writes:

* ``<model-dir>/model.joblib``: the fitted estimator (``joblib.dump``), fitted on a plain float
  array, so it expects the features in the order of ``model_metadata.json``;
* ``<model-dir>/model_metadata.json``: feature names in order, target name, hyperparameters;
* ``<output-data-dir>/metrics.json``: train and validation metrics.

Importing this module has no side effects and is cheap: the pipeline builder imports it for
``METRIC_DEFINITIONS``, so pandas, scikit-learn and joblib are imported where they are used.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor

DEFAULT_TRAIN_DIR = "/opt/ml/input/data/train"
DEFAULT_VALIDATION_DIR = "/opt/ml/input/data/validation"
DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_OUTPUT_DATA_DIR = "/opt/ml/output/data"
MODEL_FILE_NAME = "model.joblib"
METADATA_FILE_NAME = "model_metadata.json"
METRICS_FILE_NAME = "metrics.json"
METADATA_FORMAT_VERSION = 1

_FLOAT_RE = "([0-9\\.eE+-]+)"
#: Metric lines printed on stdout, e.g. ``validation:rmse=3.0517;``. Pass to an Estimator's
#: ``metric_definitions``.
METRIC_DEFINITIONS = [
    {"Name": "train:rmse", "Regex": "train:rmse=" + _FLOAT_RE + ";"},
    {"Name": "validation:rmse", "Regex": "validation:rmse=" + _FLOAT_RE + ";"},
    {"Name": "validation:mae", "Regex": "validation:mae=" + _FLOAT_RE + ";"},
    {"Name": "validation:r2", "Regex": "validation:r2=" + _FLOAT_RE + ";"},
]
_NONE_STRINGS = ("", "none", "null", "0")
MAX_SEED = 2**32 - 1


class DataValidationError(ValueError):
    """Bad input data or arguments: reported by main() as one ``ERROR:`` line, exit code 2."""


def log(message: str) -> None:
    print(f"[train] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Hyperparameters
# --------------------------------------------------------------------------------------------


def parse_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Parse an integer hyperparameter given as a string ("100", "100.0", '"100"')."""
    text = str(value).strip().strip("\"'")
    try:
        number = float(text)
    except ValueError:
        raise DataValidationError(
            f"hyperparameter {name} must be an integer, got {value!r}"
        ) from None
    if not math.isfinite(number) or number != int(number):
        raise DataValidationError(f"hyperparameter {name} must be an integer, got {value!r}")
    result = int(number)
    if maximum is not None and not (minimum or 0) <= result <= maximum:
        raise DataValidationError(
            f"hyperparameter {name} must be from {minimum or 0} to {maximum}, got {result}"
        )
    if minimum is not None and result < minimum:
        raise DataValidationError(f"hyperparameter {name} must be >= {minimum}, got {result}")
    return result


def parse_max_depth(value: Any) -> int | None:
    """``None``/``none``/``null``/``0``/empty mean unlimited depth; otherwise an int >= 1."""
    if value is None or str(value).strip().strip("\"'").lower() in _NONE_STRINGS:
        return None
    return parse_int("max_depth", value, minimum=1)


def resolve_hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    n_jobs = parse_int("n_jobs", args.n_jobs)
    if n_jobs == 0:
        raise DataValidationError("hyperparameter n_jobs must not be 0")
    return {
        "n_estimators": parse_int("n_estimators", args.n_estimators, minimum=1),
        "max_depth": parse_max_depth(args.max_depth),
        "min_samples_leaf": parse_int("min_samples_leaf", args.min_samples_leaf, minimum=1),
        # The seeds numpy's RandomState accepts (0 to 2**32 - 1); scikit-learn refuses
        # others only at fit(), with a traceback.
        "random_state": parse_int("random_state", args.random_state, 0, MAX_SEED),
        "n_jobs": n_jobs,
    }


def build_model(hyperparameters: dict[str, Any]) -> RandomForestRegressor:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(**hyperparameters)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def list_csv_files(directory: str | Path, channel: str) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise DataValidationError(f"{channel} channel directory {directory} does not exist")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if not files:
        present = sorted(p.name for p in directory.iterdir())
        if not present:
            raise DataValidationError(f"{channel} channel directory {directory} is empty")
        raise DataValidationError(
            f"no .csv file in {channel} channel directory {directory} (found: {present})"
        )
    return files


def read_csv_file(path: Path) -> pd.DataFrame:
    """Read one CSV with a header row; every column must be numeric and finite."""
    import pandas as pd

    source = str(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataValidationError(f"{source} is not a readable UTF-8 CSV file: {exc}") from None
    if not header or not any(name.strip() for name in header):
        raise DataValidationError(f"{source} is empty (no header row, 0 data rows)")
    header = [name.strip() for name in header]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataValidationError(f"{source}: duplicate column name(s) in header: {duplicates}")
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataValidationError(f"{source} is not a valid CSV: {exc}") from None
    frame.columns = header
    if len(frame) == 0:
        raise DataValidationError(f"{source} has a header but 0 data rows")
    for name in header:
        numeric = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numeric))
        if bad.size:
            first = int(bad[0])
            raise DataValidationError(
                f"{source}: column {name!r} has {bad.size} non-numeric, empty, NaN or inf "
                f"value(s) in {len(frame)} data rows; first at row {first + 1}: "
                f"{frame[name].iloc[first]!r}"
            )
        frame[name] = numeric
    return frame


def read_channel(directory: str | Path, channel: str) -> pd.DataFrame:
    """Concatenate every ``*.csv`` in a channel directory (sorted by name, same header)."""
    import pandas as pd

    frames = []
    columns: list[str] | None = None
    for path in list_csv_files(directory, channel):
        frame = read_csv_file(path)
        if columns is None:
            columns = list(frame.columns)
        elif list(frame.columns) != columns:
            raise DataValidationError(
                f"{path}: header {list(frame.columns)} differs from the first file's {columns}"
            )
        frames.append(frame)
        log(f"read {path} ({len(frame)} rows)")
    return pd.concat(frames, ignore_index=True)


def split_columns(
    frame: pd.DataFrame, target: str | None, features: list[str] | None, source: str
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Return (X, y, target, features); target defaults to the first column."""
    columns = list(frame.columns)
    target = target or columns[0]
    if features is None:
        features = [name for name in columns if name != target]
    missing = [name for name in [target, *features] if name not in columns]
    if missing:
        raise DataValidationError(
            f"{source}: missing column(s) {missing}; available columns: {columns} "
            f"({len(frame)} data rows)"
        )
    if target in features:
        raise DataValidationError(f"target column {target!r} is also listed as a feature")
    if not features:
        raise DataValidationError(f"{source}: no feature columns besides target {target!r}")
    X = frame[features].to_numpy(dtype=np.float64)
    y = frame[target].to_numpy(dtype=np.float64)
    return X, y, target, features


# --------------------------------------------------------------------------------------------
# Metrics and output
# --------------------------------------------------------------------------------------------


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    mse = float(mean_squared_error(y_true, y_pred))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def metric_lines(metrics: dict[str, dict[str, float]]) -> list[str]:
    """One ``<split>:<name>=<float>;`` line per entry of METRIC_DEFINITIONS."""
    lines = []
    for definition in METRIC_DEFINITIONS:
        split, name = definition["Name"].split(":")
        lines.append(f"{split}:{name}={float(metrics[split][name])!r};")
    return lines


def dump_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(json.dumps(payload, sort_keys=True, indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        description="Train a RandomForestRegressor.", allow_abbrev=False
    )
    parser.add_argument("--train", default=env.get("SM_CHANNEL_TRAIN", DEFAULT_TRAIN_DIR))
    parser.add_argument(
        "--validation", default=env.get("SM_CHANNEL_VALIDATION", DEFAULT_VALIDATION_DIR)
    )
    parser.add_argument(
        "--model-dir",
        "--model_dir",
        dest="model_dir",
        default=env.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR),
    )
    parser.add_argument(
        "--output-data-dir",
        "--output_data_dir",
        dest="output_data_dir",
        default=env.get("SM_OUTPUT_DATA_DIR", DEFAULT_OUTPUT_DATA_DIR),
    )
    parser.add_argument("--target-column", "--target_column", dest="target_column", default=None)
    parser.add_argument(
        "--feature-columns",
        "--feature_columns",
        dest="feature_columns",
        default=None,
        help="comma-separated; empty: every column except the target",
    )
    # Hyperparameters: SageMaker passes each one as "--name value" (strings).
    for name, default in (
        ("n_estimators", "100"),
        ("max_depth", "None"),
        ("min_samples_leaf", "1"),
        ("random_state", "42"),
        ("n_jobs", "1"),
    ):
        parser.add_argument(f"--{name}", f"--{name.replace('_', '-')}", dest=name, default=default)
    return parser


def parse_column_list(value: str | None) -> list[str] | None:
    names = [name.strip() for name in (value or "").split(",") if name.strip()]
    return names or None


def run(args: argparse.Namespace) -> dict[str, Any]:
    hyperparameters = resolve_hyperparameters(args)
    features_arg = parse_column_list(args.feature_columns)
    train_frame = read_channel(args.train, "train")
    validation_frame = read_channel(args.validation, "validation")
    X_train, y_train, target, features = split_columns(
        train_frame, args.target_column, features_arg, f"train channel {args.train}"
    )
    X_val, y_val, _, _ = split_columns(
        validation_frame, target, features, f"validation channel {args.validation}"
    )
    for channel, y in (("train", y_train), ("validation", y_val)):
        if len(y) < 2:
            raise DataValidationError(
                f"{channel} channel has {len(y)} data row(s); at least 2 are needed for metrics"
            )
    log(
        f"target {target!r}; {len(features)} features; {len(y_train)} train rows, "
        f"{len(y_val)} validation rows; hyperparameters {hyperparameters}"
    )
    model = build_model(hyperparameters)
    model.fit(X_train, y_train)
    metrics = {
        "train": regression_metrics(y_train, model.predict(X_train)),
        "validation": regression_metrics(y_val, model.predict(X_val)),
    }
    for line in metric_lines(metrics):
        print(line, flush=True)

    import joblib
    import sklearn

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / MODEL_FILE_NAME)
    metadata = {
        "format_version": METADATA_FORMAT_VERSION,
        "model_file": MODEL_FILE_NAME,
        "model_type": "sklearn.ensemble.RandomForestRegressor",
        "sklearn_version": sklearn.__version__,
        "target": target,
        "features": features,
        "hyperparameters": hyperparameters,
        "row_counts": {"train": len(y_train), "validation": len(y_val)},
        "metrics": metrics,
    }
    dump_json(model_dir / METADATA_FILE_NAME, metadata)
    log(f"wrote {model_dir / MODEL_FILE_NAME} and {model_dir / METADATA_FILE_NAME}")
    metrics_path = Path(args.output_data_dir) / METRICS_FILE_NAME
    dump_json(metrics_path, metrics)
    log(f"wrote {metrics_path}")
    return metadata


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as exc:  # argparse already printed its usage message
        return int(exc.code or 0)
    if unknown:
        log(f"ignoring unknown arguments: {unknown}")
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
