"""The analyzer's files against Model Monitor's and Clarify's documented fields and types."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from tests.training.conftest import SAMPLE_DATA_DIR, TRAINING_DIR, load_script

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


# --- the drift distance, as Deequ computes it ------------------------------------------------

DEEQU = "awslabs/deequ src/test/scala/com/amazon/deequ/KLL"


def sketch_of(data: list[list[float]]) -> dict:
    """A feature's numerical statistics holding just a KLL sketch of these levels."""
    return {"distribution": {"kll": {"sketch": {"data": data}}}}


@pytest.mark.parametrize(
    ("values", "levels", "buckets"),
    [
        # KLLProfileTest, "return correct NumericColumnProfiles for numeric columns": att1 of
        # getDfWithNumericFractionalValues (1.0 .. 6.0), KLLParameters(2, 0.64, 2).
        (list(range(1, 7)), [[5.0, 6.0], [1.0, 3.0]], [(1.0, 3.5, 4), (3.5, 6.0, 2)]),
        # KLLProfileTest, "... With KLL ...": att1 of getDfWithNumericFractionalValuesForKLL.
        (
            list(range(1, 31)),
            [[27.0, 28.0, 29.0, 30.0], [25.0], [1.0, 6.0, 10.0, 15.0, 19.0, 23.0]],
            [(1.0, 15.5, 16), (15.5, 30.0, 14)],
        ),
    ],
)
def test_the_sketch_fills_compacts_and_buckets_as_deequs(monkeypatch, values, levels, buckets):
    """Expected figures from Deequ's own tests (KLLProfileTest.scala in the folder above)."""
    data = analyzer.kll_sketch([float(v) for v in values], k=2, c=0.64)
    assert data == levels
    monkeypatch.setattr(analyzer, "BUCKETS", 2)
    got = analyzer._buckets(data, float(min(values)), float(max(values)))
    assert [(b["lower_bound"], b["upper_bound"], b["count"]) for b in got] == buckets


def test_the_default_sketch_is_exact_up_to_2050_values():
    """KLLSketch.DEFAULT_SKETCH_SIZE = 2048 and DEFAULT_SHRINKING_FACTOR = 0.64; level 0 holds
    2 * (ceil(2048 / 2) + 1) = 2,050 items (QuantileNonSample.capacity), and update() condenses
    only once the sketch holds more than that."""
    values = np.random.RandomState(0).normal(size=2051).tolist()
    assert analyzer.kll_sketch(values[:2050]) == [values[:2050]]
    compacted = analyzer.kll_sketch(values)
    # The first 2,050 sorted, every other one (offset 0) up a level; the odd 2,051st stays.
    assert compacted == [[values[2050]], sorted(values[:2050])[0::2]]
    weight = sum(len(level) * 2**h for h, level in enumerate(compacted))
    assert weight == 2051


def test_the_distance_and_its_robust_correction_match_deequs_tests():
    """KLLDistanceTest.scala: sketches [1, 2, 3, 4] and [2, 3, 4, 5] are 0.25 apart (simple)
    and 0.0 after the robust correction; the categorical L-infinity distances likewise."""
    first, second = sketch_of([[1.0, 2.0, 3.0, 4.0]]), sketch_of([[2.0, 3.0, 4.0, 5.0]])
    distance, n, m = analyzer.numerical_distance(first, second)
    assert (distance, n, m) == (0.25, 4, 4)
    assert analyzer.drift(distance, n, m, "Simple") == 0.25
    assert analyzer.drift(distance, n, m, "Robust") == 0.0

    def buckets(counts: dict[str, int]) -> list[dict]:
        return [{"value": v, "count": c} for v, c in counts.items()]

    one = buckets({"a": 10, "b": 20, "c": 25, "d": 10, "e": 5})
    two = buckets({"a": 11, "b": 20, "c": 25, "d": 10, "e": 10})
    other_bins = buckets({"f": 11, "a": 20, "c": 25, "d": 10, "e": 10})
    distance, n, m = analyzer.categorical_distance(one, two)
    assert distance == 0.06015037593984962
    assert analyzer.drift(distance, n, m, "Robust") == 0.0
    assert analyzer.categorical_distance(one, other_bins)[0] == 0.2857142857142857
    # Robust: less 1.8 * sqrt((n + m) / (n * m)) (Distance.selectMetrics), never below 0.
    assert analyzer.drift(0.5, 100, 100, "Robust") == pytest.approx(
        0.5 - 1.8 * math.sqrt(200 / 10000)
    )


def numerical(values: np.ndarray) -> dict:
    return analyzer.numerical_feature_statistics("x", "Fractional", values, 0)[
        "numerical_statistics"
    ]


def test_below_compaction_the_distance_is_the_exact_two_sample_ks_statistic():
    """Worked out independently: scipy's two-sample Kolmogorov-Smirnov statistic is the L-inf
    distance between the two empirical distribution functions."""
    rng = np.random.RandomState(7)
    base = rng.normal(10, 2, 1500)
    same = rng.normal(10, 2, 900)
    shifted = rng.normal(11, 2, 900)
    scaled = base[:900] * 3
    for current in (same, shifted, scaled):
        distance, n, m = analyzer.numerical_distance(numerical(base), numerical(current))
        assert (n, m) == (1500, 900)
        assert distance == pytest.approx(ks_2samp(base, current).statistic, abs=1e-12)
    limit = 1.8 * math.sqrt((1500 + 900) / (1500 * 900))
    assert (
        analyzer.feature_drift(
            *[{"numerical_statistics": numerical(v)} for v in (base, same)], "Robust"
        )
        == 0.0
    )
    shift = ks_2samp(base, shifted).statistic
    assert analyzer.feature_drift(
        {"numerical_statistics": numerical(base)},
        {"numerical_statistics": numerical(shifted)},
        "Robust",
    ) == pytest.approx(shift - limit)
    assert shift - limit > analyzer.COMPARISON_THRESHOLD


def test_above_compaction_the_sketch_distance_stays_close_to_the_exact_one():
    rng = np.random.RandomState(3)
    base = rng.lognormal(0, 1, 60_000)
    same = rng.lognormal(0, 1, 40_000)
    shifted = rng.lognormal(0.3, 1, 40_000)
    sketch = numerical(base)["distribution"]["kll"]["sketch"]["data"]
    assert len(sketch) > 1  # compacted: the exact values are gone
    for current in (same, shifted):
        distance, n, m = analyzer.numerical_distance(numerical(base), numerical(current))
        assert (n, m) == (60_000, 40_000)  # compaction keeps the total weight
        assert distance == pytest.approx(ks_2samp(base, current).statistic, abs=0.01)


@pytest.fixture(scope="module")
def boston_split_statistics(tmp_path_factory) -> dict:
    """statistics.json of the train and test splits of the sample data, seeds 42 and 3."""
    preprocess = load_script("preprocess")
    found = {}
    for seed in (42, 3):
        out = tmp_path_factory.mktemp(f"seed{seed}")
        args = ["--input-dir", str(SAMPLE.parent), "--input-file", SAMPLE.name]
        args += ["--output-dir", str(out), "--target-column", "medv", "--random-state", str(seed)]
        assert preprocess.main(args) == 0
        for split in ("train", "test"):
            found[split, seed] = analyzer.read_csv(out / split)
    return found


def test_a_rerun_with_another_random_state_and_the_held_out_split_do_not_drift(
    boston_split_statistics,
):
    """Issue 26, item 1: two training splits of the same data (RandomState 42 and 3) and the
    held-out test split are the same distribution; crim's exact distance is 0.0226."""
    frames = boston_split_statistics
    baseline = analyzer.data_statistics(frames["train", 42])
    constraints = analyzer.suggest_constraints(baseline)
    rerun = analyzer.data_statistics(frames["train", 3])
    crim = {f["name"]: f for f in rerun["features"]}["crim"]
    base_crim = {f["name"]: f for f in baseline["features"]}["crim"]
    distance = analyzer.numerical_distance(
        base_crim["numerical_statistics"], crim["numerical_statistics"]
    )[0]
    exact = ks_2samp(
        pd.to_numeric(frames["train", 42]["crim"]), pd.to_numeric(frames["train", 3]["crim"])
    ).statistic
    assert distance == pytest.approx(exact, abs=1e-12)
    assert round(distance, 4) == 0.0226
    assert analyzer.check_data_quality(rerun, baseline, constraints) == []
    held_out = analyzer.data_statistics(frames["test", 42])
    assert analyzer.check_data_quality(held_out, baseline, constraints) == []
    tripled = analyzer.data_statistics(scaled(frames["train", 3], "rm", 3))
    assert [
        v["feature_name"] for v in analyzer.check_data_quality(tripled, baseline, constraints)
    ] == ["rm"]


def test_large_values_keep_finite_statistics_and_an_overflowing_sum_is_named():
    spread = numerical(np.array([1e200, -1e200, 3e199]))
    assert spread["std_dev"] == pytest.approx(np.std([1.0, -1.0, 0.3]) * 1e200)
    with pytest.raises(ValueError, match="the sum of feature 'x' overflows float64"):
        numerical(np.array([1e308, 1e308]))


# --- model quality, as Model Monitor's container --------------------------------------------

MODEL_QUALITY_DOCS = (
    "https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-metrics.html"
)


def test_model_quality_statistics_have_the_documented_shape():
    """MODEL_QUALITY_DOCS: regression_metrics mae, mse, rmse, r2 with value and
    standard_deviation, the latter "only when at least 200 samples are available" (else
    "NaN", as the page's binary example writes it), from 5 random 80 % samples."""
    rng = np.random.RandomState(1)
    y = rng.normal(20, 5, 300)
    p = y + rng.normal(0, 1, 300)
    statistics = analyzer.regression_statistics(y, p)
    metrics = statistics["regression_metrics"]
    assert list(metrics) == ["mae", "mse", "rmse", "r2"]
    assert metrics["rmse"]["value"] == pytest.approx(math.sqrt(np.mean((y - p) ** 2)))
    assert metrics["r2"]["value"] == pytest.approx(
        1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)
    )
    assert all(isinstance(m["standard_deviation"], float) for m in metrics.values())
    assert metrics["mae"]["standard_deviation"] < metrics["mae"]["value"] / 10
    few = analyzer.regression_statistics(y[:199], p[:199])["regression_metrics"]
    assert {m["standard_deviation"] for m in few.values()} == {"NaN"}


def test_suggested_thresholds_are_the_baseline_values_with_model_monitors_operators():
    """No band: the suggested threshold is the baseline's value itself. AWS's example: the
    multiclass weighted_precision of MODEL_QUALITY_DOCS, 0.6983172269629505, is suggested as
    {"threshold": 0.6983172269629505, "comparison_operator": "LessThanThreshold"} (Data
    Science on AWS, ch. 9, "Create a model quality baseline"); errors are bounded from above."""
    rng = np.random.RandomState(2)
    y = rng.normal(20, 5, 250)
    baseline = analyzer.regression_statistics(y, y + rng.normal(0, 1, 250))
    constraints = analyzer.suggest_regression_constraints(baseline)["regression_constraints"]
    for name, entry in baseline["regression_metrics"].items():
        assert constraints[name]["threshold"] == entry["value"]
    assert {n: c["comparison_operator"] for n, c in constraints.items()} == {
        "mae": "GreaterThanThreshold",
        "mse": "GreaterThanThreshold",
        "rmse": "GreaterThanThreshold",
        "r2": "LessThanThreshold",
    }


def test_a_model_only_slightly_worse_than_the_baseline_violates():
    rng = np.random.RandomState(3)
    y = rng.normal(20, 5, 250)
    noise = rng.normal(0, 1, 250)
    base = analyzer.regression_statistics(y, y + noise)
    constraints = analyzer.suggest_regression_constraints(base)
    assert analyzer.check_model_quality(base, constraints, base) == []  # equal passes
    better = analyzer.regression_statistics(y, y + 0.9 * noise)
    assert analyzer.check_model_quality(better, constraints, base) == []
    worse = analyzer.regression_statistics(y, y + 1.02 * noise)
    violations = analyzer.check_model_quality(worse, constraints, base)
    assert {v["metric_name"] for v in violations} == {"mae", "mse", "rmse", "r2"}
    rmse = next(v for v in violations if v["metric_name"] == "rmse")
    assert set(rmse) == {"constraint_check_type", "metric_name", "description"}
    # Model Monitor's sentence (e.g. "Metric weightedF2 with 0.63... was LessThanThreshold
    # '0.72...'"), then the choice the documents leave open, named.
    value = worse["regression_metrics"]["rmse"]["value"]
    threshold = base["regression_metrics"]["rmse"]["value"]
    assert rmse["description"].startswith(
        f"Metric rmse with {value!r} was GreaterThanThreshold '{threshold!r}' (local check: a "
        "value equal to the threshold passes"
    )


# --- bias, as smclarify -----------------------------------------------------------------------

SMCLARIFY = "aws/amazon-sagemaker-clarify src/smclarify/bias"


def test_pre_training_bias_reproduces_smclarifys_own_test_figures():
    """tests/unit/bias/test_report.py::test_report_continuous_data: facet x above 2, label y
    above 0 (CDDL aside: that test passes a group variable, the pipeline none)."""
    x = [0, 3, 3, 0, 4, 0, 3, 3, 0, 3, 4, 3, 3, 0, 0, 0, 0, 3, 0, 3, 3, 0, 3, 0]
    y = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
    frame = pd.DataFrame({"x": [float(v) for v in x], "y": [float(v) for v in y]}).astype(str)
    group = analyzer.pre_training_bias(frame, "y", 0.0, "x", 2.0)["pre_training_bias_metrics"][
        "facets"
    ]["x"][0]
    assert group["value_or_threshold"] == "(2.0, 4.0]"  # "(2, 4]" for their integer column
    values = {m["name"]: m["value"] for m in group["metrics"]}
    assert values == {
        "CDDL": None,
        "CI": pytest.approx(-0.08333333333333333),
        "DPL": pytest.approx(0.1048951048951049),
        "JS": pytest.approx(0.01252420207928287),
        "KL": pytest.approx(0.057704603668062765),
        "KS": pytest.approx(0.1048951048951049),
        "LP": pytest.approx(0.14834407996920576),
        "TVD": pytest.approx(0.1048951048951049),
    }


def test_pre_training_bias_in_analysis_json_shape(sample):
    analysis = analyzer.pre_training_bias(sample, "medv", 21.2, "chas", 0.5)
    assert analysis["version"] == "1.0"
    metrics = analysis["pre_training_bias_metrics"]
    # Interval names, as smclarify's report._interval_index gives them: (threshold, max].
    assert metrics["label"] == "medv"
    assert metrics["label_value_or_threshold"] == "(21.2, 50.0]"
    group = metrics["facets"]["chas"][0]
    assert group["value_or_threshold"] == "(0.5, 1.0]"
    # Every pre-training metric, sorted by name; CDDL as smclarify reports it without a group
    # variable: a null value and its error (test_report.py, test_partial_bias_report).
    assert [m["name"] for m in group["metrics"]] == [
        "CDDL",
        "CI",
        "DPL",
        "JS",
        "KL",
        "KS",
        "LP",
        "TVD",
    ]
    assert group["metrics"][0] == {
        "name": "CDDL",
        "description": "Conditional Demographic Disparity in Labels (CDDL)",
        "value": None,
        "error": "Group variable is empty or not provided",
    }
    values = {m["name"]: m["value"] for m in group["metrics"]}
    chas = pd.to_numeric(sample["chas"])
    positive = pd.to_numeric(sample["medv"]) > 21.2
    n_d, n_a = int((chas > 0.5).sum()), int((chas <= 0.5).sum())
    assert values["CI"] == pytest.approx((n_a - n_d) / (n_a + n_d))
    assert values["DPL"] == pytest.approx(
        positive[chas <= 0.5].mean() - positive[chas > 0.5].mean()
    )
    assert values["TVD"] == pytest.approx(abs(values["DPL"]))
    assert 0 <= values["JS"] <= math.log(2)
    with pytest.raises(ValueError, match="not in the data"):
        analyzer.pre_training_bias(sample, "medv", 21.2, "river", 0.5)


def test_an_outcome_one_group_lacks_is_left_out_as_smclarify_does():
    """util.pdfs_aligned_nonzero keeps only the outcomes both groups have: with every house on
    the river above the threshold, KL compares the positive shares alone."""
    frame = pd.DataFrame(
        {"medv": [10.0, 30.0, 30.0, 10.0, 30.0, 40.0, 45.0], "chas": [0.0] * 5 + [1.0] * 2}
    ).astype(str)
    metrics = analyzer.pre_training_bias(frame, "medv", 20.0, "chas", 0.5)[
        "pre_training_bias_metrics"
    ]["facets"]["chas"][0]["metrics"]
    values = {m["name"]: m["value"] for m in metrics}
    share = 3 / 5  # positives among the five houses off the river; on it: all (1.0)
    assert values["KL"] == pytest.approx(share * math.log(share / 1.0))
    assert values["LP"] == values["KS"] == pytest.approx(1.0 - share)
    assert values["TVD"] == pytest.approx((1.0 - share) / 2)


def test_bias_drift_matches_clarifys_groups_and_writes_its_violations(sample):
    """clarify-model-monitor-bias-drift-violations: a metric farther from 0 than the
    baseline's is a bias_drift_check violation, "Value ... does not meet the constraint
    requirement", in a file with "version": "1.0"; facet_value is the configured value."""
    baseline = analyzer.pre_training_bias(sample, "medv", 21.2, "chas", 0.5)
    assert analyzer.check_bias(baseline, baseline) == []
    chas = pd.to_numeric(sample["chas"])
    positive = pd.to_numeric(sample["medv"]) > 21.2
    skewed = sample[(chas == 0) | (positive & (chas == 1))]
    current = analyzer.pre_training_bias(skewed, "medv", 21.2, "chas", 0.5)
    drifted = analyzer.check_bias(current, baseline)
    assert {v["metric_name"] for v in drifted} >= {"DPL"}
    dpl = next(v for v in drifted if v["metric_name"] == "DPL")
    value = next(
        m["value"]
        for m in current["pre_training_bias_metrics"]["facets"]["chas"][0]["metrics"]
        if m["name"] == "DPL"
    )
    assert dpl == {
        "facet": "chas",
        "facet_value": "0.5",
        "metric_name": "DPL",
        "constraint_check_type": "bias_drift_check",
        "description": f"Value {value!r} does not meet the constraint requirement",
    }
    assert analyzer.violations_document(drifted, "DATA_BIAS") == {
        "version": "1.0",
        "violations": drifted,
    }
    assert analyzer.violations_document(drifted) == {"violations": drifted}
    # The group is the threshold's: a different maximum (the interval's upper end) or an older
    # local baseline that named it "0.5" still matches; another threshold is refused, loudly.
    older = json.loads(json.dumps(baseline).replace('"(0.5, 1.0]"', '"0.5"'))
    assert analyzer.check_bias(current, older) == drifted
    elsewhere = analyzer.pre_training_bias(sample, "medv", 21.2, "chas", 0.7)
    with pytest.raises(ValueError, match=r"groups of facet 'chas' \(\(0.5, 1.0\]\) match none"):
        analyzer.check_bias(elsewhere, baseline)


def test_smclarify_itself_gives_the_same_analysis(runtime_cache, tmp_path):
    """smclarify 0.5 (PyPI) installs under the 1.2-1 container's pins: run its bias_report in
    that runtime and compare with the analyzer run there, value for value."""
    from pipelines.containers.environments import EnvironmentCache
    from pipelines.containers.profiles import profiles

    python = (
        EnvironmentCache(runtime_cache)
        .ensure(profiles()["sklearn-1.2-1"], extras=("smclarify==0.5",))
        .python
    )
    probe = tmp_path / "probe.py"
    probe.write_text(SMCLARIFY_PROBE)
    done = subprocess.run(
        [python, str(probe), str(TRAINING_DIR / "analyzer.py"), str(SAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ours, theirs = json.loads(done.stdout)
    assert ours == theirs


SMCLARIFY_PROBE = """
import importlib.util, json, logging, sys
import pandas as pd
from smclarify.bias import report

logging.disable(logging.CRITICAL)
spec = importlib.util.spec_from_file_location("analyzer", sys.argv[1])
analyzer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(analyzer)
data = pd.read_csv(sys.argv[2]).astype(float)  # floats, as in preprocess.py's splits
results = []
for label, label_threshold, facet, threshold in [
    ("medv", 21.2, "chas", 0.5), ("medv", 30.0, "rm", 6.5), ("crim", 1.0, "age", 90.0),
]:
    ours = analyzer.pre_training_bias(data.astype(str), label, label_threshold, facet, threshold)
    theirs = {
        "label": label,
        "label_value_or_threshold": report.label_value_or_threshold(data[label], [label_threshold]),
        "facets": {facet: report.bias_report(
            data, report.FacetColumn(facet, [threshold]),
            report.LabelColumn(label, data[label], [label_threshold]),
            report.StageType.PRE_TRAINING, metrics=["all"],
        )},
    }
    results.append((ours["pre_training_bias_metrics"], theirs))
print(json.dumps([[r[0] for r in results], [r[1] for r in results]]))
"""
