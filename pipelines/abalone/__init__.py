"""The second built-in pipeline: the shape of AWS's SageMaker project template ("abalone"),
in the XGBoost image. ``pipeline.get_pipeline(region, role, default_bucket, ...)`` follows the
template's convention; ``preprocess.py`` and ``evaluate.py`` run inside the container."""
