"""The definition's public contract, importable without the SageMaker SDK: its step
names (executors, monitoring, promotion and tests read them), the image version, where
the training code lives, and the evaluation report's quality metric."""

from __future__ import annotations

from pipelines.config.settings import PROJECT_ROOT

FRAMEWORK_VERSION = "1.2-1"  # the scikit-learn image of every job and of serving
PY_VERSION = "py3"
TRAINING_DIR = PROJECT_ROOT / "training"

PREPROCESS_STEP = "PreprocessData"
TRAIN_STEP = "TrainModel"
EVALUATE_STEP = "EvaluateModel"
QUALITY_GATE_STEP = "CheckModelQuality"
REGISTER_STEP = "Register"  # the SDK's ModelStep renders it as "Register-RegisterModel"
FAIL_STEP = "QualityGateFailed"
DATA_QUALITY_STEP = "CheckDataQuality"
DATA_BIAS_STEP = "CheckDataBias"
MODEL_QUALITY_STEP = "CheckModelQualityBaseline"

EVALUATION_REPORT = "EvaluationReport"
QUALITY_METRIC_PATH = "regression_metrics.r2.value"
