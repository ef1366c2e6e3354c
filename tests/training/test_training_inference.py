"""training/inference.py: the serving handlers as the SageMaker container calls them."""

from __future__ import annotations

import json

import numpy as np
import pytest

FEATURES = "crim, zn, indus, chas, nox, rm, age, dis, rad, tax, ptratio, b, lstat"


@pytest.fixture(scope="module")
def bundle(inference, boston_model):
    return inference.model_fn(str(boston_model))


@pytest.fixture(scope="module")
def test_rows(boston_splits) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(feature names, feature matrix, target) of the first 5 Boston test rows."""
    lines = (boston_splits / "test" / "test.csv").read_text().splitlines()
    header = lines[0].split(",")
    data = np.array([[float(v) for v in line.split(",")] for line in lines[1:6]])
    return header[1:], data[:, 1:], data[:, 0]


def serve(inference, bundle, body, content_type, accept):
    data = inference.input_fn(body, content_type)
    return inference.output_fn(inference.predict_fn(data, bundle), accept)


def test_model_fn_loads_estimator_and_feature_names(bundle, test_rows):
    names, _, _ = test_rows
    assert bundle.features == names
    assert bundle.target == "medv"
    assert bundle.n_features == 13
    assert hasattr(bundle.estimator, "predict")


def test_csv_round_trip(inference, bundle, test_rows):
    _, X, _ = test_rows
    body = "\n".join(",".join(repr(v) for v in row) for row in X.tolist()).encode()
    response, content_type = serve(inference, bundle, body, "text/csv", "text/csv")
    assert content_type == "text/csv"
    lines = response.splitlines()
    assert len(lines) == 5
    assert [float(v) for v in lines] == bundle.estimator.predict(X).tolist()


def test_a_csv_header_row_is_refused_in_any_order(inference, bundle, test_rows):
    """SageMaker's CSV decoder reads every line as data (sagemaker-containers _encoders.py);
    a header captured with the rows would type every feature as text for Model Monitor, so
    the handler refuses it: a 500 from the container, and locally, with the sentence."""
    names, X, _ = test_rows
    for order in (list(range(len(names))), list(range(len(names)))[::-1]):
        lines = [",".join(names[i] for i in order)]
        lines += [",".join(repr(row[i]) for i in order) for row in X.tolist()]
        with pytest.raises(inference.InferenceError, match="starts with a header row"):
            serve(inference, bundle, "\n".join(lines), "text/csv; charset=utf-8", None)


@pytest.mark.parametrize("shape", ["instances", "list_of_lists", "records", "instance_records"])
def test_json_round_trip(inference, bundle, test_rows, shape):
    names, X, _ = test_rows
    rows = X.tolist()
    records = [dict(zip(names, row, strict=True)) for row in rows]
    payload = {
        "instances": {"instances": rows},
        "list_of_lists": rows,
        "records": records,
        "instance_records": {"instances": records},
    }[shape]
    response, content_type = serve(
        inference, bundle, json.dumps(payload), "application/json", "application/json"
    )
    assert content_type == "application/json"
    assert json.loads(response) == {"predictions": bundle.estimator.predict(X).tolist()}


def test_json_single_row(inference, bundle, test_rows):
    _, X, _ = test_rows
    response, _ = serve(inference, bundle, json.dumps(X[0].tolist()), "application/json", "*/*")
    assert json.loads(response)["predictions"] == [bundle.estimator.predict(X[:1])[0]]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv"),
        ("application/xml, text/csv;q=0.5", "text/csv"),
    ],
)
def test_accept_negotiation(inference, accept, expected):
    body, content_type = inference.output_fn(np.array([1.5, 2.0]), accept)
    assert content_type == expected
    if expected == "text/csv":
        assert body == "1.5\n2.0\n"
    else:
        assert json.loads(body) == {"predictions": [1.5, 2.0]}


def test_unsupported_accept_is_406(inference):
    with pytest.raises(inference.InferenceError) as info:
        inference.output_fn(np.array([1.0]), "application/xml")
    assert info.value.status_code == 406
    assert "unsupported accept type 'application/xml'" in str(info.value)


def test_unsupported_content_type_is_415(inference):
    with pytest.raises(inference.InferenceError) as info:
        inference.input_fn(b"\x00\x01", "application/x-npy")
    assert info.value.status_code == 415
    assert str(info.value) == (
        "unsupported content type 'application/x-npy'; use one of text/csv, application/json"
    )


def test_wrong_feature_count_is_400(inference, bundle, test_rows):
    _, X, _ = test_rows
    body = ",".join(map(repr, X[0].tolist())) + "\n" + ",".join(map(repr, X[1].tolist()[:-1]))
    with pytest.raises(inference.InferenceError) as info:
        inference.predict_fn(inference.input_fn(body, "text/csv"), bundle)
    assert info.value.status_code == 400
    assert str(info.value) == f"expected 13 features ({FEATURES}), got 12 in row 2"


def test_non_numeric_value_is_400(inference, bundle, test_rows):
    _, X, _ = test_rows
    row = [repr(v) for v in X[0].tolist()]
    row[1] = "many"
    with pytest.raises(inference.InferenceError) as info:
        inference.predict_fn(inference.input_fn(",".join(row), "text/csv"), bundle)
    assert info.value.status_code == 400
    assert "non-numeric value 'many' for feature zn in row 1" in str(info.value)


@pytest.mark.parametrize("bad", [None, True, "NaN", float("inf")])
def test_json_non_numeric_values_are_400(inference, bundle, test_rows, bad):
    _, X, _ = test_rows
    row = X[0].tolist()
    row[12] = bad
    with pytest.raises(inference.InferenceError) as info:
        inference.predict_fn(inference.input_fn(json.dumps([row]), "application/json"), bundle)
    assert info.value.status_code == 400
    assert "for feature lstat in row 1" in str(info.value)


def test_record_with_missing_feature_is_400(inference, bundle, test_rows):
    names, X, _ = test_rows
    record = dict(zip(names, X[0].tolist(), strict=True))
    del record["rm"]
    record["rooms"] = 6.0
    with pytest.raises(inference.InferenceError) as info:
        inference.predict_fn(inference.input_fn(json.dumps([record]), "application/json"), bundle)
    assert info.value.status_code == 400
    assert "row 1: missing feature(s) ['rm'], unknown key(s) ['rooms']" in str(info.value)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "text/csv", "request body is empty"),
        ("  \n", "application/json", "request body is empty"),
        ("{not json", "application/json", "request body is not valid JSON"),
        ('{"instances": []}', "application/json", "request contains no instances"),
        (b"\xff\xfe1,2", "text/csv", "request body is not UTF-8 text"),
    ],
)
def test_malformed_requests_are_400(inference, body, content_type, message):
    with pytest.raises(inference.InferenceError) as info:
        inference.input_fn(body, content_type)
    assert info.value.status_code == 400
    assert message in str(info.value)


def predictions_through_handlers(inference, model, X: np.ndarray) -> np.ndarray:
    rows = [[repr(v) for v in row] for row in X.tolist()]
    return inference.predict_fn(rows, model)


@pytest.mark.parametrize("kind", ["RandomForestRegressor", "ExtraTreesRegressor"])
def test_the_forest_fast_path_is_bit_identical_to_sklearn(inference, boston_splits, kind):
    from sklearn import ensemble

    lines = (boston_splits / "train" / "train.csv").read_text().splitlines()[1:]
    data = np.array([[float(v) for v in line.split(",")] for line in lines])
    forest = getattr(ensemble, kind)(n_estimators=25, random_state=0).fit(data[:, 1:], data[:, 0])
    model = inference.ModelBundle(forest)
    assert inference.is_single_output_forest(forest)
    for X in (data[:1, 1:], data[:5, 1:], data[:, 1:]):
        assert np.array_equal(predictions_through_handlers(inference, model, X), forest.predict(X))
    # Few rows walk all the trees at once, many rows call each tree: the same leaves.
    leaves = model.forest_leaves()
    features = data[:, 1:].astype(np.float32)
    walked = np.hstack([leaves.leaves(features[i : i + 1]) for i in range(len(features))])
    assert np.array_equal(walked, leaves.leaves(features))


def test_other_estimators_are_predicted_by_sklearn(inference, boston_splits):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression

    lines = (boston_splits / "train" / "train.csv").read_text().splitlines()[1:]
    data = np.array([[float(v) for v in line.split(",")] for line in lines])
    X, y = data[:, 1:], data[:, 0]
    linear = LinearRegression().fit(X, y)
    two_outputs = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, np.c_[y, y])
    threaded = RandomForestRegressor(n_estimators=5, n_jobs=2, random_state=0).fit(X, y)
    for estimator in (linear, two_outputs, threaded):
        assert not inference.is_single_output_forest(estimator)
        predicted = predictions_through_handlers(inference, inference.ModelBundle(estimator), X)
        # Threads sum the trees in whatever order they finish: equal to the last few bits.
        np.testing.assert_allclose(predicted, estimator.predict(X), rtol=1e-12)
