"""Evaluate the XGBoost model on the test split, as AWS's template evaluation does.

Runs in the SageMaker XGBoost image: unpacks ``model.tar.gz``, loads ``xgboost-model`` (the
built-in algorithm's model file), predicts the test rows (label first, no header) and writes
``/opt/ml/processing/evaluation/evaluation.json``:

    {"regression_metrics": {"mse": {"value": ..., "standard_deviation": ...}, "rmse": ...,
     "mae": ..., "r2": ...}, "metadata": {"features": [...], "target": "rings"}}

The condition step reads ``regression_metrics.mse.value``; the registry reads the metadata.
"""

from __future__ import annotations

import json
import logging
import pathlib
import tarfile

import numpy as np
import pandas as pd
import xgboost

logger = logging.getLogger(__name__)
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

BASE_DIR = pathlib.Path("/opt/ml/processing")


def main() -> None:
    with tarfile.open(BASE_DIR / "model" / "model.tar.gz") as tar:
        tar.extract("xgboost-model", path=".")  # the one member it reads
    # The algorithm saves its Booster with save_model since the 1.3-1 image (AWS's template
    # unpickles it: its 1.0-1 image pickled); load it as the container's serving does.
    model = xgboost.Booster()
    model.load_model("xgboost-model")

    test = pd.read_csv(BASE_DIR / "test" / "test.csv", header=None)
    header = pd.read_csv(BASE_DIR / "baseline" / "baseline.csv", nrows=0).columns.tolist()
    y_test = test.iloc[:, 0].to_numpy()
    predictions = model.predict(xgboost.DMatrix(test.iloc[:, 1:].values))

    errors = y_test - predictions
    mse = float(np.mean(errors**2))
    report = {
        "regression_metrics": {
            "mse": {"value": mse, "standard_deviation": float(np.std(errors))},
            "rmse": {"value": float(np.sqrt(mse))},
            "mae": {"value": float(np.mean(np.abs(errors)))},
            "r2": {"value": float(1 - np.sum(errors**2) / np.sum((y_test - y_test.mean()) ** 2))},
        },
        "metadata": {"features": header[1:], "target": header[0]},
    }
    output = BASE_DIR / "evaluation"
    output.mkdir(parents=True, exist_ok=True)
    (output / "evaluation.json").write_text(json.dumps(report, indent=2))
    logger.info("Test MSE %.4f, R2 %.4f", mse, report["regression_metrics"]["r2"]["value"])


if __name__ == "__main__":
    main()
