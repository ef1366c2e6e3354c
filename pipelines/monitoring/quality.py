"""Model quality once labels arrive: ground truth joined to captured inferences by inference id.

Ground truth comes in SageMaker's ground-truth JSON lines (model-monitor-model-quality-merge:
``{"groundTruthData": {"data": "24.0", "encoding": "CSV"}, "eventMetadata": {"eventId":
"<inferenceId>"}, "eventVersion": "0"}``) or as a CSV with an ``inferenceId`` column and the
target column. A request may carry several rows; its labels are then that many CSV values, in
row order. The metrics and the check are ``training/analyzer.py``'s (``regression_statistics``,
``check_model_quality``), as in the pipeline's CheckModelQualityBaseline step.
"""

from __future__ import annotations

import codecs
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pipelines.core.errors import MlopsError
from pipelines.monitoring.capture_reader import predictions_of

ID_COLUMN = "inferenceId"
Json = dict[str, Any]


def check_ground_truth_file(path: Path) -> Path:
    """A ground-truth file that exists and is text, checked before any work starts."""
    if not path.is_file():
        raise MlopsError(f"Ground-truth file {path} does not exist (or is not a file).")
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
        # Incremental: a character the read cut in two is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        text = b"\0" not in head
    except (OSError, UnicodeDecodeError):
        text = False
    if not text:
        raise MlopsError(
            f"Ground-truth file {path} is not UTF-8 text: give SageMaker's ground-truth JSON "
            f"lines or a CSV with the columns {ID_COLUMN} and the target."
        )
    return path


def read_ground_truth(path: Path, target: str) -> dict[str, list[float]]:
    """Labels by inference id."""
    check_ground_truth_file(path)
    labels: dict[str, list[float]] = {}
    try:
        if path.suffix.lower() in (".jsonl", ".json"):
            for line in path.read_text().splitlines():
                if not line.strip():
                    continue
                record = json.loads(line)
                event = record["eventMetadata"]["eventId"]
                data = record["groundTruthData"]["data"]
                labels[str(event)] = [float(v) for v in str(data).replace("\n", ",").split(",")]
        else:
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                columns = reader.fieldnames or []
                if ID_COLUMN not in columns or target not in columns:
                    raise MlopsError(
                        f"{path} needs the columns {ID_COLUMN} and {target} (the model's target); "
                        f"it has {', '.join(columns) or 'none'}."
                    )
                for row in reader:
                    labels.setdefault(row[ID_COLUMN], []).append(float(row[target]))
    except (KeyError, TypeError, ValueError, csv.Error) as error:
        # Not the file's text in the message: it may hold anything.
        raise MlopsError(
            f"Ground-truth file {path} is not ground truth this tool reads "
            f"({type(error).__name__}): give SageMaker's ground-truth JSON lines or a CSV "
            f"with the columns {ID_COLUMN} and {target}."
        ) from error
    if not labels:
        raise MlopsError(f"{path} holds no ground truth.")
    return labels


@dataclass(frozen=True)
class Joined:
    labels: list[float]
    predictions: list[float]
    unmatched_labels: int  # inference ids with labels but no captured inference in the window


def join(labels: dict[str, list[float]], inferences: dict[str, list[float]]) -> Joined:
    y: list[float] = []
    p: list[float] = []
    unmatched = 0
    for inference_id, values in labels.items():
        predicted = inferences.get(inference_id)
        if predicted is None:
            unmatched += 1
            continue
        if len(predicted) != len(values):
            raise MlopsError(
                f"Inference {inference_id} returned {len(predicted)} prediction(s) but its "
                f"ground truth has {len(values)} label(s)."
            )
        y += values
        p += predicted
    return Joined(y, p, unmatched)


def captured_inferences(
    ids: list[str | None], outputs: list[tuple[str, str]]
) -> dict[str, list[float]]:
    return {
        inference_id: predictions_of(data, encoding)
        for inference_id, (data, encoding) in zip(ids, outputs, strict=True)
        if inference_id
    }


@dataclass(frozen=True)
class ModelQuality:
    statistics: Json
    violations: list[Json]
    matched: int
    unmatched_labels: int

    @property
    def metrics(self) -> dict[str, float]:
        return {k: v["value"] for k, v in self.statistics["regression_metrics"].items()}


def evaluate(
    analyzer: ModuleType, joined: Joined, constraints: Json | None, baseline: Json | None
) -> ModelQuality:
    if not joined.labels:
        raise MlopsError(
            "No ground truth matched a captured inference in the window: check the inference "
            "ids (predict --inference-id-column) and --since."
        )
    statistics = analyzer.regression_statistics(joined.labels, joined.predictions)
    violations = (
        analyzer.check_model_quality(statistics, constraints, baseline) if constraints else []
    )
    return ModelQuality(statistics, violations, len(joined.labels), joined.unmatched_labels)
