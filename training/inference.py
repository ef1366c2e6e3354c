"""SageMaker scikit-learn serving handlers: model_fn, input_fn, predict_fn, output_fn.

Request formats (``Content-Type``):

* ``text/csv``: one row of feature values per line, no header (SageMaker convention); a first
  line equal to the feature names (any order) is accepted as a header and used to reorder.
* ``application/json``: ``{"instances": rows}`` or ``rows`` directly, where rows is a list of
  lists, a single list (one row), a list of objects keyed by feature name, or one such object.

Responses (``Accept``): ``application/json`` (also the default for a missing accept or ``*/*``)
gives ``{"predictions": [...]}``; ``text/csv`` gives one prediction per line. ``output_fn``
returns ``(body, content_type)``, which the SageMaker container turns into the response.

Every problem with a request raises :class:`InferenceError` with the message a client should
see and an HTTP ``status_code`` (400 bad input, 415 unsupported content type, 406 unsupported
accept).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

import joblib
import numpy as np

MODEL_FILE_NAME = "model.joblib"
METADATA_FILE_NAME = "model_metadata.json"
CSV = "text/csv"
JSON = "application/json"
SUPPORTED_CONTENT_TYPES = (CSV, JSON)
MAX_LISTED_FEATURES = 20


class InferenceError(ValueError):
    """A request the model cannot serve; ``status_code`` is the HTTP status to answer with."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


class ModelBundle:
    """The fitted estimator plus what a request must match (feature names and count)."""

    def __init__(
        self,
        estimator: Any,
        features: list[str] | None = None,
        target: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.estimator = estimator
        self.features = list(features) if features else None
        self.target = target
        self.metadata = metadata or {}
        self._forest_leaves: ForestLeaves | None = None
        self._forest_checked = False
        if self.features is not None:
            self.n_features = len(self.features)
        else:
            self.n_features = int(getattr(estimator, "n_features_in_", 0)) or None

    def forest_leaves(self) -> ForestLeaves | None:
        """The forest's leaf values, gathered on first use (see :class:`ForestLeaves`); None
        when the estimator is not a forest that path serves. Checked once, not per request."""
        if not self._forest_checked:
            if is_single_output_forest(self.estimator):
                self._forest_leaves = ForestLeaves(self.estimator)
            self._forest_checked = True
        return self._forest_leaves

    def describe_features(self) -> str:
        """``13 features (crim, zn, ...)`` for error messages."""
        if self.features is None:
            return f"{self.n_features} features"
        names = self.features[:MAX_LISTED_FEATURES]
        more = ", ..." if len(self.features) > MAX_LISTED_FEATURES else ""
        return f"{self.n_features} features ({', '.join(names)}{more})"


def model_fn(model_dir: str) -> ModelBundle:
    """Load ``model.joblib`` and, when present, ``model_metadata.json`` from model_dir."""
    estimator = joblib.load(os.path.join(model_dir, MODEL_FILE_NAME))
    metadata: dict[str, Any] = {}
    metadata_path = os.path.join(model_dir, METADATA_FILE_NAME)
    if os.path.isfile(metadata_path):
        with open(metadata_path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    return ModelBundle(estimator, metadata.get("features"), metadata.get("target"), metadata)


# --------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------


def media_type(value: str | None) -> str:
    """``"text/csv; charset=utf-8"`` -> ``"text/csv"``."""
    return (value or "").split(";", 1)[0].strip().lower()


def decode_body(request_body: Any) -> str:
    if isinstance(request_body, (bytes, bytearray)):
        try:
            return bytes(request_body).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InferenceError("request body is not UTF-8 text") from None
    if isinstance(request_body, str):
        return request_body
    if hasattr(request_body, "read"):
        return decode_body(request_body.read())
    raise InferenceError(f"unsupported request body type {type(request_body).__name__}")


def parse_csv_body(text: str) -> list[list[str]]:
    try:
        rows = [
            row
            for row in csv.reader(io.StringIO(text, newline=""))
            if row and not (len(row) == 1 and not row[0].strip())
        ]
    except csv.Error as exc:
        raise InferenceError(f"request body is not valid CSV: {exc}") from None
    return rows


def parse_json_body(text: str) -> list[Any]:
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise InferenceError(f"request body is not valid JSON: {exc}") from None
    if isinstance(payload, dict):
        payload = payload.get("instances", [payload])
    if not isinstance(payload, list):
        raise InferenceError(
            'JSON body must be a list of rows, an object, or {"instances": [...]}, '
            f"got {type(payload).__name__}"
        )
    if not payload:
        raise InferenceError("request contains no instances")
    if all(isinstance(row, (list, dict)) for row in payload):
        return payload
    if not any(isinstance(row, (list, dict)) for row in payload):
        return [payload]  # a single row given as a flat list of values
    raise InferenceError("JSON rows must all be lists or all be objects, not a mix")


def input_fn(request_body: Any, request_content_type: str | None) -> list[Any]:
    """Parse a request into a list of rows (lists of raw values, or dicts keyed by feature)."""
    content_type = media_type(request_content_type)
    if content_type not in SUPPORTED_CONTENT_TYPES:
        raise InferenceError(
            f"unsupported content type {request_content_type!r}; use one of "
            f"{', '.join(SUPPORTED_CONTENT_TYPES)}",
            status_code=415,
        )
    text = decode_body(request_body)
    if not text.strip():
        raise InferenceError("request body is empty")
    rows = parse_csv_body(text) if content_type == CSV else parse_json_body(text)
    if not rows:
        raise InferenceError("request contains no rows")
    return rows


# --------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------


def to_number(value: Any, feature: str, row_number: int) -> float:
    """A finite float from a JSON number or a numeric string; InferenceError otherwise."""
    number = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value.strip() and "_" not in value:
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
    if not math.isfinite(number):
        raise InferenceError(
            f"non-numeric value {value!r} for feature {feature} in row {row_number}; "
            "values must be finite numbers"
        )
    return number


def is_header(row: list[Any], bundle: ModelBundle) -> bool:
    """True when a row holds exactly the feature names (in any order): a header row."""
    if bundle.features is None or len(row) != len(bundle.features):
        return False
    if not all(isinstance(cell, str) for cell in row):
        return False
    return sorted(cell.strip() for cell in row) == sorted(bundle.features)


def build_matrix(rows: list[Any], bundle: ModelBundle) -> np.ndarray:
    """Validate rows against the model's features and return a float matrix in model order."""
    n_features = bundle.n_features
    names = bundle.features
    if rows and isinstance(rows[0], list) and is_header(rows[0], bundle):
        # SageMaker's CSV decoder reads every line as data; a header captured with the
        # rows would type every feature as text for Model Monitor. Refused: rows only.
        raise InferenceError(
            "the request starts with a header row ("
            + ", ".join(str(cell).strip() for cell in rows[0][:5])
            + (", ..." if len(rows[0]) > 5 else "")
            + "); send data rows only, in the model's feature order"
        )
    matrix = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, dict):
            if names is None:
                raise InferenceError(
                    "rows keyed by feature name need the model's feature names, which this "
                    "model does not have; send rows as lists of values"
                )
            missing = [name for name in names if name not in row]
            unknown = [str(key) for key in row if key not in names]
            if missing or unknown:
                raise InferenceError(
                    f"row {number}: missing feature(s) {missing}, unknown key(s) {unknown}; "
                    f"expected {bundle.describe_features()}"
                )
            row = [row[name] for name in names]
        if not isinstance(row, list):
            raise InferenceError(f"row {number} is not a list of values")
        if n_features is not None and len(row) != n_features:
            raise InferenceError(
                f"expected {bundle.describe_features()}, got {len(row)} in row {number}"
            )
        labels = names or [f"#{i + 1}" for i in range(len(row))]
        matrix.append([to_number(value, labels[i], number) for i, value in enumerate(row)])
    if n_features is None and len({len(row) for row in matrix}) > 1:
        raise InferenceError("all rows must have the same number of values")
    return np.asarray(matrix, dtype=np.float64)


def predict_fn(input_data: list[Any], model: ModelBundle) -> np.ndarray:
    """Check the rows against the model's features and predict."""
    if not isinstance(model, ModelBundle):  # a bare estimator, e.g. from another model_fn
        model = ModelBundle(model)
    matrix = build_matrix(input_data, model)
    leaves = model.forest_leaves()
    if leaves is not None:
        return leaves.predict(matrix)
    return np.asarray(model.estimator.predict(matrix))


def is_single_output_forest(estimator: Any) -> bool:
    return (
        type(estimator).__name__ in ("RandomForestRegressor", "ExtraTreesRegressor")
        and getattr(estimator, "n_outputs_", None) == 1
        and getattr(estimator, "n_jobs", None) in (None, 1)
        and all(hasattr(tree, "tree_") for tree in getattr(estimator, "estimators_", [None]))
    )


class ForestLeaves:
    """``forest.predict(matrix)`` without its per-call set-up.

    For the few rows of a real-time request, the forest's joblib dispatch and per-tree
    input checks cost ~5 ms for 100 trees, fifteen times the trees' own work. Here the
    rows' leaves are found first, and their values come from one array built once:
    - up to ``WALK_ROWS`` rows, by walking every tree at once in numpy, one level per
      step (a leaf points to itself, so ``depth`` steps land every row on its leaf), with
      sklearn's own test (the float32 feature, widened, ``<=`` the float64 threshold);
    - for more rows, by each tree's ``apply``, whose per-call cost is then amortised.
    The input is already validated (finite, right width). Both find sklearn's leaves, and
    the trees are summed in sklearn's order and dtype (``cumsum`` adds strictly in
    sequence), so the result is bit-identical to ``forest.predict``.
    """

    WALK_ROWS = 8

    def __init__(self, forest: Any) -> None:
        self.trees = [estimator.tree_ for estimator in forest.estimators_]
        counts = [tree.node_count for tree in self.trees]
        self.roots = np.cumsum([0, *counts[:-1]]).astype(np.intp)
        self.values = np.concatenate([tree.value[:, 0, 0] for tree in self.trees])
        left, right = [], []
        for tree, root in zip(self.trees, self.roots):
            own = np.arange(tree.node_count)
            left.append(np.where(tree.children_left < 0, own, tree.children_left) + root)
            right.append(np.where(tree.children_right < 0, own, tree.children_right) + root)
        # children[2 * node + (x <= threshold)]: the right child, then the left one.
        self.children = np.stack([np.concatenate(right), np.concatenate(left)], axis=1).ravel()
        self.is_leaf = self.children[0::2] == np.arange(len(self.values))
        self.feature = np.concatenate([np.maximum(tree.feature, 0) for tree in self.trees])
        self.threshold = np.concatenate([tree.threshold for tree in self.trees])
        self.depth = max(tree.max_depth for tree in self.trees)

    def leaves(self, features: np.ndarray) -> np.ndarray:
        """Each row's leaf in each tree, as indices into ``values``: shape (trees, rows)."""
        rows, width = features.shape
        if rows > self.WALK_ROWS:
            found = np.empty((len(self.trees), rows), dtype=np.intp)
            for row, tree, root in zip(found, self.trees, self.roots):
                row[:] = tree.apply(features) + root
            return found
        flat = features.astype(np.float64).ravel()
        node = np.tile(self.roots, rows)
        base = np.repeat(np.arange(rows) * width, len(self.roots))
        for step in range(self.depth):
            below = flat[base + self.feature[node]] <= self.threshold[node]
            node = self.children[2 * node + below]
            if step % 4 == 3 and self.is_leaf[node].all():
                break
        return node.reshape(rows, -1).T

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        features = np.ascontiguousarray(matrix, dtype=np.float32)
        total = np.cumsum(self.values[self.leaves(features)], axis=0)[-1]
        return total / len(self.trees)


# --------------------------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------------------------


def choose_accept(accept: str | None) -> str:
    """Pick the response type from an Accept header; JSON for none, ``*/*`` or ``application/*``."""
    candidates = [media_type(part) for part in (accept or "").split(",")]
    candidates = [c for c in candidates if c] or ["*/*"]
    for candidate in candidates:
        if candidate in SUPPORTED_CONTENT_TYPES:
            return candidate
        if candidate in ("*/*", "application/*"):
            return JSON
        if candidate == "text/*":
            return CSV
    raise InferenceError(
        f"unsupported accept type {accept!r}; use one of {', '.join(SUPPORTED_CONTENT_TYPES)}",
        status_code=406,
    )


def output_fn(prediction: Any, accept: str | None) -> tuple[str, str]:
    """Serialize predictions; returns ``(body, content_type)``."""
    content_type = choose_accept(accept)
    values = np.asarray(prediction, dtype=np.float64).tolist()
    if content_type == JSON:
        return json.dumps({"predictions": values}), JSON
    lines = []
    for value in values:
        cells = value if isinstance(value, list) else [value]
        lines.append(",".join(repr(float(cell)) for cell in cells))
    return "\n".join(lines) + "\n", CSV
