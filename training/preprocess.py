#!/usr/bin/env python3
"""SageMaker Processing step: validate a raw CSV file and split it into train/validation/test.

Runs inside the SageMaker scikit-learn container (or locally, with the container paths given as
arguments). Standalone: only the standard library and numpy are imported.

Outputs (the contract read by train.py and evaluate.py):

* ``<train-dir>/train.csv``, ``<validation-dir>/validation.csv``, ``<test-dir>/test.csv``:
  comma-separated, UTF-8, ``\\n`` line endings, one header row, the target column first, then the
  feature columns in order; every value is a finite float written with Python's ``repr``.
* ``<baseline-dir>/dataset.csv`` and ``<baseline-dir>/analysis_config.json`` (with
  ``--bias-facet``): the data-bias check's input, every validated row in the splits' format
  (bias is a property of the data, not of one random split), and its SageMaker Clarify
  analysis config: the target as the label, positive above ``--bias-label-threshold``
  (default: the data's median), and the facet, whose values above
  ``--bias-facet-threshold`` form the sensitive group.

Running twice on the same input with the same arguments gives byte-identical outputs. Bad input
is refused before anything is written, with one sentence naming the file, column and row.

Read ``run()`` first: it is the recipe (check, read and validate, split, write).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

DEFAULT_INPUT_DIR = "/opt/ml/processing/input"
DEFAULT_OUTPUT_BASE = "/opt/ml/processing"
SPLITS = ("train", "validation", "test")
BASELINE_DIR_NAME = "baseline"
BIAS_DATASET_FILE_NAME = "dataset.csv"  # every validated row: the data-bias check's input
ANALYSIS_CONFIG_FILE_NAME = "analysis_config.json"
# The seeds numpy's RandomState (and so scikit-learn's random_state) accepts.
MAX_SEED = 2**32 - 1
# scikit-learn's trees read features as float32 (sklearn.tree._tree.DTYPE).
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT64_MAX = float(np.finfo(np.float64).max)


class DataValidationError(ValueError):
    """Bad input data or arguments: reported by main() as one ``ERROR:`` line, exit code 2."""


class Dataset(NamedTuple):
    """The validated input: the needed columns as floats, target first."""

    source: str
    target: str
    features: list[str]
    matrix: np.ndarray

    @property
    def columns(self) -> list[str]:
        return [self.target, *self.features]


def log(message: str) -> None:
    print(f"[preprocess] {message}", flush=True)


def run(args: argparse.Namespace) -> dict[str, int]:
    """The recipe: check the arguments, read and validate the input, split it, and only then
    write the splits and the Clarify config. Returns the row count of each split."""
    check_arguments(args)
    data = read_validated(args)
    indices = split_indices(
        data.matrix.shape[0], args.train_ratio, args.validation_ratio, args.random_state
    )
    train = data.matrix[indices["train"]]
    check_target_varies(
        train[:, 0],
        data,
        f"the {len(train)} rows of the train split (--random-state {args.random_state})",
    )
    config = None
    if args.bias_facet:
        # Bias is a property of the data, not of one random split: the check reads every
        # validated row, so a rerun with another --random-state sees the same data.
        config = bias_analysis_config(
            data.columns,
            data.matrix,
            args.bias_facet,
            args.bias_facet_threshold,
            args.bias_label_threshold,
        )
    dirs = output_dirs(args)
    for split in SPLITS:
        out = dirs[split] / f"{split}.csv"
        write_split_csv(out, data.columns, data.matrix[indices[split]])
        log(f"wrote {out} ({len(indices[split])} rows)")
    if config is not None:
        out = dirs["baseline"] / BIAS_DATASET_FILE_NAME
        write_split_csv(out, data.columns, data.matrix)
        log(f"wrote {out} ({len(data.matrix)} rows, for the data-bias check)")
        out = dirs["baseline"] / ANALYSIS_CONFIG_FILE_NAME
        dump_json(out, config)
        log(
            f"wrote {out} (facet {args.bias_facet!r}, "
            f"label above {config['label_values_or_threshold'][0]:g})"
        )
    return {split: len(indices[split]) for split in SPLITS}


def read_validated(args: argparse.Namespace) -> Dataset:
    """Find the input, check its bytes and structure, and parse the needed columns; rows with
    invalid values are dropped within ``--max-invalid-fraction``, else it fails clearly."""
    schema = load_schema(args.schema_file) if args.schema_file else None
    target, features, excluded = resolve_column_config(
        args.target_column, args.feature_columns, args.exclude_columns, schema
    )
    path = find_input_file(args.input_dir, args.input_file)
    source = str(path)
    table = read_table(read_text(path, source), source)
    n_input = len(table.rows)
    features = select_columns(table.header, target, features, excluded, source, n_input)
    columns = [target, *features]
    log(f"{n_input} data rows; target {target!r}; {len(features)} features: {', '.join(features)}")
    if n_input == 0:
        raise DataValidationError(
            f"{source}: has a header but 0 data rows; at least {args.min_rows} required"
        )
    positions = [table.header.index(name) for name in columns]
    cells = [[row[i] for i in positions] for row in table.rows]
    matrix = parse_cells(cells, columns, table.lines, source, args.max_invalid_fraction)
    keep = np.isfinite(matrix).all(axis=1)
    n_dropped = int(n_input - keep.sum())
    if n_dropped:
        log(f"dropped {n_dropped} of {n_input} rows with invalid values (within tolerance)")
    if int(keep.sum()) < args.min_rows:
        raise DataValidationError(
            f"{source}: only {int(keep.sum())} usable data rows ({n_input} read, {n_dropped} "
            f"dropped); at least {args.min_rows} required (--min-rows)"
        )
    kept = np.flatnonzero(keep)
    check_magnitudes(matrix[kept], columns, cells, kept, table.lines, source)
    data = Dataset(source, target, features, matrix[kept])
    check_target_varies(data.matrix[:, 0], data, f"all {len(kept)} usable data rows")
    return data


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


def read_text(path: Path, source: str) -> str:
    """The file as text (a leading BOM removed); empty, binary, non-UTF-8 and JSON content is
    refused, in that order, with the offset of the offending byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataValidationError(f"cannot read {source}: {exc}") from None
    log(f"reading {source} ({len(data)} bytes)")
    if not data.strip():
        what = "0 bytes" if not data else "only whitespace"
        raise DataValidationError(f"{source} is empty ({what}, 0 data rows)")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataValidationError(
            f"{source} is not a valid CSV: it contains binary data (NUL byte at offset {nul})"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"{source} is not a valid CSV: it is not UTF-8 text "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    text = text[1:] if text.startswith("\ufeff") else text
    first = text.lstrip()[:1]
    if first in ("{", "["):
        raise DataValidationError(
            f"{source} is not a valid CSV: it looks like a JSON document (starts with {first!r})"
        )
    return text


class CsvTable(NamedTuple):
    header: list[str]  # stripped column names
    rows: list[list[str]]  # the data records, each as wide as the header
    lines: list[int]  # the file line on which each data record ends


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def read_table(text: str, source: str) -> CsvTable:
    """The header (the first record that is not blank) and the data records after it.

    After the header only empty lines are skipped; every other line is a record and must have
    as many fields as the header (so a whitespace-only line is a ragged line). Malformed
    quoting (strict: a quote left open at the end of the file, or text after a closing quote),
    ragged lines, and empty or duplicate header names are refused, naming the line.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    raw_header: list[str] | None = None
    header_line = 0
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if raw_header is None:
                if not _blank(row):
                    raw_header, header_line = row, reader.line_num
            elif len(row) == len(raw_header):
                rows.append(row)
                lines.append(reader.line_num)
            elif row:
                raise DataValidationError(
                    f"{source} is not a valid CSV: line {reader.line_num} has {len(row)} "
                    f"fields, expected {len(raw_header)} (from the header on line {header_line})"
                )
    except csv.Error as exc:
        raise DataValidationError(
            f"{source} is not a valid CSV: line {reader.line_num}: {exc}"
        ) from None
    if raw_header is None:
        raise DataValidationError(f"{source} is empty (no header row, 0 data rows)")
    header = [name.strip() for name in raw_header]
    empty = [str(i + 1) for i, name in enumerate(header) if not name]
    if empty:
        raise DataValidationError(
            f"{source}: header has an empty column name at position(s) {', '.join(empty)} "
            f"({len(rows)} data rows)"
        )
    duplicates = [name for i, name in enumerate(header) if name in header[:i]]
    if duplicates:
        listed = ", ".join(repr(name) for name in dict.fromkeys(duplicates))
        raise DataValidationError(
            f"{source}: duplicate column name(s) in the header: {listed} ({len(rows)} data rows)"
        )
    return CsvTable(header, rows, lines)


def parse_number(text: str) -> float:
    """Parse one CSV cell as a finite float; NaN for anything else (empty, text, nan, inf, a
    number beyond float64's range, digit-group underscores)."""
    text = text.strip()
    if not text or "_" in text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def parse_cells(
    cells: list[list[str]],
    columns: list[str],
    lines: list[int],
    source: str,
    max_invalid_fraction: float,
) -> np.ndarray:
    """The cells as a float matrix, NaN where a cell is invalid. A column whose share of invalid
    cells exceeds ``max_invalid_fraction`` is refused, naming its first invalid cell."""
    matrix = np.array(
        [[parse_number(cell) for cell in row] for row in cells], dtype=np.float64
    ).reshape(len(cells), len(columns))
    n_rows = len(cells)
    for j, name in enumerate(columns):
        bad = np.flatnonzero(np.isnan(matrix[:, j]))
        fraction = bad.size / n_rows
        if bad.size and fraction > max_invalid_fraction:
            first = int(bad[0])
            raise DataValidationError(
                f"{source}: column {name!r} has {bad.size} invalid value(s) (empty, "
                f"non-numeric, NaN, infinite or beyond float64's range) in {n_rows} data rows "
                f"({fraction:.2%}, tolerance {max_invalid_fraction:.2%}); first at row "
                f"{first + 1} (line {lines[first]}): {cells[first][j]!r}"
            )
    return matrix


def check_magnitudes(
    matrix: np.ndarray,
    columns: list[str],
    cells: list[list[str]],
    kept: np.ndarray,
    lines: list[int],
    source: str,
) -> None:
    """Refuse values too large for what is computed from them later (``matrix`` holds the kept
    rows, ``kept`` their indices among all data rows): squared errors and sums of squares over a
    column must fit in float64 (the data-quality statistics, the metrics), and features must fit
    in float32, in which scikit-learn's trees read them."""
    # n values, each up to the limit, give differences up to 2 x limit, squared and summed.
    fits_float64 = math.sqrt(FLOAT64_MAX / (4 * len(matrix)))
    for j, name in enumerate(columns):
        limit = fits_float64
        reason = f"the most whose squares, summed over its {len(matrix)} rows, fit in float64"
        if j > 0 and limit > FLOAT32_MAX:
            limit, reason = FLOAT32_MAX, "the float32 range in which scikit-learn's trees read it"
        worst = int(np.argmax(np.abs(matrix[:, j])))
        if abs(matrix[worst, j]) > limit:
            row = int(kept[worst])
            raise DataValidationError(
                f"{source}: column {name!r} holds {cells[row][j].strip()!r} at data row "
                f"{row + 1} (line {lines[row]}), beyond ±{limit:.4g}, {reason}"
            )


def check_target_varies(values: np.ndarray, data: Dataset, rows: str) -> None:
    """A target with one value has nothing to learn: R² would be undefined and the model a
    constant, so it is refused before training rather than registered."""
    if len(values) and np.all(values == values[0]):
        value = float(values[0])
        raise DataValidationError(
            f"{data.source}: target column {data.target!r} has the same value ({value!r}) in "
            f"{rows}: there is nothing to learn"
        )


# --------------------------------------------------------------------------------------------
# Splitting and output
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


def format_rows(block: np.ndarray) -> str:
    """The rows of a float matrix as CSV lines: values written with repr(), ``\\n`` line ends."""
    return "".join([",".join(map(repr, row)) + "\n" for row in block.tolist()])


def write_split_csv(path: Path, columns: list[str], matrix: np.ndarray) -> None:
    """Write the matrix as CSV: a header, then one line per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(columns)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(header.getvalue())
        handle.write(format_rows(matrix))


def dump_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, sort_keys=True, indent=2, allow_nan=False)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text + "\n")


def _threshold(text: str, default: float, name: str) -> float:
    if not str(text).strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise DataValidationError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise DataValidationError(f"{name} must be finite, got {text!r}")
    return value


def bias_analysis_config(
    columns: list[str], rows: np.ndarray, facet: str, facet_threshold: str, label_threshold: str
) -> dict[str, Any]:
    """Clarify's analysis config for pre-training bias (the shape the SDK's DataConfig and
    BiasConfig write): the label is the target column, the first of ``columns``.

    No ``headers``: train.csv has a header row, and Clarify reads the column names from the
    dataset only when ``headers`` is absent (with ``headers`` given, a text/csv dataset is read
    as data from its first line, so the header row would become a record)."""
    if facet not in columns[1:]:
        raise DataValidationError(
            f"bias facet column {facet!r} is not a feature column ({', '.join(columns[1:])}); "
            "set the BiasFacetColumn parameter"
        )
    median = float(np.median(rows[:, 0])) if len(rows) else 0.0
    return {
        "dataset_type": "text/csv",
        "label": columns[0],
        "label_values_or_threshold": [
            _threshold(label_threshold, median, "--bias-label-threshold")
        ],
        "facet": [
            {
                "name_or_index": facet,
                "value_or_threshold": [_threshold(facet_threshold, 0.5, "--bias-facet-threshold")],
            }
        ],
        "methods": {
            "pre_training_bias": {"methods": "all"},
            "report": {"name": "report", "title": "Analysis Report"},
        },
    }


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
    parser.add_argument("--random-state", type=int, default=42, help=f"0 to {MAX_SEED}")
    parser.add_argument("--min-rows", type=int, default=20)
    parser.add_argument("--max-invalid-fraction", type=float, default=0.0)
    parser.add_argument("--bias-facet", default=None, help="write the Clarify analysis config")
    parser.add_argument("--bias-facet-threshold", default="", help="default 0.5")
    parser.add_argument("--bias-label-threshold", default="", help="default: the median")
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
    if not 0 <= args.random_state <= MAX_SEED:
        raise DataValidationError(
            f"--random-state must be a whole number from 0 to {MAX_SEED} (2**32 - 1, the seeds "
            f"numpy and scikit-learn accept), got {args.random_state}"
        )


def output_dirs(args: argparse.Namespace) -> dict[str, Path]:
    base = Path(args.output_dir)
    return {
        "train": Path(args.train_dir or base / "train"),
        "validation": Path(args.validation_dir or base / "validation"),
        "test": Path(args.test_dir or base / "test"),
        "baseline": Path(args.baseline_dir or base / BASELINE_DIR_NAME),
    }


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
