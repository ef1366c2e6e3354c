#!/usr/bin/env python3
"""SageMaker Processing step: validate a raw CSV file and split it into train/validation/test.

Runs inside the SageMaker scikit-learn container (or locally, with the container paths given as
arguments). Standalone: only the standard library, numpy and pandas are imported, and only
APIs that exist from pandas 1.1 (the container's) to pandas 3 are used.

Memory use grows with rows x needed columns as float64, not with the text: the file is checked
and scanned as a stream (its rows are not kept as Python objects), pandas reads only the needed
columns, and the splits are formatted in chunks.

Outputs (the contract read by train.py and evaluate.py):

* ``<train-dir>/train.csv``, ``<validation-dir>/validation.csv``, ``<test-dir>/test.csv``:
  comma-separated, UTF-8, ``\\n`` line endings, one header row, the target column first, then the
  feature columns in order; every value is a finite float written with Python's ``repr``.
* ``<baseline-dir>/baseline.json``: per-column statistics of the train split, for drift checks.
* ``<baseline-dir>/analysis_config.json`` (with ``--bias-facet``): the SageMaker Clarify analysis
  config of the data-bias check: the target as the label, positive above
  ``--bias-label-threshold`` (default: the train split's median), and the facet, whose values
  above ``--bias-facet-threshold`` form the sensitive group.

Running twice on the same input with the same arguments gives byte-identical outputs.

Read ``run()`` first: it is the recipe (validate, split, write, baseline), and each step is
a function of its own below it.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import csv
import hashlib
import io
import itertools
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

DEFAULT_INPUT_DIR = "/opt/ml/processing/input"
DEFAULT_OUTPUT_BASE = "/opt/ml/processing"
SPLITS = ("train", "validation", "test")
BASELINE_DIR_NAME = "baseline"
BASELINE_FILE_NAME = "baseline.json"
ANALYSIS_CONFIG_FILE_NAME = "analysis_config.json"
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
BLOCK_SIZE = 1 << 20  # bytes per read in the byte check
READ_CHUNK_ROWS = 100_000  # rows per chunk when cells must be parsed one by one
WRITE_CHUNK_ROWS = 50_000  # rows formatted per write


# --------------------------------------------------------------------------------------------
# The recipe (read this first); every step it calls is defined below, in order:
# input validation, then splitting and statistics, then the command line.
# --------------------------------------------------------------------------------------------


class Dataset(NamedTuple):
    """The validated input: the needed columns as floats, target first."""

    source: Path
    sha256: str
    target: str
    features: list[str]
    matrix: np.ndarray
    input_rows: int
    dropped_rows: int

    @property
    def columns(self) -> list[str]:
        return [self.target, *self.features]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe: read and validate the input, split it, write the splits, then the
    baseline the quality checks compare against. Returns the baseline document."""
    check_arguments(args)
    data = read_validated(args)
    indices = split_indices(
        data.matrix.shape[0], args.train_ratio, args.validation_ratio, args.random_state
    )
    dirs = output_dirs(args)
    for split in SPLITS:
        out = dirs[split] / f"{split}.csv"
        write_split_csv(out, data.columns, data.matrix, indices[split])
        log(f"wrote {out} ({len(indices[split])} rows)")
    train = data.matrix[indices["train"]]
    baseline = make_baseline(data, train, indices, args)
    out = dirs["baseline"] / BASELINE_FILE_NAME
    dump_json(out, baseline)
    log(f"wrote {out}")
    if args.bias_facet:
        config = bias_analysis_config(
            data.columns,
            train,
            args.bias_facet,
            args.bias_facet_threshold,
            args.bias_label_threshold,
        )
        out = dirs["baseline"] / ANALYSIS_CONFIG_FILE_NAME
        dump_json(out, config)
        log(
            f"wrote {out} (facet {args.bias_facet!r}, "
            f"label above {config['label_values_or_threshold'][0]:g})"
        )
    return baseline


def read_validated(args: argparse.Namespace) -> Dataset:
    """Find the input, check its bytes and structure, read the needed columns; rows with
    invalid values are dropped within ``--max-invalid-fraction``, else it fails clearly."""
    schema = load_schema(args.schema_file) if args.schema_file else None
    target, features, excluded = resolve_column_config(
        args.target_column, args.feature_columns, args.exclude_columns, schema
    )
    path = find_input_file(args.input_dir, args.input_file)
    source = str(path)
    try:
        log(f"reading {source} ({path.stat().st_size} bytes)")
    except OSError as exc:
        raise DataValidationError(f"cannot read {source}: {exc}") from None
    _, sha256 = check_csv_bytes(path, source)
    layout = scan_csv_structure(path, source)
    n_input = layout.n_rows
    features = select_columns(layout.header, target, features, excluded, source, n_input)
    columns = [target, *features]
    log(f"{n_input} data rows; target {target!r}; {len(features)} features: {', '.join(features)}")
    if n_input == 0:
        raise DataValidationError(
            f"{source}: has a header but 0 data rows; at least {args.min_rows} required"
        )
    matrix, keep = load_columns(path, layout, columns, source, args.max_invalid_fraction)
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
    return Dataset(path, sha256, target, features, matrix, n_input, n_dropped)


def make_baseline(
    data: Dataset, train: np.ndarray, indices: dict[str, np.ndarray], args: argparse.Namespace
) -> dict[str, Any]:
    """Per-column statistics of the train split, with where they came from."""
    return {
        "format_version": BASELINE_FORMAT_VERSION,
        "statistics_split": "train",
        "target": data.target,
        "features": data.features,
        "columns": {name: column_statistics(train[:, j]) for j, name in enumerate(data.columns)},
        "row_counts": {split: len(indices[split]) for split in SPLITS},
        "input_rows": data.input_rows,
        "dropped_rows": data.dropped_rows,
        "source_file": data.source.name,
        "source_sha256": data.sha256,
        "split": {
            "train_ratio": float(args.train_ratio),
            "validation_ratio": float(args.validation_ratio),
            "random_state": int(args.random_state),
        },
    }


def _version_tuple(version: str) -> tuple[int, ...]:
    """Major and minor version numbers: "1.1.3" -> (1, 1), "3.0.0rc1" -> (3, 0)."""
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        parts.append(int(digits or 0))
    return tuple(parts)


PANDAS_VERSION = _version_tuple(pd.__version__)


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


def check_csv_bytes(path: Path, source: str) -> tuple[int, str]:
    """Stream the raw bytes once: reject empty, binary, non-UTF-8 and JSON content.

    Returns (size in bytes, SHA-256 hex digest). Memory use is one block, whatever the file size.
    Checks in this order, as a whole-file check would: empty or whitespace-only, then the first
    NUL byte anywhere, then the first invalid UTF-8 sequence, then a JSON-looking start.
    """
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    has_content = False  # a byte other than ASCII whitespace (what bytes.strip() removes)
    first_char = ""  # first non-whitespace character of the text (a leading BOM removed)
    at_start = True  # no text decoded yet: a BOM may still come
    bad_utf8: tuple[int, int] | None = None  # (offset, byte value) of the first invalid byte
    try:
        with open(path, "rb") as handle:
            while True:
                block = handle.read(BLOCK_SIZE)
                if not block:
                    break
                digest.update(block)
                if not has_content and block.strip():
                    has_content = True
                nul = block.find(b"\x00")
                if nul >= 0:
                    raise DataValidationError(
                        f"{source} is not a valid CSV: it contains binary data "
                        f"(NUL byte at offset {size + nul})"
                    )
                if bad_utf8 is None:
                    pending = len(decoder.getstate()[0])
                    try:
                        text = decoder.decode(block)
                    except UnicodeDecodeError as exc:
                        bad_utf8 = (size - pending + exc.start, exc.object[exc.start])
                    else:
                        if at_start and text:
                            at_start = False
                            if text.startswith("\ufeff"):
                                text = text[1:]
                        if not first_char:
                            first_char = text.lstrip()[:1]
                size += len(block)
    except OSError as exc:
        raise DataValidationError(f"cannot read {source}: {exc}") from None
    if not has_content:
        what = "0 bytes" if size == 0 else "only whitespace"
        raise DataValidationError(f"{source} is empty ({what}, 0 data rows)")
    if bad_utf8 is None:
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:  # the file ends inside a multi-byte sequence
            bad_utf8 = (size - pending + exc.start, exc.object[exc.start])
    if bad_utf8 is not None:
        offset, byte = bad_utf8
        raise DataValidationError(
            f"{source} is not a valid CSV: it is not UTF-8 text "
            f"(byte 0x{byte:02x} at offset {offset})"
        )
    if first_char in ("{", "["):
        raise DataValidationError(
            f"{source} is not a valid CSV: it looks like a JSON document "
            f"(starts with {first_char!r})"
        )
    return size, digest.hexdigest()


class CsvLayout(NamedTuple):
    """What the structure scan learned about a CSV file (its rows are not kept)."""

    header: list[str]  # stripped column names
    header_line: int  # physical line on which the header record ends
    n_rows: int  # data rows (records after the header; empty lines are not rows)
    data_offset: int  # byte offset just past the header record


def _is_blank_before_header(row: list[str]) -> bool:
    """Lines before the header that are skipped: empty or whitespace-only."""
    return not row or (len(row) == 1 and not row[0].strip())


def _read_header(reader: Iterator[list[str]]) -> list[str] | None:
    """Advance ``reader`` past the header (the first record that is not blank) and return it."""
    for row in reader:
        if not _is_blank_before_header(row):
            return row
    return None


def _scan_rows(path: Path, source: str) -> tuple[list[str] | None, int, int]:
    """Row-by-row structure scan: (raw header, its line, data rows); raises the first problem."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = _read_header(reader)
            header_line = reader.line_num
            width = len(header) if header is not None else 0
            n_rows = 0
            for row in reader:
                if len(row) == width:
                    n_rows += 1
                elif row:
                    raise DataValidationError(
                        f"{source} is not a valid CSV: line {reader.line_num} has {len(row)} "
                        f"fields, expected {width} (from the header on line {header_line})"
                    )
        except csv.Error as exc:
            raise DataValidationError(
                f"{source} is not a valid CSV: line {reader.line_num}: {exc}"
            ) from None
    return header, header_line, n_rows


def scan_csv_structure(path: Path, source: str) -> CsvLayout:
    """Stream the (already byte-checked) file through csv.reader without keeping rows.

    The header is the first line that is not empty or whitespace-only. After it, only empty
    lines are skipped (as pandas' ``skip_blank_lines`` does); every other line is a record and
    must have as many fields as the header, so a whitespace-only line in a file with several
    columns is reported as a ragged line. Raises DataValidationError for ragged rows, malformed
    quoting, and empty or duplicate header names.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            raw_header = _read_header(reader)
            header_line = reader.line_num
            # Count the records by number of fields without Python code per row.
            widths = collections.Counter(map(len, reader))
            problem = raw_header is not None and any(n not in (0, len(raw_header)) for n in widths)
        except csv.Error:
            problem = True
    if problem:  # scan again row by row to report the first problem, in file order
        _scan_rows(path, source)
        raise RuntimeError(f"internal error: the structure scans of {source} disagree")
    if raw_header is None:
        raise DataValidationError(f"{source} is empty (no header row, 0 data rows)")
    header = [name.strip() for name in raw_header]
    n_rows = widths[len(header)]
    empty = [str(i + 1) for i, name in enumerate(header) if not name]
    if empty:
        raise DataValidationError(
            f"{source}: header has an empty column name at position(s) {', '.join(empty)} "
            f"({n_rows} data rows)"
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
            f"{', '.join(repr(n) for n in duplicates)} ({n_rows} data rows)"
        )
    return CsvLayout(header, header_line, n_rows, _offset_after_lines(path, header_line))


def _offset_after_lines(path: Path, n_lines: int) -> int:
    """Byte offset just past the first ``n_lines`` physical lines (as csv.reader counts them)."""
    with open(path, "rb") as raw:
        bom = len(codecs.BOM_UTF8) if raw.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8 else 0
    with open(path, encoding="utf-8-sig", newline="") as handle:
        prefix = "".join(itertools.islice(handle, n_lines))
    return bom + len(prefix.encode("utf-8"))


def locate_data_row(path: Path, row_index: int) -> tuple[list[str], int]:
    """Re-scan the file for data row ``row_index`` (0-based): (its raw cells, its line number).

    Only used to report an error, so the rows before it are read again rather than kept.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        _read_header(reader)
        index = -1
        for row in reader:
            if row:
                index += 1
                if index == row_index:
                    return row, reader.line_num
    raise RuntimeError(f"internal error: {path} has no data row {row_index + 1}")


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


def parse_cells(values: np.ndarray) -> np.ndarray:
    """Cells as read by pandas (str, or NaN for pandas' NA strings) -> float64, per parse_number.

    Non-finite results are left as they are (callers treat every non-finite value as invalid).
    """
    if not any(isinstance(v, str) and "_" in v for v in values):
        try:
            return values.astype(np.float64)  # float() on each str: parse_number's rules
        except (TypeError, ValueError):
            pass
    return np.fromiter(
        (parse_number(v) if isinstance(v, str) else math.nan for v in values),
        dtype=np.float64,
        count=len(values),
    )


class DataSection(io.RawIOBase):
    """The bytes of a CSV file after its header, with every "\\r" turned into "\\n", for pandas.

    pandas' C tokenizer drops the first field of a line that starts with a comma and follows a
    blank line ended by a bare "\\r" (old Mac line ends), which would shift that row's cells into
    the wrong columns. With "\\n" only, "\\r\\n" becomes a line end plus an empty line, which
    pandas skips like any empty line. Inside quoted cells the change only swaps one whitespace
    character for another, which does not change what number a cell holds.
    """

    def __init__(self, path: Path, offset: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(len(buffer)).replace(b"\r", b"\n")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_data_section(path: Path, layout: CsvLayout) -> io.BufferedReader:
    """A binary file object over the data section, for pd.read_csv."""
    return io.BufferedReader(DataSection(path, layout.data_offset), BLOCK_SIZE)


def read_columns(path: Path, layout: CsvLayout, columns: list[str], source: str) -> np.ndarray:
    """Read ``columns`` of the data rows as a C-ordered float64 matrix (invalid cells NaN/inf).

    pandas reads only the data section (from just past the header) and only these columns, with
    a float64 dtype: every cell it accepts is one parse_number accepts, with the same value (or
    a non-finite one, invalid either way), and its NA strings such as "" or "NA" become NaN. If
    some cell is anything else (text, padding, digit-group underscores...), the columns are
    read again in chunks as text and converted with parse_number's rules, so memory stays
    bounded either way and the result is exactly that of parse_number on every cell.
    """
    positions = sorted(layout.header.index(name) for name in columns)
    options: dict[str, Any] = {
        "header": None,
        "names": layout.header,
        "usecols": positions,
        "encoding": "utf-8",
        "engine": "c",
        "skip_blank_lines": True,
    }
    if PANDAS_VERSION < (3, 1):
        # The older default converters can be one ulp off; "round_trip" parses like float().
        # pandas 3.1 deprecates the option: its only converter is exact.
        options["float_precision"] = "round_trip"
    try:
        try:
            with _open_data_section(path, layout) as handle:
                dtypes = {layout.header[i]: np.float64 for i in positions}
                frame = pd.read_csv(handle, dtype=dtypes, **options)
            n_read = len(frame)
            matrix = np.column_stack([frame[name].to_numpy(np.float64) for name in columns])
            del frame
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            raise  # these are ValueErrors too, but about the structure: reported below
        except ValueError:  # some cell is not a plain number
            matrix = np.full((layout.n_rows, len(columns)), np.nan)
            n_read = 0
            with _open_data_section(path, layout) as handle:
                chunks = pd.read_csv(handle, dtype=object, chunksize=READ_CHUNK_ROWS, **options)
                for chunk in chunks:
                    start, n_read = n_read, n_read + len(chunk)
                    if n_read > layout.n_rows:
                        break
                    for j, name in enumerate(columns):
                        matrix[start:n_read, j] = parse_cells(chunk[name].to_numpy(object))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataValidationError(f"{source} is not a valid CSV: {detail}") from None
    if n_read != layout.n_rows:
        raise DataValidationError(
            f"{source}: internal consistency check failed: the CSV scan found "
            f"{layout.n_rows} data rows but pandas read {n_read}; the file probably uses "
            "quoting that the two parsers read differently"
        )
    return matrix


def load_columns(
    path: Path,
    layout: CsvLayout,
    columns: list[str],
    source: str,
    max_invalid_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``columns`` as a float matrix; return (matrix, mask of rows to keep).

    A cell is invalid if it is empty, non-numeric, NaN or infinite. A column whose share of
    invalid cells exceeds ``max_invalid_fraction`` raises DataValidationError; otherwise rows
    with any invalid cell are dropped (mask False).
    """
    matrix = read_columns(path, layout, columns, source)
    n_rows = layout.n_rows
    invalid = ~np.isfinite(matrix)
    for j, name in enumerate(columns):
        bad = np.flatnonzero(invalid[:, j])
        if bad.size == 0:
            continue
        fraction = bad.size / n_rows
        if fraction > max_invalid_fraction:
            first = int(bad[0])
            row, line = locate_data_row(path, first)
            value = row[layout.header.index(name)]
            raise DataValidationError(
                f"{source}: column {name!r} has {bad.size} invalid value(s) (empty, "
                f"non-numeric, NaN or inf) in {n_rows} data rows ({fraction:.2%}, tolerance "
                f"{max_invalid_fraction:.2%}); first at row {first + 1} (line "
                f"{line}): {value!r}"
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


def format_rows(block: np.ndarray) -> bytes:
    """The rows of a float matrix as CSV lines: values written with repr(), ``\\n`` line ends."""
    # tolist() gives Python floats; this avoids a Python call per value besides repr itself.
    return "".join([",".join(map(repr, row)) + "\n" for row in block.tolist()]).encode("ascii")


def write_split_csv(
    path: Path,
    columns: list[str],
    matrix: np.ndarray,
    rows: np.ndarray | None = None,
) -> None:
    """Write ``matrix[rows]`` (all rows if None) as CSV: a header, then one line per row.

    Rows are formatted in chunks of WRITE_CHUNK_ROWS, so no string for the whole file is built.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if rows is None:
        rows = np.arange(matrix.shape[0])
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(columns)
    blocks = (matrix[rows[i : i + WRITE_CHUNK_ROWS]] for i in range(0, len(rows), WRITE_CHUNK_ROWS))
    with open(path, "wb") as handle:
        handle.write(header.getvalue().encode("utf-8"))
        for block in blocks:
            handle.write(format_rows(block))


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


def output_dirs(args: argparse.Namespace) -> dict[str, Path]:
    base = Path(args.output_dir)
    return {
        "train": Path(args.train_dir or base / "train"),
        "validation": Path(args.validation_dir or base / "validation"),
        "test": Path(args.test_dir or base / "test"),
        "baseline": Path(args.baseline_dir or base / BASELINE_DIR_NAME),
    }


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
    columns: list[str], train: np.ndarray, facet: str, facet_threshold: str, label_threshold: str
) -> dict[str, Any]:
    """Clarify's analysis config for pre-training bias (the shape the SDK's DataConfig and
    BiasConfig write): the label is the target column, the first of ``columns``."""
    if facet not in columns[1:]:
        raise DataValidationError(
            f"bias facet column {facet!r} is not a feature column ({', '.join(columns[1:])}); "
            "set the BiasFacetColumn parameter"
        )
    median = float(np.median(train[:, 0])) if len(train) else 0.0
    return {
        "dataset_type": "text/csv",
        "headers": columns,
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
