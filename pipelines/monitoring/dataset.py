"""The current dataset of a monitoring execution, built chunk by chunk from captured requests.

Each chunk's CSV bodies are parsed by pandas' C parser into numbers, and only the numbers are
kept: one float64 per value, column by column (a captured record is hundreds of bytes of JSON;
its 13 features are 104 bytes here). The statistics are then ``training/analyzer.py``'s, the
same functions the pipeline's CheckDataQuality step runs: its buckets, sketch and types, so a
drift distance here and one in the pipeline are the same number for the same data.

Types follow the analyzer's rules ("1" is Integral, "1.0" Fractional, anything not a number
String): pandas' int64 columns are Integral and float64 Fractional; a chunk column with missing
values or text is typed by the analyzer itself, from its text.

A captured request that is not rows of the model's features is left out and counted
(``unparsable``): a header row (the feature names as values would make every feature a
String for the whole window) or rows with another number of columns.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.errors import MlopsError


def _merge_type(analyzer: ModuleType, a: str, b: str) -> str:
    if a == analyzer.UNKNOWN:
        return b
    if b == analyzer.UNKNOWN or a == b:
        return a
    if analyzer.STRING in (a, b):
        return analyzer.STRING
    return analyzer.FRACTIONAL  # Integral and Fractional


@dataclass
class _Column:
    inferred: str
    numbers: list[np.ndarray] = field(default_factory=list)
    integral: list[bool] = field(default_factory=list)  # per numbers chunk: parsed as ints
    text: list[pd.Series] = field(default_factory=list)
    missing: int = 0


class CurrentDataset:
    """Accumulates captured CSV rows under the model's feature names."""

    def __init__(self, analyzer: ModuleType, features: list[str]) -> None:
        self.analyzer = analyzer
        self.features = features
        self.rows = 0
        self.unparsable = 0  # captured requests left out: not rows of the features
        self.columns = [_Column(analyzer.UNKNOWN) for _ in features]
        self._names = set(features)

    def _parsable(self, body: str) -> bool:
        """Rows of the features: the right number of cells each, and no header row."""
        lines = [line for line in body.splitlines() if line.strip()]
        if not lines:
            return True
        if '"' not in body:  # unquoted: a comma separates every cell
            expected = len(self.features) - 1
            if any(line.count(",") != expected for line in lines):
                return False
        return {cell.strip().strip('"') for cell in lines[0].split(",")} != self._names

    def add_csv(self, bodies: list[str]) -> int:
        """Parse the request bodies of one chunk; returns the rows added."""
        kept = [body for body in bodies if self._parsable(body)]
        self.unparsable += len(bodies) - len(kept)
        bodies = kept
        if not bodies:
            return 0
        text = "\n".join(body.rstrip("\n") for body in bodies if body.strip())
        if not text:
            return 0
        try:
            frame = pd.read_csv(
                io.StringIO(text), header=None, skip_blank_lines=True, low_memory=False
            )
        except (ValueError, pd.errors.ParserError) as error:
            raise MlopsError(f"A captured request is not CSV the model accepts: {error}") from error
        if frame.shape[1] != len(self.features):
            raise MlopsError(
                f"Captured requests have {frame.shape[1]} columns; the model's features are "
                f"{len(self.features)} ({', '.join(self.features)})."
            )
        for index, column in enumerate(self.columns):
            self._add_column(column, frame.iloc[:, index], text, index)
        self.rows += len(frame)
        return len(frame)

    def _add_column(self, column: _Column, values: pd.Series, text: str, index: int) -> None:
        analyzer = self.analyzer
        if values.dtype.kind in "iu" or (values.dtype.kind == "f" and not values.isna().any()):
            kind = analyzer.INTEGRAL if values.dtype.kind in "iu" else analyzer.FRACTIONAL
            column.inferred = _merge_type(analyzer, column.inferred, kind)
            column.numbers.append(values.to_numpy(dtype=np.float64))
            column.integral.append(kind == analyzer.INTEGRAL)
            return
        # Missing values or text: the analyzer types this chunk's column from its text.
        raw = pd.read_csv(
            io.StringIO(text), header=None, dtype=str, keep_default_na=False, usecols=[index]
        ).iloc[:, 0]
        kind = analyzer.infer_type(raw)
        column.inferred = _merge_type(analyzer, column.inferred, kind)
        present = raw[(raw.str.strip() != "") & (raw.str.strip().str.lower() != "nan")]
        column.missing += len(raw) - len(present)
        numbers = pd.to_numeric(present, errors="coerce")
        if kind == analyzer.STRING or numbers.isna().any():
            column.text.append(present)
        else:
            column.numbers.append(numbers.to_numpy(dtype=np.float64))
            column.integral.append(kind == analyzer.INTEGRAL)

    def statistics(self) -> dict[str, Any]:
        """``statistics.json`` of everything added, in the analyzer's format."""
        try:
            return self._statistics()
        except ValueError as error:  # e.g. a feature whose sum overflows float64
            raise MlopsError(f"The captured requests cannot be analysed: {error}.") from error

    def _statistics(self) -> dict[str, Any]:
        analyzer = self.analyzer
        features = []
        for name, column in zip(self.features, self.columns, strict=True):
            if column.inferred in (analyzer.INTEGRAL, analyzer.FRACTIONAL) and not column.text:
                numbers = np.concatenate(column.numbers) if column.numbers else np.empty(0)
                if len(numbers):
                    features.append(
                        analyzer.numerical_feature_statistics(
                            name, column.inferred, numbers, column.missing
                        )
                    )
                    continue
            # Strings (rare for this model): the analyzer's own path over the text.
            parts = [p.astype(str) for p in column.text]
            # Numbers parsed earlier, as the text they came from ("1" stays "1").
            parts += [
                pd.Series(n.astype(np.int64) if whole else n).astype(str)
                for n, whole in zip(column.numbers, column.integral, strict=True)
            ]
            values = pd.concat(parts, ignore_index=True) if parts else pd.Series([], dtype=str)
            values = pd.concat([values, pd.Series([""] * column.missing)], ignore_index=True)
            features.append(analyzer.feature_statistics(name, values))
        return {"version": 0.0, "dataset": {"item_count": self.rows}, "features": features}
