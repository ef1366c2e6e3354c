"""SageMaker built-in algorithms that run locally, each a script run in its image's runtime.

A training request is a built-in algorithm's when its image is one the algorithm ships in
and its hyperparameters name no script (``sagemaker_program``): the XGBoost image trains
with the algorithm (``xgboost_algorithm.py``) unless the XGBoost framework estimator gave
it an entry point, as ``sagemaker_xgboost_container.training.train`` decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.containers.profiles import profile_for_image

ALGORITHMS_DIR = Path(__file__).resolve().parent
# The script of each framework whose image doubles as a built-in algorithm.
SCRIPTS = {"xgboost": ALGORITHMS_DIR / "xgboost_algorithm.py"}


def builtin_algorithm(image: str, hyperparameters: Mapping[str, Any]) -> Path | None:
    """The algorithm script a training job on ``image`` runs, or None for script mode."""
    if "sagemaker_program" in hyperparameters:
        return None
    profile = profile_for_image(image)
    return SCRIPTS.get(profile.framework) if profile else None
