"""The analyzer's files against Model Monitor's and Clarify's documented fields and types."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import SAMPLE_DATA_DIR, load_script

analyzer = load_script("analyzer")
SAMPLE = SAMPLE_DATA_DIR / "boston_housing.csv"
NUMBER = (int, float)


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return analyzer.read_csv(SAMPLE)


@pytest.fixture(scope="module")
def baseline(sample: pd.DataFrame) -> tuple[dict, dict]:
    statistics = analyzer.data_statistics(sample)
    return statistics, analyzer.suggest_constraints(statistics)


def scaled(frame: pd.DataFrame, column: str, factor: float) -> pd.DataFrame:
    copy = frame.copy()
    copy[column] = (pd.to_numeric(copy[column]) * factor).map(repr)
    return copy


def test_statistics_have_the_documented_fields_and_types(tmp_path, baseline):
    statistics, _ = baseline
    # Through the file, as SageMaker reads it.
    document = json.loads(analyzer.write_json(tmp_path / "statistics.json", statistics).read_text())
    assert isinstance(document["version"], NUMBER)
    assert document["dataset"]["item_count"] == 506
    by_name = {f["name"]: f for f in document["features"]}
    assert by_name["chas"]["inferred_type"] == "Integral"
    assert by_name["crim"]["inferred_type"] == "Fractional"
    numerical = by_name["crim"]["numerical_statistics"]
    assert set(numerical) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    assert numerical["common"] == {"num_present": 506, "num_missing": 0}
    for key in ("mean", "sum", "std_dev", "min", "max"):
        assert isinstance(numerical[key], float)
    kll = numerical["distribution"]["kll"]
    assert len(kll["buckets"]) == 10
    assert set(kll["buckets"][0]) == {"lower_bound", "upper_bound", "count"}
    assert sum(b["count"] for b in kll["buckets"]) == 506
    assert kll["buckets"][0]["lower_bound"] == numerical["min"]
    assert kll["buckets"][-1]["upper_bound"] == pytest.approx(numerical["max"])
    assert set(kll["sketch"]["parameters"]) == {"c", "k"}
    assert sorted(kll["sketch"]["data"][0]) == sorted(pd.to_numeric(SAMPLE_CRIM()).tolist())


def SAMPLE_CRIM() -> pd.Series:
    return pd.read_csv(SAMPLE)["crim"]


def test_string_features_get_string_statistics_and_domains():
    frame = pd.DataFrame({"city": ["a", "b", "a", ""], "n": ["1", "2", "3", "4"]})
    statistics = analyzer.data_statistics(frame)
    city = statistics["features"][0]
    assert city["inferred_type"] == "String"
    strings = city["string_statistics"]
    assert strings["common"] == {"num_present": 3, "num_missing": 1}
    assert strings["distinct_count"] == 2.0
    assert strings["distribution"]["categorical"]["buckets"] == [
        {"value": "a", "count": 2},
        {"value": "b", "count": 1},
    ]
    constraints = analyzer.suggest_constraints(statistics)
    assert constraints["features"][0] == {
        "name": "city",
        "inferred_type": "String",
        "completeness": 0.75,
        "string_constraints": {"domains": ["a", "b"]},
    }
    unseen = pd.DataFrame({"city": ["a", "c", "c", "a"], "n": ["1", "2", "3", "4"]})
    violations = analyzer.check_data_quality(
        analyzer.data_statistics(unseen), statistics, constraints
    )
    assert {v["constraint_check_type"] for v in violations} >= {"categorical_values_check"}


def test_constraints_have_the_documented_fields(baseline):
    _, constraints = baseline
    crim = next(f for f in constraints["features"] if f["name"] == "crim")
    assert crim == {
        "name": "crim",
        "inferred_type": "Fractional",
        "completeness": 1.0,
        "num_constraints": {"is_non_negative": True},
    }
    distribution = constraints["monitoring_config"]["distribution_constraints"]
    assert distribution["perform_comparison"] == "Enabled"
    assert distribution["comparison_method"] in ("Simple", "Robust")
    assert isinstance(distribution["comparison_threshold"], float)
    with pytest.raises(ValueError, match="Simple or Robust"):
        analyzer.suggest_constraints(baseline[0], comparison_method="Fancy")


def test_the_same_data_has_no_violation_and_a_sample_of_it_does_not_drift(sample, baseline):
    statistics, constraints = baseline
    assert analyzer.check_data_quality(statistics, *baseline) == []
    subset = analyzer.data_statistics(sample.sample(300, random_state=1))
    assert analyzer.check_data_quality(subset, statistics, constraints) == []


def test_a_feature_scaled_three_times_drifts_and_is_named(sample, baseline):
    current = analyzer.data_statistics(scaled(sample, "rm", 3))
    violations = analyzer.check_data_quality(current, *baseline)
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [
        ("rm", "baseline_drift_check")
    ]
    assert set(violations[0]) == {"feature_name", "constraint_check_type", "description"}
    assert "exceeds threshold: 0.1" in violations[0]["description"]
    document = analyzer.violations_document(violations)
    assert list(document) == ["violations"]


def test_missing_extra_type_and_completeness_checks(sample, baseline):
    current = sample.drop(columns=["tax"]).assign(extra="1")
    current["age"] = ["old"] * len(current)
    current.loc[current.index[:100], "rm"] = ""
    checks = {
        (v["feature_name"], v["constraint_check_type"])
        for v in analyzer.check_data_quality(analyzer.data_statistics(current), *baseline)
    }
    assert checks >= {
        ("tax", "missing_column_check"),
        ("extra", "extra_column_check"),
        ("age", "data_type_check"),
        ("rm", "completeness_check"),
    }


def test_linf_distance_and_deequs_robust_correction():
    a = [{"lower_bound": 0.0, "upper_bound": 1.0, "count": 10}]
    b = [{"lower_bound": 1.0, "upper_bound": 2.0, "count": 10}]
    assert analyzer.linf_distance(a, b) == 1.0
    assert analyzer.linf_distance(a, a) == 0.0
    half = [
        {"lower_bound": 0.0, "upper_bound": 0.5, "count": 10},
        {"lower_bound": 0.5, "upper_bound": 1.0, "count": 0},
    ]
    assert analyzer.linf_distance(a, half) == pytest.approx(0.5)
    assert analyzer.drift(0.5, 100, 100, "Simple") == 0.5
    assert analyzer.drift(0.5, 100, 100, "Robust") == pytest.approx(
        0.5 - 1.8 * math.sqrt(200 / 10000)
    )
    assert analyzer.drift(0.1, 10, 10, "Robust") == 0.0


def test_model_quality_statistics_constraints_and_a_worse_model():
    rng = np.random.RandomState(1)
    y = rng.normal(20, 5, 200)
    good = analyzer.regression_statistics(y, y + rng.normal(0, 1, 200))
    assert set(good["regression_metrics"]) == {"mae", "mse", "rmse", "r2"}
    for entry in good["regression_metrics"].values():
        assert set(entry) == {"value", "standard_deviation"}
    assert good["regression_metrics"]["rmse"]["value"] == pytest.approx(
        math.sqrt(good["regression_metrics"]["mse"]["value"])
    )
    constraints = analyzer.suggest_regression_constraints(good)
    assert constraints["regression_constraints"]["r2"]["comparison_operator"] == (
        "LessThanThreshold"
    )
    assert constraints["regression_constraints"]["mae"]["comparison_operator"] == (
        "GreaterThanThreshold"
    )
    assert analyzer.check_model_quality(good, constraints) == []
    bad = analyzer.regression_statistics(y, np.full(200, y.mean()))
    violations = analyzer.check_model_quality(bad, constraints)
    assert {v["metric_name"] for v in violations} == {"mae", "mse", "rmse", "r2"}
    rmse = next(v for v in violations if v["metric_name"] == "rmse")
    assert "GreaterThanThreshold" in rmse["description"]


def test_pre_training_bias_metrics_in_clarifys_shape(sample):
    analysis = analyzer.pre_training_bias(sample, "medv", 21.2, "chas", 0.5)
    metrics = analysis["pre_training_bias_metrics"]
    assert metrics["label"] == "medv"
    group = metrics["facets"]["chas"][0]
    values = {m["name"]: m["value"] for m in group["metrics"]}
    assert set(values) == {"CI", "DPL", "KL", "JS", "LP", "TVD", "KS"}
    chas = pd.to_numeric(sample["chas"])
    positive = pd.to_numeric(sample["medv"]) > 21.2
    n_d, n_a = int((chas > 0.5).sum()), int((chas <= 0.5).sum())
    assert values["CI"] == pytest.approx((n_a - n_d) / (n_a + n_d))
    assert values["DPL"] == pytest.approx(
        positive[chas <= 0.5].mean() - positive[chas > 0.5].mean()
    )
    assert values["TVD"] == pytest.approx(abs(values["DPL"]))
    assert 0 <= values["JS"] <= math.log(2)
    assert analyzer.check_bias(analysis, analysis) == []
    # Only houses on the river above the median: the facet's positive share drifts.
    skewed = sample[(pd.to_numeric(sample["chas"]) == 0) | (positive & (chas == 1))]
    drifted = analyzer.check_bias(
        analyzer.pre_training_bias(skewed, "medv", 21.2, "chas", 0.5), analysis
    )
    assert {v["metric_name"] for v in drifted} >= {"DPL"}
    assert set(drifted[0]) == {
        "facet",
        "facet_value",
        "metric_name",
        "constraint_check_type",
        "description",
    }
    assert drifted[0]["constraint_check_type"] == "bias_drift_check"
    with pytest.raises(ValueError, match="not in the data"):
        analyzer.pre_training_bias(sample, "medv", 21.2, "river", 0.5)
