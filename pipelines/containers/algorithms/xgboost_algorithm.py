"""The SageMaker XGBoost built-in algorithm ("algorithm mode"), as its container runs it.

``python xgboost_algorithm.py`` in the XGBoost runtime profile's Python (1.7-1: Python 3.9,
xgboost 1.7.4; 3.0-5: Python 3.10, xgboost 3.0.5), with the container contract the
executor writes (``pipelines.executor.toolkit``): it reads ``hyperparameters.json``,
``inputdataconfig.json`` and the ``SM_*`` variables, trains, and saves
``$SM_MODEL_DIR/xgboost-model``.

Behaviour followed, from aws/sagemaker-xgboost-container at branches 1.7-1 (f7a93a2) and
release-3.0.5 (fe01f24), which agree except where noted:

- ``src/sagemaker_xgboost_container/training.py`` (``run_algorithm_mode``: what is read);
- ``algorithm_mode/train.py`` (``sagemaker_train``, ``train_job``: checks, watchlist,
  early stopping, ``bst.save_model(model_dir/"xgboost-model")``);
- ``algorithm_mode/hyperparameter_validation.py`` with
  ``sagemaker_algorithm_toolkit/hyperparameter_validation.py`` (names, ranges, aliases,
  dependencies, the order of the checks and their messages);
- ``algorithm_mode/channel_validation.py`` with ``sagemaker_algorithm_toolkit/
  channel_validation.py`` (channels ``train``, ``validation``, ``code``; default content
  type ``text/libsvm``);
- ``data_utils.py`` (content types, file checks, how each format becomes a DMatrix);
- ``callback.py``, ``algorithm_mode/train_utils.py``, ``metrics/custom_metrics.py``
  (evaluation monitor, early stopping, the container's own metrics through ``feval``);
- ``constants/xgb_constants.py`` (metric names, customer errors, model name).

The model file is what ``Booster.save_model`` writes for a name without extension: the
legacy binary format under xgboost 1.7 and UBJSON under 3.0. Neither is a pickle: the
container stopped pickling the Booster after 1.2-2, so a script that loads it must use
``xgboost.Booster().load_model`` (as the container's own serving falls back to).

Not run locally (refused with a sentence): Pipe mode, ``application/x-recordio-protobuf``
(the container reads it with mlio, which no runtime profile carries), ``_kfold`` cross
validation and Dask GPU training. Everything above ``train`` is standard library only,
so the executor imports this module to check a request before the run (preflight).
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import os
import shutil
import sys
import tempfile
import traceback

MODEL_NAME = "xgboost-model"
CONTAINER_VERSIONS = ("1.7-1", "3.0-5")

# --- The toolkit's errors (sagemaker_algorithm_toolkit/exceptions.py) --------------------


class ToolkitError(Exception):
    """A failure the algorithm reports; ``hyperparameter`` names the one at fault, if any."""

    def __init__(self, message: str, hyperparameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hyperparameter = hyperparameter


class UserError(ToolkitError):
    """Caused by the request: its hyperparameters, channels or data."""


class AlgorithmError(ToolkitError):
    """A failure of the algorithm itself."""


class NotLocal(ToolkitError):
    """Valid for the container, but not something the local executor runs."""


def _words(text):
    return text.split()


# --- Metrics (constants/xgb_constants.py) ------------------------------------------------

XGB_MAXIMIZE_METRICS = _words(
    "accuracy auc aucpr balanced_accuracy f1 f1_binary f1_macro map ndcg precision r2 recall "
    "precision_macro precision_micro recall_macro recall_micro"
)
XGB_MINIMIZE_METRICS = _words(
    "aft-nloglik cox-nloglik error gamma-deviance gamma-nloglik interval-regression-accuracy "
    "logloss mae mape merror mlogloss mphe mse poisson-nloglik rmse rmsle tweedie-nloglik"
)
# The container's own metrics (metrics/custom_metrics.py CUSTOM_METRICS), computed with
# scikit-learn through xgb.train's feval (custom_metric from 3.0).
CUSTOM_METRICS = _words(
    "accuracy balanced_accuracy f1 f1_binary f1_macro mse rmse mae precision precision_macro "
    "precision_micro r2 recall recall_macro recall_micro"
)
# What SageMaker scrapes from a built-in XGBoost job's log when the request has no
# MetricDefinitions: the AlgorithmSpecification.MetricDefinitions and FinalMetricDataList
# that DescribeTrainingJob returns for one (seen on a sagemaker-xgboost training job). The
# log line is ``[3]<TAB>train-rmse:1.2<TAB>validation-rmse:2.3``; CloudWatch shows the tab
# as ``#011``, which is what these regexes match.
_SCRAPED = {
    "train": "accuracy cox-nloglik error f1 gamma-deviance gamma-nloglik logloss mae map mse "
    "ndcg poisson-nloglik rmse",
    "validation": "accuracy cox-nloglik error f1 gamma-deviance gamma-nloglik logloss mae map "
    "mse ndcg poisson-nloglik r2 rmse",
}
_NUMBER = "([-+]?[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
METRIC_DEFINITIONS = [
    {"Name": f"{data}:{metric}", "Regex": f".*\\[[0-9]+\\].*#011{data}-{metric}:{_NUMBER}.*"}
    for data, names in _SCRAPED.items()
    for metric in names.split()
]
# The tuning objectives (algorithm_mode/metrics.py), the range of _tuning_objective_metric.
TUNING_METRICS = [f"validation:{name}" for name in XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS]

# Errors of xgboost that the container reports as the user's (xgb_constants.CUSTOMER_ERRORS).
CUSTOMER_ERRORS = (
    "label must be in [0,1] for logistic regression",
    "label must be in [0, num_class)",
    "Target is multiclass but average='binary'",
    "feature_names mismatch",
    "Check failed: preds.size() == info.labels_.size()",
    "Check failed: !auc_error AUC: the dataset only contains pos or neg samples",
    "Check failed: base_score > 0.0f && base_score < 1.0f base_score must be in (0,1) "
    "for logistic loss",
    "Check failed: label_correct PoissonRegression: label must be nonnegative",
    "Check failed: label_correct TweedieRegression: label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
)

# --- Hyperparameters (hyperparameter_validation.py, both files) --------------------------


class Interval:
    """A numeric range, printed as the toolkit prints it (``[0, 1]``, ``(0, +inf)``)."""

    def __init__(self, min_open=None, min_closed=None, max_open=None, max_closed=None):
        self.min_open, self.min_closed = min_open, min_closed
        self.max_open, self.max_closed = max_open, max_closed

    def __contains__(self, value) -> bool:
        return not (
            (self.min_open is not None and value <= self.min_open)
            or (self.min_closed is not None and value < self.min_closed)
            or (self.max_open is not None and value >= self.max_open)
            or (self.max_closed is not None and value > self.max_closed)
        )

    def __str__(self) -> str:
        if self.min_open is not None:
            low = f"({self.min_open}, "
        elif self.min_closed is not None:
            low = f"[{self.min_closed}, "
        else:
            low = "(-inf, "
        if self.max_open is not None:
            return low + f"{self.max_open})"
        if self.max_closed is not None:
            return low + f"{self.max_closed}]"
        return low + "+inf)"


class Hyperparameter:
    """One entry of the container's table. ``kind`` is how the value parses: int, float,
    text (categorical), list (comma-separated), tuple or nested (a Python literal)."""

    def __init__(self, name, kind, values=None, required=False, depends=(), check=None):
        self.name, self.kind, self.values, self.required = name, kind, values, required
        self.depends, self.check = tuple(depends), check

    def parse(self, value):
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        if self.kind == "list":
            return value.split(",")
        if self.kind in ("tuple", "nested"):
            # The container eval()s monotone_constraints and literal_evals
            # interaction_constraints; a literal is all either accepts in practice.
            return ast.literal_eval(value) if isinstance(value, str) else value
        return value

    def check_range(self, value) -> None:
        if self.values is None:
            return
        if self.kind == "list":
            if any(not self._allowed(item) for item in value):
                raise UserError(
                    f"Hyperparameter {self.name}: value {value} not in range {self._range_text()}",
                    self.name,
                )
        elif self.kind in ("tuple", "nested"):
            items = [i for inner in value for i in inner] if self.kind == "nested" else value
            if any(item not in self.values for item in items):
                raise UserError(
                    f"Hyperparameter {self.name}: value {value} not in range {self._range_text()}",
                    self.name,
                )
        elif not self._allowed(value):
            raise UserError(
                f"Hyperparameter {self.name}: {value} is not in {self._range_text()}", self.name
            )

    def _allowed(self, value) -> bool:
        return self.values(value) if callable(self.values) else value in self.values

    def _range_text(self) -> str:
        return str(getattr(self.values, "shown", self.values))


class Shown:
    """A range check printed as the list it checks against (the toolkit's range_validator)."""

    def __init__(self, shown, check):
        self.shown, self.check = shown, check

    def __call__(self, value) -> bool:
        return self.check(self.shown, value)


def _eval_metric_allowed(supported, metric) -> bool:
    if "<function" in metric:
        raise UserError(f"User defined evaluation metric {metric} is not supported yet.")
    if "@" in metric:
        name, threshold = (part.strip() for part in metric.split("@")[:2])
        if name not in ("error", "ndcg", "map"):
            raise UserError(
                f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized "
                "threshold should be one of these options: 'error', 'ndcg', 'map'."
            )
        try:
            float(threshold)
        except ValueError:
            raise UserError(f"Threshold value 't' in '{name}@t' expects float input.") from None
        return True
    return metric in supported


_TREE_PLUGINS = _words(
    "grow_colmaker distcol grow_histmaker grow_skmaker sync refresh prune grow_quantile_histmaker"
)
_TREE_BUILD_PLUGINS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_quantile_histmaker")


def _check_updater(value, deps) -> None:
    if deps.get("booster") == "gblinear":
        if not (len(value) == 1 and value[0] in ("shotgun", "coord_descent")):
            # The container's message names a generator object here; its intent is this.
            raise UserError(
                "Linear updater should be one of these options: 'shotgun', 'coord_descent'.",
                "updater",
            )
    elif deps.get("process_type") == "update":
        if not all(item in ("refresh", "prune") for item in value):
            raise UserError(
                "process_type 'update' can only be used with updater 'refresh' and 'prune'",
                "updater",
            )
    else:
        if not all(item in _TREE_PLUGINS for item in value):
            raise UserError(
                "Tree updater should be selected from these options: 'grow_colmaker', "
                "'distcol', 'grow_histmaker', 'grow_skmaker', 'grow_quantile_histmaker', "
                "'sync', 'refresh', 'prune', 'shortgun', 'coord_descent'.",
                "updater",
            )
        if sum(item in _TREE_BUILD_PLUGINS for item in value) > 1:
            raise UserError(
                "Only one tree grow plugin can be selected. Choose one from thefollowing: "
                "'grow_colmaker', 'distcol', 'grow_histmaker', 'grow_skmaker'",
                "updater",
            )


def _check_objective(value, deps) -> None:
    if value in ("multi:softmax", "multi:softprob") and deps.get("num_class") is None:
        raise UserError(
            "Require input for parameter 'num_class' for multi-classification", "objective"
        )


def _check_eval_metric(value, deps) -> None:
    if "objective" not in deps:
        # The container reads dependencies["objective"] unguarded, so eval_metric without
        # objective fails there with KeyError: 'objective'.
        raise AlgorithmError(
            "Hyperparameter eval_metric needs objective: the container's check of it fails "
            "with KeyError: 'objective'",
            "eval_metric",
        )
    objective = deps["objective"]
    if "auc" in value and not objective.startswith(("binary:", "rank:")):
        raise UserError(
            "Metric 'auc' can only be applied for classification and ranking problems.",
            "eval_metric",
        )
    if "aft-nloglik" in value and objective != "survival:aft":
        raise UserError(
            "Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.",
            "eval_metric",
        )


def _check_constraints(name, methods, wording):
    def check(value, deps) -> None:
        if value is not None and deps.get("tree_method") not in methods:
            raise UserError(
                f"{name} can be used only when the tree_method parameter is set to {wording}.",
                name,
            )

    return check


def _hp(name, kind, values=None, **kwargs) -> Hyperparameter:
    return Hyperparameter(name, kind, values, **kwargs)


_ZERO_ONE = Interval(min_closed=0, max_closed=1)
_POSITIVE_FRACTION = Interval(min_open=0, max_closed=1)
_NON_NEGATIVE = Interval(min_closed=0)
_AT_LEAST_ONE = Interval(min_closed=1)
_ONOFF = ["true", "false"]
_OBJECTIVES = _words(
    "aft_loss_distribution binary:logistic binary:logitraw binary:hinge count:poisson "
    "multi:softmax multi:softprob rank:pairwise rank:ndcg rank:map reg:linear "
    "reg:squarederror reg:logistic reg:gamma reg:pseudohubererror reg:squaredlogerror "
    "reg:absoluteerror reg:tweedie survival:aft survival:cox"
)
_UPDATERS = _words(
    "grow_colmaker distcol grow_histmaker grow_skmaker sync refresh prune grow_colmaker "
    "distcol grow_histmaker grow_colmaker shotgun coord_descent refresh prune"
)

HYPERPARAMETERS = {
    hp.name: hp
    for hp in (
        _hp("num_round", "int", _AT_LEAST_ONE, required=True),
        _hp("csv_weights", "int", _ZERO_ONE),
        _hp("early_stopping_rounds", "int", _AT_LEAST_ONE),
        _hp("booster", "text", ["gbtree", "gblinear", "dart"]),
        _hp("verbosity", "int", Interval(min_closed=0, max_closed=3)),
        _hp("nthread", "int", _AT_LEAST_ONE),
        _hp("eta", "float", _ZERO_ONE),
        _hp("gamma", "float", _NON_NEGATIVE),
        _hp("max_depth", "int", _NON_NEGATIVE),
        _hp("min_child_weight", "float", _NON_NEGATIVE),
        _hp("max_delta_step", "float", _NON_NEGATIVE),
        _hp("subsample", "float", _POSITIVE_FRACTION),
        _hp("colsample_bytree", "float", _POSITIVE_FRACTION),
        _hp("colsample_bylevel", "float", _POSITIVE_FRACTION),
        _hp("colsample_bynode", "float", _POSITIVE_FRACTION),
        _hp("lambda", "float", _NON_NEGATIVE),
        _hp("alpha", "float", _NON_NEGATIVE),
        _hp(
            "tree_method",
            "text",
            Shown(["auto", "exact", "approx", "hist", "gpu_hist"], lambda s, v: v in s),
        ),
        _hp("sketch_eps", "float", Interval(min_open=0, max_open=1)),
        _hp("scale_pos_weight", "float", Interval(min_open=0)),
        _hp(
            "updater", "list", _UPDATERS, depends=("booster", "process_type"), check=_check_updater
        ),
        _hp("dsplit", "text", ["row", "col"]),
        _hp("refresh_leaf", "int", _ZERO_ONE),
        _hp("process_type", "text", ["default", "update"]),
        _hp("grow_policy", "text", ["depthwise", "lossguide"]),
        _hp("max_leaves", "int", _NON_NEGATIVE),
        _hp("max_bin", "int", _NON_NEGATIVE),
        _hp(
            "predictor",
            "text",
            Shown(["auto", "cpu_predictor", "gpu_predictor"], lambda s, v: v in s),
        ),
        _hp(
            "monotone_constraints",
            "tuple",
            [-1, 0, 1],
            depends=("tree_method",),
            check=_check_constraints(
                "monotone_constraints", ("exact", "hist"), "either 'exact' or 'hist'"
            ),
        ),
        _hp(
            "interaction_constraints",
            "nested",
            _AT_LEAST_ONE,
            depends=("tree_method",),
            check=_check_constraints(
                "interaction_constraints",
                ("exact", "hist", "approx"),
                "either 'exact', 'hist' or 'approx'",
            ),
        ),
        _hp("sample_type", "text", ["uniform", "weighted"]),
        _hp("normalize_type", "text", ["tree", "forest"]),
        _hp("rate_drop", "float", _ZERO_ONE),
        _hp("one_drop", "int", _ZERO_ONE),
        _hp("skip_drop", "float", _ZERO_ONE),
        _hp("lambda_bias", "float", _ZERO_ONE),
        _hp("tweedie_variance_power", "float", Interval(min_open=1, max_open=2)),
        _hp("objective", "text", _OBJECTIVES, depends=("num_class",), check=_check_objective),
        _hp("num_class", "int", Interval(min_closed=2)),
        _hp("base_score", "float", _NON_NEGATIVE),
        _hp("_kfold", "int", Interval(min_closed=2)),
        _hp("_num_cv_round", "int", _AT_LEAST_ONE),
        _hp("_tuning_objective_metric", "text", TUNING_METRICS),
        _hp(
            "eval_metric",
            "list",
            Shown(XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS, _eval_metric_allowed),
            depends=("objective",),
            check=_check_eval_metric,
        ),
        _hp("seed", "int", Interval(min_open=-(2**31), max_open=2**31 - 1)),
        _hp("num_parallel_tree", "int", _AT_LEAST_ONE),
        _hp("save_model_on_termination", "text", _ONOFF),
        _hp("aft_loss_distribution", "text", ["normal", "logistic", "extreme"]),
        _hp("aft_loss_distribution_scale", "float", _NON_NEGATIVE),
        _hp("deterministic_histogram", "text", _ONOFF),
        _hp("sampling_method", "text", ["uniform", "gradient_based"]),
        _hp("prob_buffer_row", "int", Interval(min_open=1.0)),
        # Not xgboost's: chooses Dask GPU training in the container.
        _hp("use_dask_gpu_training", "text", _ONOFF),
    )
}
ALIASES = {
    "learning_rate": "eta",
    "min_split_loss": "gamma",
    "reg_lambda": "lambda",
    "reg_alpha": "alpha",
}


def validate_hyperparameters(given, unresolved=frozenset()):
    """The container's ``Hyperparameters.validate``: aliases, required, parse, range, then
    dependencies in its order; the first problem raises. Returns the parsed values.

    ``unresolved`` names hyperparameters whose value is not known yet (preflight): they
    count as present and their own checks, and those of hyperparameters that depend on
    them, are left to the run.
    """
    values = {ALIASES.get(name, name): value for name, value in given.items()}
    unresolved = {ALIASES.get(name, name) for name in unresolved}
    for name, spec in HYPERPARAMETERS.items():
        if spec.required and name not in values and name not in unresolved:
            raise UserError(f"Missing required hyperparameter: {name}", name)
    parsed = {}
    for name, value in values.items():
        spec = HYPERPARAMETERS.get(name)
        if spec is None:
            raise UserError(f"Extraneous hyperparameter found: {name}", name)
        if name in unresolved:
            continue
        try:
            parsed[name] = spec.parse(value)
        except (ValueError, SyntaxError):
            raise UserError(
                f"Hyperparameter {name}: could not parse value (caused by ValueError)", name
            ) from None
    for name in unresolved:
        if name not in HYPERPARAMETERS:
            raise UserError(f"Extraneous hyperparameter found: {name}", name)
    for name, value in parsed.items():
        try:
            HYPERPARAMETERS[name].check_range(value)
        except ToolkitError as error:
            error.hyperparameter = error.hyperparameter or name
            raise
        except Exception as error:
            raise AlgorithmError(
                f"Hyperparameter {name}: unexpected failure when validating {value} "
                f"(caused by {type(error).__name__})",
                name,
            ) from None
    validated = {}
    for name in _dependency_order(list(parsed)):
        spec = HYPERPARAMETERS[name]
        if spec.check and not unresolved.intersection(spec.depends):
            spec.check(parsed[name], {d: validated[d] for d in spec.depends if d in validated})
        validated[name] = parsed[name]
    return validated


def _dependency_order(names):
    """Each hyperparameter after those it depends on (the toolkit's _sort_dependencies)."""
    stack, visited = [], dict.fromkeys(names, False)

    def visit(name):
        visited[name] = True
        for dep in HYPERPARAMETERS[name].depends:
            if dep in visited and not visited[dep]:
                visit(dep)
        stack.insert(0, name)

    for name in names:
        if not visited[name]:
            visit(name)
    return list(reversed(stack))


# --- Channels and content types (channel_validation.py, data_utils.py) -------------------

CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF = "csv", "libsvm", "parquet", "recordio-protobuf"
VALID_CONTENT_TYPES = [
    CSV,
    LIBSVM,
    PARQUET,
    RECORDIO_PROTOBUF,
    "text/csv",
    "text/libsvm",
    "text/x-libsvm",
    "application/x-parquet",
    "application/x-recordio-protobuf",
]
DEFAULT_CONTENT_TYPE = "text/libsvm"
_CHANNELS = {"train": True, "validation": False, "code": False}  # name: required
_DISTRIBUTIONS = ("ShardedByS3Key", "FullyReplicated")


def _channel_supported(name, content_type, mode, distribution) -> bool:
    if name == "code":
        return (content_type, mode, distribution) == ("text/python", "File", "FullyReplicated")
    if distribution not in _DISTRIBUTIONS:
        return False
    if mode == "File":
        return content_type in VALID_CONTENT_TYPES
    piped = [
        CSV,
        PARQUET,
        RECORDIO_PROTOBUF,
        "text/csv",
        "application/x-parquet",
        "application/x-recordio-protobuf",
    ]
    return mode == "Pipe" and content_type in piped


def validate_channels(config):
    """The container's ``Channels.validate`` of inputdataconfig.json: required and
    known channels, the default content type, each channel's supported configuration."""
    for name, required in _CHANNELS.items():
        if required and name not in config:
            raise UserError(f"Missing required channel: {name}")
    validated = {}
    for name, value in config.items():
        if name not in _CHANNELS:
            raise UserError(f"Extraneous channel found: {name}")
        value = dict(value)
        value.setdefault("ContentType", DEFAULT_CONTENT_TYPE)
        if not _channel_supported(
            name,
            value["ContentType"],
            value.get("TrainingInputMode"),
            value.get("S3DistributionType"),
        ):
            raise UserError(f"Channel configuration for '{name}' channel is not supported: {value}")
        validated[name] = value
    return validated


def _parse_header(value):
    """cgi.parse_header, which data_utils uses (the cgi module is gone from Python 3.13)."""
    parts = [part.strip() for part in value.split(";")]
    params = {}
    for part in parts[1:]:
        key, sep, item = part.partition("=")
        if sep:
            params[key.strip()] = item.strip().strip('"')
    return parts[0], params


def content_format(content_type):
    """data_utils.get_content_type: csv, libsvm, parquet or recordio-protobuf."""
    if content_type is None:
        return LIBSVM
    kind, params = _parse_header(content_type.lower())
    if kind in (CSV, "text/csv"):
        if params.get("label_size", "1") != "1":
            raise UserError(
                f"{content_type} is not an accepted csv ContentType. "
                "Optional parameter label_size must be equal to 1"
            )
        return CSV
    if kind in (LIBSVM, "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if kind in (PARQUET, "application/x-parquet"):
        return PARQUET
    if kind in (RECORDIO_PROTOBUF, "application/x-recordio-protobuf"):
        return RECORDIO_PROTOBUF
    raise UserError(
        f"{content_type} is not an accepted ContentType: " + ", ".join(VALID_CONTENT_TYPES) + "."
    )


def local_limits(hyperparameters, channels):
    """What the container runs but the local executor does not, as NotLocal."""
    if "_kfold" in hyperparameters:
        raise NotLocal(
            "_kfold cross-validation does not run locally; train without it, or on SageMaker.",
            "_kfold",
        )
    if str(hyperparameters.get("use_dask_gpu_training", "false")) == "true":
        raise NotLocal("Dask GPU training does not run locally (no GPUs).", "use_dask_gpu_training")
    for name, value in channels.items():
        if value.get("TrainingInputMode") == "Pipe":
            raise NotLocal(f"channel '{name}': Pipe mode does not run locally; use File mode.")
        if name != "code" and content_format(value["ContentType"]) == RECORDIO_PROTOBUF:
            raise NotLocal(
                f"channel '{name}': {value['ContentType']} does not run locally (the container "
                "reads it with mlio, which the local runtime lacks); use text/csv, text/libsvm "
                "or application/x-parquet."
            )


def check_request(hyperparameters, channels=None, unresolved=frozenset()):
    """Everything about a request the container would refuse, or the local executor does
    not run, known before the run; the first problem raises (ToolkitError).
    ``channels`` is inputdataconfig.json's shape (None: not known yet)."""
    validated = validate_hyperparameters(hyperparameters, unresolved)
    checked = validate_channels(channels) if channels is not None else {}
    if checked:
        content_format(checked["train"]["ContentType"])
    local_limits({**validated, **dict.fromkeys(unresolved)}, checked)
    return validated, checked


# --- Training (needs the runtime's xgboost, numpy, pyarrow, scikit-learn) ----------------


def _data_files(path):
    """get_size: the channel's bytes; a hidden file anywhere is refused."""
    if not os.path.exists(path):
        return 0
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            if name.startswith("."):
                raise UserError("Hidden file found in the data path! Remove that before training.")
            total += os.path.getsize(os.path.join(root, name))
    return total


def _sniff_delimiter(line):
    try:
        delimiter = csv.Sniffer().sniff(line).delimiter
    except Exception as error:
        raise UserError(f"Could not determine delimiter on line {line[:50]}:\n{error}") from None
    logging.info("Determined delimiter of CSV input is '%s'", delimiter)
    return delimiter


def _libsvm_features(line):
    parts = line.split(" ")
    label = parts[0].split(":")
    try:
        if len(label) > 2:
            raise ValueError
        for part in label:
            float(part)
    except ValueError:
        logging.error("%s does not follow LIBSVM label format <label>(:<weight>).", parts[0])
        return -1
    for part in parts[1:]:
        # The container checks the first feature's shape for every feature; so do we.
        if ":" not in part or len(parts[1].split(":")) != 2:
            return -1
    return len(parts) - 1


def _validate_files(path, file_format):
    """validate_data_file_path: the first line of each file of the first leaf folder."""
    if os.path.isfile(path):
        files = [path]
    else:
        leaf = next(root for root, dirs, _ in os.walk(path) if not dirs)
        files = [
            os.path.join(leaf, name)
            for name in os.listdir(leaf)
            if os.path.isfile(os.path.join(leaf, name))
            and not name.startswith((".", "_"))
            and not (".cache" in name and ("dtrain" in name or "dval" in name))
        ]
    for file_path in files:
        with open(file_path, errors="ignore") as handle:
            if file_format == CSV:
                _sniff_delimiter(handle.readline())
                continue
            if file_format != LIBSVM:
                continue
            for line in handle:
                count = _libsvm_features(line)
                if count > 1:
                    break
                if count < 0:
                    raise UserError(
                        f"First line '{line[:50]}...' of file '{os.path.basename(file_path)}' is "
                        "not 'LIBSVM' format. Please ensure the file is in 'LIBSVM' format."
                    )
            else:
                logging.warning(
                    "File %s is not an invalid LIBSVM file but has no features. Accepting "
                    "simple validation.",
                    os.path.basename(file_path),
                )


def _gather(path, into):
    """_get_file_mode_files_path: every file up to three folders deep, linked into one
    folder (xgboost reads a folder's files); deeper files are left out with a warning."""
    if os.path.exists(into):
        shutil.rmtree(into)
    os.mkdir(into)
    count = 0

    def link(folder, depth):
        nonlocal count
        if os.path.isfile(folder):
            count += 1
            os.symlink(folder, os.path.join(into, f"{os.path.basename(folder)}{count}"))
            return
        if depth > 3:
            logging.warning(
                "The depth of folder %s exceed the limit 3. Files in deeper sub dirs won't be "
                "loaded. Please adjust the folder structure accordingly.",
                path,
            )
            return
        for item in sorted(os.scandir(folder), key=lambda entry: entry.name):
            link(item.path, depth + 1)

    logging.info("File path %s of input files", path)
    link(path, 1)
    return into


def load_dmatrix(path, file_format, csv_weights, scratch):
    """get_dmatrix in File mode, by format, as data_utils builds each one."""
    import xgboost as xgb

    files = _gather(path, scratch)
    logging.info("files path: %s", files)
    try:
        if file_format == CSV:
            first = sorted(os.listdir(files))[0]
            with open(os.path.join(files, first)) as handle:
                delimiter = _sniff_delimiter(handle.readline())
            weights = "&weight_column=1" if csv_weights == 1 else ""
            uri = f"{files}?format=csv&label_column=0&delimiter={delimiter}{weights}"
            matrix = xgb.DMatrix(uri)
        elif file_format == LIBSVM:
            # release-3.0.5 names the format; 1.7-1 lets xgboost detect it.
            matrix = xgb.DMatrix(f"{files}?format=libsvm" if _xgboost_major() >= 3 else files)
        else:
            import pandas as pd
            import pyarrow.parquet as pq

            data = pq.read_table(files).to_pandas()
            if isinstance(data, pd.DataFrame):
                data = data.to_numpy()
            matrix = xgb.DMatrix(data[:, 1:], label=data[:, 0])
    except ToolkitError:
        raise
    except Exception as error:
        raise UserError(f"Failed to load {file_format} data with exception:\n{error}") from None
    if matrix.get_label().size == 0:
        raise UserError(
            "Got input data without labels. Please check the input data set. If training job "
            "is running on multiple instances, please switch to using single instance if "
            "number of records in the data set is less than number of workers (16 * number of "
            "instance) in the cluster."
        )
    return matrix


def _xgboost_major():
    import xgboost as xgb

    return int(xgb.__version__.split(".")[0])


def _custom_feval(names):
    """metrics/custom_metrics.py: the container's metrics, computed with scikit-learn."""
    import numpy as np
    from sklearn import metrics as skm

    def labels_of(preds):
        if preds.ndim > 1:
            return np.argmax(preds, axis=-1)
        return (preds > 0.0).astype(int)

    def classified(function):
        def compute(preds, dtrain):
            if preds.size == 0:
                return 0.0
            return function(dtrain.get_label(), labels_of(preds))

        return compute

    def rmse(labels, preds):
        return float(np.sqrt(skm.mean_squared_error(labels, preds)))

    regression = {
        "mse": skm.mean_squared_error,
        "rmse": rmse,
        "mae": skm.mean_absolute_error,
        "r2": skm.r2_score,
    }
    classification = {
        "accuracy": skm.accuracy_score,
        "balanced_accuracy": skm.balanced_accuracy_score,
        "f1": lambda y, p: skm.f1_score(y, p, average="macro"),
        "f1_binary": lambda y, p: skm.f1_score(y, p, average="binary"),
        "f1_macro": lambda y, p: skm.f1_score(y, p, average="macro"),
        "precision": skm.precision_score,
        "precision_macro": lambda y, p: skm.precision_score(y, p, average="macro"),
        "precision_micro": lambda y, p: skm.precision_score(y, p, average="micro"),
        "recall": skm.recall_score,
        "recall_macro": lambda y, p: skm.recall_score(y, p, average="macro"),
        "recall_micro": lambda y, p: skm.recall_score(y, p, average="micro"),
    }

    def feval(preds, dtrain):
        results = []
        for name in names:
            if name in regression:
                results.append((name, regression[name](dtrain.get_label(), preds)))
            else:
                results.append((name, classified(classification[name])(preds, dtrain)))
        return results

    return feval


def train(env):
    """run_algorithm_mode + sagemaker_train + train_job, single host, File mode."""
    with open(env["SM_INPUT_TRAINING_CONFIG_FILE"]) as handle:
        train_config = json.load(handle)
    with open(env["SM_INPUT_DATA_CONFIG_FILE"]) as handle:
        data_config = json.load(handle)
    config, channels = check_request(train_config, data_config)
    import xgboost as xgb  # after the checks: a refused request fails without the import

    if config.get("updater"):
        config["updater"] = ",".join(config["updater"])

    file_format = content_format(channels["train"]["ContentType"])
    csv_weights = config.get("csv_weights", 0)
    train_path = env.get("SM_CHANNEL_TRAIN")
    val_path = env.get("SM_CHANNEL_VALIDATION")
    if val_path is not None and os.path.basename(train_path) == os.path.basename(val_path):
        logging.warning(
            "Found same path for training and validation. This is not recommended and results "
            "may not be correct."
        )
    logging.info("Determined 0 GPU(s) available on the instance.")
    config.pop("use_dask_gpu_training", None)

    scratch = tempfile.mkdtemp(prefix="sagemaker_xgboost_input_data")
    sizes = {
        name: _data_files(path) if path else 0
        for name, path in (("train", train_path), ("validation", val_path))
    }
    for name, path in (("train", train_path), ("validation", val_path)):
        if sizes[name] > 0:
            _validate_files(path, file_format)
    dtrain = (
        load_dmatrix(train_path, file_format, csv_weights, os.path.join(scratch, "train"))
        if sizes["train"] > 0
        else None
    )
    dval = (
        load_dmatrix(val_path, file_format, csv_weights, os.path.join(scratch, "validation"))
        if sizes["validation"] > 0
        else None
    )
    if not dtrain:
        raise UserError(f"No data in training channel path {train_path}")
    if "validation" in channels and not dval:
        raise UserError(f"No data in validation channel path {val_path}")
    logging.info("Single node training.")

    num_round = config.pop("num_round")
    config.pop("save_model_on_termination", None)
    tuning = config.pop("_tuning_objective_metric", None)
    eval_metric = config.get("eval_metric")
    tuning_metric = tuning.split(":")[1].split(",") if tuning else None
    # train_utils.get_union_metrics and get_eval_metrics_and_feval.
    if tuning_metric is None or eval_metric is None:
        union = tuning_metric if eval_metric is None else eval_metric
    else:
        union = sorted(set(tuning_metric).union(eval_metric))
    feval, cleaned = None, union
    custom = [name for name in union or [] if name in CUSTOM_METRICS]
    if custom:
        feval = _custom_feval(custom)
        cleaned = list(set(union) - set(custom))
    if cleaned:
        config["eval_metric"] = cleaned
    else:
        config.pop("eval_metric", None)

    early_stopping_rounds = config.pop("early_stopping_rounds", None)
    early_stopping_metric = None
    if early_stopping_rounds:
        if tuning_metric:
            early_stopping_metric = tuning_metric[-1]
        elif eval_metric:
            early_stopping_metric = eval_metric[-1]
    logging.info("Train matrix has %d rows and %d columns", dtrain.num_row(), dtrain.num_col())
    if dval:
        logging.info("Validation matrix has %d rows", dval.num_row())

    watchlist = [(dtrain, "train")]
    if dval is not None:
        watchlist.append((dval, "validation"))
    callbacks = [xgb.callback.EvaluationMonitor()]
    if dval is not None and early_stopping_metric and early_stopping_rounds:
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=early_stopping_rounds,
                data_name="validation",
                metric_name=early_stopping_metric,
                maximize=early_stopping_metric in XGB_MAXIMIZE_METRICS,
                save_best=True,
            )
        )
    # release-3.0.5 passes the container's metrics as custom_metric (xgboost 3 has no feval).
    metric_argument = {"custom_metric" if _xgboost_major() >= 3 else "feval": feval}
    try:
        booster = xgb.train(
            config,
            dtrain,
            num_boost_round=num_round,
            evals=watchlist,
            callbacks=callbacks,
            verbose_eval=False,
            **metric_argument,
        )
    except Exception as error:
        if any(message in str(error) for message in CUSTOMER_ERRORS):
            raise UserError(str(error)) from None
        raise AlgorithmError(f"XGB train call failed with exception:\n {error}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    model_dir = env["SM_MODEL_DIR"]
    os.makedirs(model_dir, exist_ok=True)
    booster.save_model(os.path.join(model_dir, MODEL_NAME))


def main():
    # integration.py's console format, as the container's log lines read.
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s:%(levelname)s] %(message)s",
        datefmt="%Y-%m-%d:%H:%M:%S",
    )
    logging.info("Running XGBoost Sagemaker in algorithm mode")
    try:
        train(os.environ)
    except Exception as error:
        # The training toolkit reports a failure in the log and in /opt/ml/output/failure,
        # whose text SageMaker returns as the job's FailureReason.
        message = f"{type(error).__name__}: {error}"
        logging.error("Reporting training FAILURE")
        logging.error("framework error: \n%s", traceback.format_exc())
        output = os.environ.get("SM_OUTPUT_DIR")
        if output:
            with open(os.path.join(output, "failure"), "w") as handle:
                handle.write(message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
