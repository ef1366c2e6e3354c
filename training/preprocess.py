#!/usr/bin/env python3
"""SageMaker Processing step: validate a raw CSV file and split it into train/validation/test.

Runs inside the SageMaker scikit-learn container (or locally, with the container paths given as
arguments). Standalone: only the standard library and numpy are imported.

Outputs (the contract read by train.py and evaluate.py):

* ``<train-dir>/train.csv``, ``<validation-dir>/validation.csv``, ``<test-dir>/test.csv``:
  comma-separated, UTF-8, ``\\n`` line endings, one header row, the target column first, then the
  feature columns in order; every value is a finite float written with Python's ``repr``.
* ``<baseline-dir>/baseline.json``: per-column statistics of the train split, for drift checks.

Running twice on the same input with the same arguments gives byte-identical outputs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_INPUT_DIR = "/opt/ml/processing/input"
DEFAULT_OUTPUT_BASE = "/opt/ml/processing"
SPLITS = ("train", "validation", "test")
BASELINE_DIR_NAME = "baseline"
BASELINE_FILE_NAME = "baseline.json"
QUANTILES = (
    ("p01", 1.0),
    ("p05", 5.0),
    ("p25", 25.0),
    ("p50", 50.0),
    ("p75", 75.0),
    ("p95", 95.0),
    ("p99", 99.0),
)
BASELINE_FORMAT_VERSION = 1


class DataValidationError(ValueError):
    """Bad input data or arguments: reported by main() as one ``ERROR:`` line, exit code 2."""


def log(message: str) -> None:
    print(f"[preprocess] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Column selection
# --------------------------------------------------------------------------------------------


def parse_column_list(value: str | None) -> list[str]:
    """Split a comma-separated column list; None or blank gives an empty list."""
    if value is None:
        return []
    return [name.strip() for name in value.split(",") if name.strip()]


def load_schema(path: str | Path) -> dict[str, Any]:
    """Read a schema JSON file: ``{"target": str, "features": [str, ...]}`` (both optional)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"cannot read schema file {path}: {exc}") from None
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise DataValidationError(f"schema file {path} is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise DataValidationError(f"schema file {path} must contain a JSON object")
    target = schema.get("target")
    if target is not None and (not isinstance(target, str) or not target.strip()):
        raise DataValidationError(f'schema file {path}: "target" must be a non-empty string')
    features = schema.get("features")
    if features is not None and (
        not isinstance(features, list)
        or not all(isinstance(name, str) and name.strip() for name in features)
    ):
        raise DataValidationError(
            f'schema file {path}: "features" must be a list of non-empty strings'
        )
    return schema


def resolve_column_config(
    target_column: str | None,
    feature_columns: str | None,
    exclude_columns: str | None = None,
    schema: dict[str, Any] | None = None,
) -> tuple[str, list[str] | None, list[str]]:
    """Combine CLI arguments and schema: (target, features or None for "all others", excluded).

    CLI arguments win over the schema. An empty ``--feature-columns`` counts as not given: the
    schema's features are used if there is a schema, else every column except the target.
    """
    schema = schema or {}
    target = (target_column or "").strip() or (schema.get("target") or "").strip()
    if not target:
        raise DataValidationError(
            'no target column given: pass --target-column or a --schema-file with a "target" entry'
        )
    features: list[str] | None = parse_column_list(feature_columns) or None
    if features is None and schema.get("features"):
        features = [name.strip() for name in schema["features"]]
    excluded = parse_column_list(exclude_columns)
    if features is not None:
        duplicates = sorted({name for name in features if features.count(name) > 1})
        if duplicates:
            raise DataValidationError(f"feature columns listed more than once: {duplicates}")
        if target in features:
            raise DataValidationError(
                f"target column {target!r} is also listed as a feature column"
            )
    if target in excluded:
        raise DataValidationError(f"target column {target!r} cannot be excluded")
    return target, features, excluded


def select_columns(
    header: list[str],
    target: str,
    features: list[str] | None,
    excluded: list[str],
    source: str,
    n_rows: int,
) -> list[str]:
    """Check that the target and feature columns exist; return the ordered feature list."""
    if features is None:
        features = [name for name in header if name != target]
    missing = []
    if target not in header:
        missing.append(f"{target!r} (target)")
    missing.extend(f"{name!r} (feature)" for name in features if name not in header)
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
            hint = " (the file may not be comma-separated; only ',' is supported)"
        raise DataValidationError(
            f"{source}: missing column(s) {', '.join(missing)}; available columns: "
            f"{', '.join(header)}{hint} ({n_rows} data rows)"
        )
    unknown = [name for name in excluded if name not in header]
    if unknown:
        log(f"--exclude-columns names not in the file, ignored: {', '.join(unknown)}")
    features = [name for name in features if name not in excluded]
    if not features:
        raise DataValidationError(f"{source}: no feature columns left after exclusions")
    return features


# --------------------------------------------------------------------------------------------
# Reading and validating the CSV
# --------------------------------------------------------------------------------------------


def find_input_file(input_dir: str | Path, input_file: str | None = None) -> Path:
    """Return the CSV to read: ``input_file`` (relative to input_dir) or the only .csv there."""
    input_dir = Path(input_dir)
    if input_file:
        path = Path(input_file)
        if not path.is_absolute():
            path = input_dir / path
        if not path.is_file():
            raise DataValidationError(f"input file {path} does not exist")
        return path
    if not input_dir.is_dir():
        raise DataValidationError(f"input directory {input_dir} does not exist")
    candidates = sorted(
        p for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() == ".csv"
    )
    if not candidates:
        present = sorted(p.name for p in input_dir.iterdir())
        raise DataValidationError(
            f"no .csv file in input directory {input_dir} (found: {present or 'nothing'})"
        )
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise DataValidationError(
            f"several .csv files in input directory {input_dir}: {names}; "
            "choose one with --input-file"
        )
    return candidates[0]


def decode_csv_bytes(data: bytes, source: str) -> str:
    """Decode file content as UTF-8 text, rejecting empty, binary and JSON content."""
    if not data.strip():
        what = "0 bytes" if not data else "only whitespace"
        raise DataValidationError(f"{source} is empty ({what}, 0 data rows)")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataValidationError(
            f"{source} is not a valid CSV: it contains binary data (NUL byte at offset {nul})"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"{source} is not a valid CSV: it is not UTF-8 text "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    first = text.lstrip()[:1]
    if first in ("{", "["):
        raise DataValidationError(
            f"{source} is not a valid CSV: it looks like a JSON document (starts with {first!r})"
        )
    return text


def parse_csv_text(text: str, source: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Parse CSV text into (header, rows, line numbers of the rows).

    Blank lines are skipped. Raises DataValidationError for ragged rows, duplicate or empty
    header names and malformed quoting.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = [name.strip() for name in row]
                header_line = reader.line_num
                continue
            if len(row) != len(header):
                raise DataValidationError(
                    f"{source} is not a valid CSV: line {reader.line_num} has {len(row)} "
                    f"fields, expected {len(header)} (from the header on line {header_line})"
                )
            rows.append(row)
            line_numbers.append(reader.line_num)
    except csv.Error as exc:
        raise DataValidationError(
            f"{source} is not a valid CSV: line {reader.line_num}: {exc}"
        ) from None
    if header is None:
        raise DataValidationError(f"{source} is empty (no header row, 0 data rows)")
    empty = [str(i + 1) for i, name in enumerate(header) if not name]
    if empty:
        raise DataValidationError(
            f"{source}: header has an empty column name at position(s) {', '.join(empty)} "
            f"({len(rows)} data rows)"
        )
    seen: set[str] = set()
    duplicates: list[str] = []
    for name in header:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise DataValidationError(
            f"{source}: duplicate column name(s) in the header: "
            f"{', '.join(repr(n) for n in duplicates)} ({len(rows)} data rows)"
        )
    return header, rows, line_numbers


def parse_number(text: str) -> float:
    """Parse one CSV cell as a finite float; NaN for anything else (empty, text, nan, inf)."""
    text = text.strip()
    if not text or "_" in text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def convert_columns(
    header: list[str],
    rows: list[list[str]],
    line_numbers: list[int],
    columns: list[str],
    source: str,
    max_invalid_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``columns`` to a float matrix; return (matrix, mask of rows to keep).

    A cell is invalid if it is empty, non-numeric, NaN or infinite. A column whose share of
    invalid cells exceeds ``max_invalid_fraction`` raises DataValidationError; otherwise rows
    with any invalid cell are dropped (mask False).
    """
    n_rows = len(rows)
    matrix = np.empty((n_rows, len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        k = header.index(name)
        matrix[:, j] = [parse_number(row[k]) for row in rows]
    invalid = ~np.isfinite(matrix)
    for j, name in enumerate(columns):
        bad = np.flatnonzero(invalid[:, j])
        if bad.size == 0:
            continue
        fraction = bad.size / n_rows
        if fraction > max_invalid_fraction:
            first = int(bad[0])
            value = rows[first][header.index(name)]
            raise DataValidationError(
                f"{source}: column {name!r} has {bad.size} invalid value(s) (empty, "
                f"non-numeric, NaN or inf) in {n_rows} data rows ({fraction:.2%}, tolerance "
                f"{max_invalid_fraction:.2%}); first at row {first + 1} (line "
                f"{line_numbers[first]}): {value!r}"
            )
    keep = ~invalid.any(axis=1)
    return matrix, keep


# --------------------------------------------------------------------------------------------
# Splitting, statistics and output
# --------------------------------------------------------------------------------------------


def split_sizes(n_rows: int, train_ratio: float, validation_ratio: float) -> tuple[int, int, int]:
    """Row counts of the train/validation/test splits (rounded half up, test gets the rest)."""
    n_train = math.floor(n_rows * train_ratio + 0.5)
    n_validation = math.floor(n_rows * validation_ratio + 0.5)
    n_test = n_rows - n_train - n_validation
    if min(n_train, n_validation, n_test) < 1:
        raise DataValidationError(
            f"{n_rows} rows are too few for ratios train={train_ratio}, "
            f"validation={validation_ratio}: split sizes would be {n_train}/{n_validation}/"
            f"{n_test}; every split needs at least one row"
        )
    return n_train, n_validation, n_test


def split_indices(
    n_rows: int, train_ratio: float, validation_ratio: float, random_state: int
) -> dict[str, np.ndarray]:
    """Seeded shuffle of row indices into the three splits (same seed, same split)."""
    n_train, n_validation, _ = split_sizes(n_rows, train_ratio, validation_ratio)
    order = np.random.RandomState(random_state).permutation(n_rows)
    return {
        "train": order[:n_train],
        "validation": order[n_train : n_train + n_validation],
        "test": order[n_train + n_validation :],
    }


def column_statistics(values: np.ndarray) -> dict[str, float | int]:
    """count, mean, std (sample, ddof=1; 0.0 for a single value), min, max and quantiles."""
    values = np.asarray(values, dtype=np.float64)
    stats: dict[str, float | int] = {
        "count": int(values.size),
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if values.size > 1 else 0.0,
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }
    percentiles = np.percentile(values, [q for _, q in QUANTILES])
    for (name, _), value in zip(QUANTILES, percentiles):
        stats[name] = float(value)
    return stats


def format_value(value: float) -> str:
    return repr(float(value))


def write_split_csv(path: Path, columns: list[str], matrix: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in matrix:
            writer.writerow([format_value(v) for v in row])


def dump_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, sort_keys=True, indent=2, allow_nan=False)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text + "\n")


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Validate a CSV file and split it into train/validation/test.",
        allow_abbrev=False,
    )
    parser.add_argument("--input-dir", default=DEFAULT_INPUT_DIR)
    parser.add_argument("--input-file", default=None, help="CSV name in --input-dir, or a path")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_BASE, help="base output folder")
    parser.add_argument("--train-dir", default=None, help="default <output-dir>/train")
    parser.add_argument("--validation-dir", default=None, help="default <output-dir>/validation")
    parser.add_argument("--test-dir", default=None, help="default <output-dir>/test")
    parser.add_argument("--baseline-dir", default=None, help="default <output-dir>/baseline")
    parser.add_argument("--target-column", default=None)
    parser.add_argument(
        "--feature-columns",
        default=None,
        help="comma-separated; empty: the schema's features, else all columns but the target",
    )
    parser.add_argument("--exclude-columns", default=None, help="comma-separated columns to drop")
    parser.add_argument("--schema-file", default=None)
    parser.add_argument("--train-ratio", type=float, default=0.7)
    parser.add_argument("--validation-ratio", type=float, default=0.15)
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument("--min-rows", type=int, default=20)
    parser.add_argument("--max-invalid-fraction", type=float, default=0.0)
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    if not 0.0 < args.train_ratio < 1.0:
        raise DataValidationError(f"--train-ratio must be in (0, 1), got {args.train_ratio}")
    if not 0.0 < args.validation_ratio < 1.0:
        raise DataValidationError(
            f"--validation-ratio must be in (0, 1), got {args.validation_ratio}"
        )
    if args.train_ratio + args.validation_ratio >= 1.0:
        raise DataValidationError(
            "--train-ratio + --validation-ratio must be below 1 so that the test split is "
            f"not empty, got {args.train_ratio} + {args.validation_ratio}"
        )
    if not 0.0 <= args.max_invalid_fraction <= 1.0:
        raise DataValidationError(
            f"--max-invalid-fraction must be in [0, 1], got {args.max_invalid_fraction}"
        )
    if args.min_rows < 1:
        raise DataValidationError(f"--min-rows must be at least 1, got {args.min_rows}")


def output_dirs(args: argparse.Namespace) -> dict[str, Path]:
    base = Path(args.output_dir)
    return {
        "train": Path(args.train_dir or base / "train"),
        "validation": Path(args.validation_dir or base / "validation"),
        "test": Path(args.test_dir or base / "test"),
        "baseline": Path(args.baseline_dir or base / BASELINE_DIR_NAME),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Validate, split and write everything; return the baseline document."""
    check_arguments(args)
    schema = load_schema(args.schema_file) if args.schema_file else None
    target, features, excluded = resolve_column_config(
        args.target_column, args.feature_columns, args.exclude_columns, schema
    )
    path = find_input_file(args.input_dir, args.input_file)
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataValidationError(f"cannot read {source}: {exc}") from None
    log(f"reading {source} ({len(data)} bytes)")
    text = decode_csv_bytes(data, source)
    header, rows, line_numbers = parse_csv_text(text, source)
    n_input = len(rows)
    features = select_columns(header, target, features, excluded, source, n_input)
    columns = [target, *features]
    log(f"{n_input} data rows; target {target!r}; {len(features)} features: {', '.join(features)}")
    if n_input == 0:
        raise DataValidationError(
            f"{source}: has a header but 0 data rows; at least {args.min_rows} required"
        )
    matrix, keep = convert_columns(
        header, rows, line_numbers, columns, source, args.max_invalid_fraction
    )
    n_dropped = int(n_input - keep.sum())
    if n_dropped:
        log(f"dropped {n_dropped} of {n_input} rows with invalid values (within tolerance)")
    matrix = matrix[keep]
    n_rows = matrix.shape[0]
    if n_rows < args.min_rows:
        raise DataValidationError(
            f"{source}: only {n_rows} usable data rows ({n_input} read, {n_dropped} dropped); "
            f"at least {args.min_rows} required (--min-rows)"
        )
    indices = split_indices(n_rows, args.train_ratio, args.validation_ratio, args.random_state)
    dirs = output_dirs(args)
    for split in SPLITS:
        out = dirs[split] / f"{split}.csv"
        write_split_csv(out, columns, matrix[indices[split]])
        log(f"wrote {out} ({len(indices[split])} rows)")
    train = matrix[indices["train"]]
    baseline = {
        "format_version": BASELINE_FORMAT_VERSION,
        "statistics_split": "train",
        "target": target,
        "features": features,
        "columns": {name: column_statistics(train[:, j]) for j, name in enumerate(columns)},
        "row_counts": {split: len(indices[split]) for split in SPLITS},
        "input_rows": n_input,
        "dropped_rows": n_dropped,
        "source_file": path.name,
        "source_sha256": hashlib.sha256(data).hexdigest(),
        "split": {
            "train_ratio": float(args.train_ratio),
            "validation_ratio": float(args.validation_ratio),
            "random_state": int(args.random_state),
        },
    }
    out = dirs["baseline"] / BASELINE_FILE_NAME
    dump_json(out, baseline)
    log(f"wrote {out}")
    return baseline


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
