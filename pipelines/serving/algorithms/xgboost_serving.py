"""The SageMaker XGBoost container's algorithm mode, as model server handlers.

A model package (or a CreateModel model) whose image is ``sagemaker-xgboost`` and that names
no inference code of its own is served by the container's built-in algorithm, not by
``inference.py`` handlers. This module answers as that algorithm does, written from its source
(aws/sagemaker-xgboost-container, branches ``1.7-1`` and ``release-3.0.5``, which agree on all
of this): ``algorithm_mode/serve.py`` (``invocations``, ``_parse_accept``),
``algorithm_mode/serve_utils.py`` (``parse_content_data``, ``get_loaded_booster``,
``predict``, ``encode_predictions_as_json``), ``encoder.py`` (``csv_to_dmatrix``) and
``data_utils.py`` (``get_content_type``):

- every file in the model folder (not dotfiles) is a booster: unpickled, or else loaded with
  ``Booster.load_model``; with several (``SAGEMAKER_INFERENCE_ENSEMBLE``, on by default), the
  prediction is their mean (their vote for ``multi:softmax`` and ``binary:hinge``);
- an empty body answers 204; ``text/csv`` (features only, one row per line, the delimiter
  sniffed from the first line, empty fields missing) and ``text/libsvm``/``text/x-libsvm``
  are read; no content type means libsvm; any other type answers 415 with the container's
  message. (``application/x-recordio-protobuf`` needs the container's mlio and answers 415
  here, saying so.)
- a pickled booster checks the feature count: CSV rows must have the model's features (or
  one fewer), libsvm at most one more; otherwise 400 "Unable to evaluate payload provided";
- Accept ``text/csv`` (the default, or ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``) answers one
  prediction per line (sagemaker-containers' ``array_to_csv``), ``application/json``
  answers ``{"predictions": [{"score": p}, ...]}``; other supported accepts fail as the
  container's encoders do (500) and unknown ones answer 406. In a batch transform
  (``SAGEMAKER_BATCH``) every answer is one prediction per line, whatever the Accept.

Selectable inference output (``SAGEMAKER_INFERENCE_OUTPUT``) is not served locally: the model
fails to load, saying so.

Runs in the model's own runtime (the XGBoost image's profile: Python 3.9 with xgboost 1.7.4,
or Python 3.10 with xgboost 3.0.5): standard library, numpy, scipy and xgboost only.
"""

from __future__ import annotations

import csv
import inspect
import json
import os
import pickle
from pathlib import Path
from typing import Any

from pipelines.containers.algorithms.xgboost_algorithm import (
    CSV,
    LIBSVM,
    content_format,
)
from pipelines.containers.algorithms.xgboost_algorithm import (
    RECORDIO_PROTOBUF as RECORDIO,
)
from pipelines.serving.invocations import Response, _array_to_csv, content_type_for

# data_utils' names for the content types it reads.
TEXT_CSV = "text/csv"
SUPPORTED_ACCEPTS = [
    "application/json",
    "application/jsonlines",
    "application/x-recordio-protobuf",
    TEXT_CSV,
]
# What the model server assumes when a request has no Content-Type or no Accept: Flask's
# None, which get_content_type reads as libsvm, and serve._parse_accept's default.
DEFAULT_CONTENT_TYPE = "text/libsvm"
DEFAULT_INVOCATIONS_ACCEPT = TEXT_CSV
_VOTED = ("multi:softmax", "binary:hinge")


class XGBoostModel:
    def __init__(self, boosters: list[Any], pickled: list[bool]) -> None:
        self.boosters = boosters
        self.pickled = pickled
        config = json.loads(boosters[0].save_config())
        self.objective = config["learner"]["objective"]["name"]


def model_fn(model_dir: str) -> XGBoostModel:
    """``serve_utils.get_loaded_booster``: each model file is a pickle, or XGBoost's own
    format; one booster unless the ensemble is on (the default) and there are several."""
    import xgboost as xgb

    if "SAGEMAKER_INFERENCE_OUTPUT" in os.environ:
        raise RuntimeError(
            "SAGEMAKER_INFERENCE_OUTPUT (selectable inference output) is not served locally; "
            "remove it from the model's environment."
        )
    paths = sorted(
        str(path)
        for path in Path(model_dir).iterdir()
        if path.is_file() and not path.name.startswith(".")
    )
    if not paths:
        raise RuntimeError(f"The model folder {model_dir} holds no model file.")
    if os.environ.get("SAGEMAKER_INFERENCE_ENSEMBLE", "true") != "true":
        paths = paths[:1]
    boosters, pickled = [], []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                booster = pickle.load(handle)  # noqa: S301 - the registered model, as the container loads it
            pickled.append(True)
        except Exception as pickle_error:
            try:
                booster = xgb.Booster()
                booster.load_model(path)
                pickled.append(False)
            except Exception as xgb_error:
                raise RuntimeError(
                    f"Model {path} cannot be loaded:\nPickle load error={pickle_error}"
                    f"\nXGB load model error={xgb_error}"
                ) from xgb_error
        booster.set_param("nthread", 1)
        boosters.append(booster)
    return XGBoostModel(boosters, pickled)


def transform_fn(model: XGBoostModel, content: Any, content_type: str, accept: str) -> Any:
    """``serve.invocations``: the container's statuses, bodies and content types."""
    payload = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    if not payload:
        return Response(204, b"", "text/html; charset=utf-8")
    try:
        # data_utils.get_content_type, as training reads a channel's (its UserError: 415).
        kind = content_format(content_type)
        matrix = parse_payload(payload, kind, content_type)
    except Exception as error:
        return _text(415, str(error))
    try:
        predictions = predict(model, matrix, kind)
    except Exception as error:
        return _text(400, f"Unable to evaluate payload provided: {error}")
    try:
        accept = parse_accept(accept)
    except ValueError as error:
        return _text(406, str(error))
    values = predictions.tolist()
    if os.environ.get("SAGEMAKER_BATCH"):
        body = "\n".join(map(str, values)) + "\n"
    elif accept == "application/json":
        body = json.dumps({"predictions": [{"score": value} for value in values]})
    elif accept == TEXT_CSV:
        body = _array_to_csv(values)
    else:
        # sagemaker-containers' encoders know no jsonlines or recordio: the view raises
        # UnsupportedFormatError, which Flask answers with its 500.
        raise RuntimeError(f"Content type {accept} is not supported by this framework.")
    return Response(200, body.encode("utf-8"), content_type_for(accept))


def _text(status: int, message: str) -> Response:
    # flask.Response(response=str(e), status=...): Flask's default mimetype.
    return Response(status, message.encode("utf-8"), "text/html; charset=utf-8")


def parse_payload(payload: bytes, kind: str, content_type: str | None) -> Any:
    """``serve_utils.parse_content_data``."""
    import xgboost as xgb

    text = payload.strip().decode("utf-8") if kind in (CSV, LIBSVM) else ""
    if kind == CSV:
        try:
            return csv_to_dmatrix(text)
        except Exception as error:
            raise RuntimeError(
                "Loading csv data failed with Exception, please ensure data is in csv "
                f"format:\n {type(error)}\n {error}"
            ) from error
    if kind == LIBSVM:
        try:
            return xgb.DMatrix(_libsvm_matrix(text))
        except Exception as error:
            raise RuntimeError(
                "Loading libsvm data failed with Exception, please ensure data is in libsvm "
                f"format:\n {type(error)}\n {error}"
            ) from error
    if kind == RECORDIO:
        raise RuntimeError(
            "Content-type application/x-recordio-protobuf is not supported by the local "
            "model server (it needs the container's mlio); send text/csv or text/libsvm."
        )
    raise RuntimeError(f"Content-type {content_type} is not supported.")


def csv_to_dmatrix(text: str) -> Any:
    """``encoder.csv_to_dmatrix``: the delimiter sniffed from the first line (a letter or
    digit means a comma), empty fields are missing values."""
    import numpy as np
    import xgboost as xgb

    sniffed = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    delimiter = "," if sniffed.isalnum() else sniffed
    rows = [["nan" if x == "" else x for x in line.split(delimiter)] for line in text.split("\n")]
    return xgb.DMatrix(np.array(rows).astype(float))


def _libsvm_matrix(text: str) -> Any:
    """``serve_utils._get_sparse_matrix_from_libsvm``: ``index:value`` pairs, the label
    (a field without a colon) ignored."""
    import numpy as np
    from scipy.sparse import csr_matrix

    rows, cols, data = [], [], []
    for row, line in enumerate(text.split("\n")):
        for item in line.split(" "):
            if ":" in item:
                index, value = item.split(":")[:2]
                rows.append(row)
                cols.append(index)
                data.append(value)
    return csr_matrix((np.array(data).astype(float), (np.array(rows), np.array(cols).astype(int))))


def predict(model: XGBoostModel, matrix: Any, kind: str) -> Any:
    """``serve_utils.predict``: a pickled booster's feature count is checked first."""
    import numpy as np

    if model.pickled[0]:
        expected = model.boosters[0].num_features()
        given = len(matrix.feature_names) if matrix.feature_names is not None else matrix.num_col()
        if kind == LIBSVM and given > expected + 1:
            raise ValueError(
                f"Feature size of libsvm inference data {given} is larger than feature size "
                f"of trained model {expected}."
            )
        if kind == CSV and given not in (expected, expected + 1):
            raise ValueError(
                f"Feature size of {kind} inference data {given} is not consistent "
                f"with feature size of trained model {expected}."
            )
    outputs = [_predict_one(booster, matrix) for booster in model.boosters]
    if len(outputs) == 1:
        return outputs[0]
    if model.objective in _VOTED:
        stacked = np.asarray(outputs)
        return np.apply_along_axis(
            lambda votes: np.bincount(votes.astype(int)).argmax(), 0, stacked
        )
    return np.mean(outputs, axis=0)


def _predict_one(booster: Any, matrix: Any) -> Any:
    """xgboost < 2 takes ``ntree_limit``; 2 and later ``iteration_range`` (release-3.0.5's
    ``_predict_with_compat``)."""
    best = int(getattr(booster, "best_ntree_limit", 0) or 0)
    if "ntree_limit" in inspect.signature(booster.predict).parameters:
        return booster.predict(matrix, ntree_limit=best, validate_features=False)
    if best > 0:
        return booster.predict(matrix, iteration_range=(0, best), validate_features=False)
    return booster.predict(matrix, validate_features=False)


def parse_accept(accept: str | None) -> str:
    """``serve._parse_accept``."""
    media = (accept or "").split(";", 1)[0].strip()
    if not media or media == "*/*":
        return os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", TEXT_CSV)
    if media.lower() not in SUPPORTED_ACCEPTS:
        raise ValueError(
            f"Accept type {accept} is not supported. Please use supported accept types: "
            f"{SUPPORTED_ACCEPTS}."
        )
    return media.lower()
