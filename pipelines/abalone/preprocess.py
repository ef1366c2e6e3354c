"""Preprocess the abalone data: download it, encode and scale, split 70/15/15.

Runs in the SageMaker XGBoost image (1.7-1: Python 3.9, pandas 1.2.4, scikit-learn 0.24.1,
boto3 1.17.52) as AWS's template preprocess does: it downloads its input itself with boto3
(``--input-data s3://...``), so it needs nothing but the job's role. Writes, without headers
and with the label first (the XGBoost algorithm's CSV format):

    /opt/ml/processing/train/train.csv, validation/validation.csv, test/test.csv

and, with a header row (the label first): ``baseline/baseline.csv``, the training rows the
data-quality check baselines and the evaluation reads the feature names from, and
``holdout/holdout.csv``, the test rows promotion's accuracy gate scores.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib

import boto3
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

logger = logging.getLogger(__name__)
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

BASE_DIR = "/opt/ml/processing"
NUMERIC = [
    "length",
    "diameter",
    "height",
    "whole_weight",
    "shucked_weight",
    "viscera_weight",
    "shell_weight",
]
CATEGORICAL = ["sex"]
LABEL = "rings"
SEXES = ["F", "I", "M"]


def download(input_data: str, destination: pathlib.Path) -> pathlib.Path:
    bucket, _, key = input_data[len("s3://") :].partition("/")
    destination.mkdir(parents=True, exist_ok=True)
    path = destination / "abalone-dataset.csv"
    logger.info("Downloading s3://%s/%s", bucket, key)
    boto3.resource("s3").Bucket(bucket).download_file(key, str(path))
    return path


def transform(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Scaled measurements and the one-hot sex, as the template's ColumnTransformer."""
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(categories=[SEXES], handle_unknown="ignore"),
    )
    columns = ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)])
    features = columns.fit_transform(frame.drop(columns=[LABEL]))
    return features, NUMERIC + [f"sex_{sex}" for sex in SEXES]


def write(rows: np.ndarray, path: pathlib.Path, header: list[str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=header).to_csv(path, header=header is not None, index=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-data", type=str, required=True)
    parser.add_argument("--random-state", type=int, default=42)
    args = parser.parse_args()

    path = download(args.input_data, pathlib.Path(BASE_DIR) / "data")
    frame = pd.read_csv(path, header=None, names=CATEGORICAL + NUMERIC + [LABEL])
    if frame[LABEL].isna().any() or not pd.api.types.is_numeric_dtype(frame[LABEL]):
        raise SystemExit(
            f"{args.input_data}: the last column ({LABEL}) must be numeric in every row"
        )
    os.unlink(path)

    features, names = transform(frame)
    rows = np.concatenate([frame[[LABEL]].to_numpy(dtype=float), features], axis=1)
    np.random.default_rng(args.random_state).shuffle(rows)
    train, validation, test = np.split(rows, [int(0.7 * len(rows)), int(0.85 * len(rows))])
    logger.info("Rows: %d train, %d validation, %d test", len(train), len(validation), len(test))

    write(train, pathlib.Path(BASE_DIR) / "train" / "train.csv")
    write(validation, pathlib.Path(BASE_DIR) / "validation" / "validation.csv")
    write(test, pathlib.Path(BASE_DIR) / "test" / "test.csv")
    header = [LABEL, *names]
    write(train, pathlib.Path(BASE_DIR) / "baseline" / "baseline.csv", header=header)
    write(test, pathlib.Path(BASE_DIR) / "holdout" / "holdout.csv", header=header)


if __name__ == "__main__":
    main()
