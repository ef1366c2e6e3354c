"""Reading captures, the streamed current dataset and the drift check (fast tier: no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor

from pipelines.config.settings import PROJECT_ROOT
from pipelines.core.errors import MlopsError
from pipelines.executor.checks import load_analyzer
from pipelines.monitoring import capture_reader as capture
from pipelines.monitoring import drift
from pipelines.monitoring.dataset import CurrentDataset
from pipelines.monitoring.execution import analyze_window, with_predictions
from pipelines.serving.capture import capture_record

SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"
WHEN = datetime(2026, 3, 4, 5, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def analyzer():
    return load_analyzer()


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return pd.read_csv(SAMPLE)


def features(sample: pd.DataFrame) -> list[str]:
    return [c for c in sample.columns if c != "medv"]


def write_capture(root: Path, bodies: list[str], when: datetime, **extra) -> Path:
    folder = root / "ep" / "AllTraffic" / when.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{when.strftime('%M-%S-%f')}.jsonl"
    records = [
        capture_record(
            body.encode(), "text/csv", b'{"predictions": [1.0]}', "application/json", when, **extra
        )
        for body in bodies
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations(text, expected):
    assert capture.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "0h", "-1h", "1w", "h1", "1.5h"])
def test_bad_durations_are_refused(text):
    with pytest.raises(MlopsError, match="Invalid duration"):
        capture.parse_duration(text)


def test_a_window_reads_the_hour_folders_it_touches_and_only_its_records(
    tmp_path, analyzer, sample
):
    names = features(sample)
    rows = sample[names].to_csv(header=False, index=False).splitlines()
    write_capture(tmp_path, rows[:10], WHEN)
    write_capture(tmp_path, rows[10:15], WHEN - timedelta(hours=2))  # outside the window
    write_capture(tmp_path, rows[15:20], WHEN - timedelta(minutes=50))  # previous hour, inside
    json_request = capture_record(b'{"a": 1}', "application/json", b"{}", "application/json", WHEN)
    with (tmp_path / "ep/AllTraffic" / WHEN.strftime("%Y/%m/%d/%H") / "json.jsonl").open("w") as f:
        f.write(json.dumps(json_request) + "\n")
    window = capture.Window.since(timedelta(hours=1), WHEN + timedelta(minutes=1))
    dataset, skipped, _ = analyze_window(
        analyzer, capture.FolderCaptureSource(tmp_path), "ep", window, names, chunk_records=4
    )
    assert dataset.rows == 15
    assert skipped == 1


def test_streamed_statistics_equal_the_pipeline_analyzers(tmp_path, analyzer, sample):
    """The same rows give the same statistics.json as CheckDataQuality's analyzer, however
    the requests are batched and chunked."""
    names = features(sample)
    frame = sample[names].copy()
    frame.loc[3, "crim"] = np.nan  # a missing value: the analyzer's text path
    text = frame.to_csv(header=False, index=False, na_rep="").splitlines()
    bodies = ["\n".join(text[i : i + 7]) + "\n" for i in range(0, len(text), 7)]
    dataset = CurrentDataset(analyzer, names)
    for start in range(0, len(bodies), 13):
        dataset.add_csv(bodies[start : start + 13])
    expected_path = tmp_path / "expected.csv"
    frame.to_csv(expected_path, index=False, na_rep="")
    expected = analyzer.data_statistics(analyzer.read_csv(expected_path))
    assert json.dumps(dataset.statistics(), sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_requests_that_are_not_rows_of_the_features_are_ignored_and_counted(analyzer):
    """A header row (issue 28: one such request typed every feature String for the whole
    window) or another number of columns: left out, counted, the rest analysed."""
    dataset = CurrentDataset(analyzer, ["a", "b", "c"])
    dataset.add_csv(["1,2\n", "b,a,c\n1,2,3\n", '"a","b","c"\n', "1,2,3\n4,5,6\n", "7,8,9\n"])
    assert dataset.unparsable == 3
    assert dataset.rows == 3
    by_name = {f["name"]: f for f in dataset.statistics()["features"]}
    assert {f["inferred_type"] for f in by_name.values()} == {"Integral"}
    assert by_name["a"]["numerical_statistics"]["mean"] == pytest.approx(4.0)


def features_only(statistics: dict, constraints: dict, names: list[str]) -> tuple[dict, dict]:
    """A baseline of the feature columns alone, for requests with no responses captured."""
    keep = set(names)
    return tuple(
        {**document, "features": [f for f in document["features"] if f["name"] in keep]}
        for document in (statistics, constraints)
    )


def test_a_feature_scaled_three_times_is_the_one_drift_violation(analyzer, sample):
    names = features(sample)
    base = analyzer.data_statistics(sample.astype(str))
    base_statistics, base_constraints = features_only(
        base, analyzer.suggest_constraints(base), names
    )
    assert "medv" not in {f["name"] for f in base_constraints["features"]}
    current = sample[names].copy()
    current["rm"] = current["rm"] * 3
    dataset = CurrentDataset(analyzer, names)
    dataset.add_csv([current.to_csv(header=False, index=False)])
    violations, drifts = drift.check(
        analyzer, dataset.statistics(), base_statistics, base_constraints
    )
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [
        ("rm", "baseline_drift_check")
    ]
    by_name = {d.name: d for d in drifts}
    assert by_name["rm"].distance > 0.5
    assert by_name["rm"].current_mean == pytest.approx(3 * sample["rm"].mean())
    assert by_name["crim"].distance == 0.0
    assert by_name["crim"].verdict == "ok"
    # The distance the table shows is the one the check compared.
    assert f"{by_name['rm'].distance:.4g}" in violations[0]["description"]


def test_a_sample_of_the_baseline_data_has_a_raw_distance_the_robust_one_clamps(analyzer, sample):
    names = features(sample)
    base = analyzer.data_statistics(sample.astype(str))
    base_statistics, base_constraints = features_only(
        base, analyzer.suggest_constraints(base), names
    )
    dataset = CurrentDataset(analyzer, names)
    dataset.add_csv([sample[names].iloc[::2].to_csv(header=False, index=False)])
    violations, drifts = drift.check(
        analyzer, dataset.statistics(), base_statistics, base_constraints
    )
    assert violations == []
    rm = {d.name: d for d in drifts}["rm"]
    assert rm.raw_distance > 0
    assert rm.distance == 0.0
    assert rm.clamped
    assert rm.to_dict()["raw_distance"] == rm.raw_distance


@pytest.mark.parametrize(
    ("duration", "words"),
    [
        (timedelta(minutes=1), "1 minute"),
        (timedelta(seconds=90), "1 minute 30 seconds"),
        (timedelta(hours=2), "2 hours"),
        (timedelta(days=1, hours=1), "1 day 1 hour"),
    ],
)
def test_intervals_read_as_a_person_says_them(duration, words):
    assert capture.describe_duration(duration) == words


def test_predictions_are_read_from_json_and_csv_responses():
    assert capture.predictions_of('{"predictions": [1.5, 2]}', "JSON") == [1.5, 2.0]
    assert capture.predictions_of("1.5\n2.0\n", "CSV") == [1.5, 2.0]
    with pytest.raises(MlopsError, match="BASE64"):
        capture.predictions_of("AAAA", "BASE64")


def test_capture_records_the_inference_id_as_sagemaker_does():
    record = capture_record(b"1,2", "text/csv", b"3", "text/csv", WHEN, inference_id="abc-1")
    assert record["eventMetadata"]["inferenceId"] == "abc-1"
    assert (
        "inferenceId"
        not in capture_record(b"1", "text/csv", b"3", "text/csv", WHEN)["eventMetadata"]
    )


def test_a_column_that_turns_to_text_is_a_string_feature(analyzer):
    dataset = CurrentDataset(analyzer, ["a", "b"])
    dataset.add_csv(["1,2.5\n3,4.5\n"])
    dataset.add_csv(["x,5.5\n"])
    by_name = {f["name"]: f for f in dataset.statistics()["features"]}
    assert by_name["a"]["inferred_type"] == "String"
    values = {
        b["value"]
        for b in by_name["a"]["string_statistics"]["distribution"]["categorical"]["buckets"]
    }
    assert values == {"1", "3", "x"}
    assert by_name["b"]["inferred_type"] == "Fractional"
    assert by_name["b"]["numerical_statistics"]["common"]["num_present"] == 3


def test_the_held_out_test_split_does_not_drift_from_the_training_baseline(tmp_path, analyzer):
    """Issue 26, item 1: monitoring the held-out split (the endpoint's requests: feature rows,
    no header) against the training split's baseline reports no drift; the distance is the
    check's, from the two KLL sketches (exact at this size), not from the 10 buckets."""
    from tests.training.conftest import load_script

    out = tmp_path / "splits"
    args = ["--input-dir", str(SAMPLE.parent), "--input-file", SAMPLE.name]
    assert (
        load_script("preprocess").main([*args, "--output-dir", str(out), "--target-column", "medv"])
        == 0
    )
    train = analyzer.read_csv(out / "train")
    names = [c for c in train.columns if c != "medv"]
    base = analyzer.data_statistics(train)
    # The whole baseline, target first, as Model Monitor uses it; each captured row is the
    # response's prediction then the request's features (execution.with_predictions).
    base_constraints = analyzer.suggest_constraints(base)
    model = RandomForestRegressor(n_estimators=50, random_state=0).fit(
        train[names].to_numpy(), train["medv"].to_numpy()
    )
    test = pd.read_csv(out / "test" / "test.csv")[names]
    requests = [test.iloc[i : i + 5] for i in range(0, len(test), 5)]
    bodies = [chunk.to_csv(header=False, index=False) for chunk in requests]
    outputs = [
        (json.dumps({"predictions": model.predict(chunk.to_numpy()).tolist()}), "JSON")
        for chunk in requests
    ]
    merged, unmatched = with_predictions(bodies, outputs)
    assert unmatched == 0
    dataset = CurrentDataset(analyzer, ["medv", *names])
    dataset.add_csv(merged)
    violations, drifts = drift.check(analyzer, dataset.statistics(), base, base_constraints)
    assert violations == []
    distances = {d.name: d.distance for d in drifts}
    assert distances["crim"] == 0.0
    assert distances["medv"] == 0.0  # the predictions, in the target's place


def test_a_response_without_one_prediction_per_row_is_left_out_and_counted():
    bodies = ["1,2\n3,4\n", "5,6\n", "7,8\n"]
    outputs = [('{"predictions": [10, 11]}', "JSON"), ("not json", "JSON"), ("12\n13\n", "CSV")]
    merged, unmatched = with_predictions(bodies, outputs)
    assert merged == ["10.0,1,2\n11.0,3,4"]
    assert unmatched == 2
