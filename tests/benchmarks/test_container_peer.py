"""benchmarks/container_peer.py: the SageMaker scikit-learn container's serving stack that
the endpoint benchmark compares with. Its pins are the container's, and its Flask app calls
the handlers as the container's worker does (through Flask's test client: no server)."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType

import joblib
import pandas as pd
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sklearn.ensemble import RandomForestRegressor

from pipelines.config.settings import PROJECT_ROOT
from pipelines.containers.profiles import profiles

# aws/sagemaker-scikit-learn-container, requirements.txt at
# c59fb77e58e802b7458aade5f9e20b9546c6d304 (the commit the sklearn-1.2-1 pins cite), which
# docker/1.2-1/final/Dockerfile.cpu installs: the reference the peer is checked against.
CONTAINER_REQUIREMENTS = """
boto3==1.28.57
botocore>=1.31.57,<1.32.0
cryptography
Flask==1.1.1
itsdangerous==2.0.1
gunicorn==23.0.0
model-archiver==1.0.3
multi-model-server==1.1.1
pandas==1.1.3
protobuf==3.20.2
psutil==5.7.2
python-dateutil==2.8.1
retrying==1.3.3
sagemaker-containers==2.8.6.post2
sagemaker-inference==1.2.0
sagemaker-training==4.8.0
scikit-learn==1.2.1
scipy==1.8.0
urllib3==1.26.17
six==1.15.0
jinja2==3.0.3
MarkupSafe==2.1.1
numpy==1.24.1
gevent==23.9.1
Werkzeug==2.0.3
setuptools
wheel
certifi
"""
# What the container's gunicorn + Flask worker imports to serve.
SERVING = {"flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "gunicorn", "gevent"}
SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"


def _load_peer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "container_peer", PROJECT_ROOT / "benchmarks" / "container_peer.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exact_pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator == "==":
            name = canonicalize_name(requirement.name)
            assert name not in pins, f"{name} is pinned twice"
            pins[name] = specifiers[0].version
    return pins


def test_the_peer_pins_exactly_the_container_serving_packages():
    extras = _load_peer().PEER_EXTRAS
    pins = _exact_pins(extras)
    assert len(pins) == len(extras), "every peer extra must be an exact == pin"
    container = _exact_pins(CONTAINER_REQUIREMENTS.split())
    assert set(pins) == SERVING
    assert pins == {name: container[name] for name in SERVING}


def test_the_1_2_1_profile_pins_what_the_container_pins_where_both_pin():
    # The peer runs in the profile plus its extras: together they are the container's runtime.
    profile = _exact_pins(profiles()["sklearn-1.2-1"].requirements)
    container = _exact_pins(CONTAINER_REQUIREMENTS.split())
    shared = set(profile) & set(container)
    assert {"scikit-learn", "numpy", "pandas", "scipy"} <= shared
    assert {name: profile[name] for name in shared} == {name: container[name] for name in shared}
    assert profiles()["sklearn-1.2-1"].python == "3.9"


@pytest.fixture
def peer_client(tmp_path, monkeypatch):
    """The peer's app on training/inference.py and a small forest, as one gunicorn worker
    builds it on its first request."""
    frame = pd.read_csv(SAMPLE)
    features = frame.drop(columns="medv")
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(features, frame["medv"])
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    joblib.dump(forest, model_dir / "model.joblib")
    (model_dir / "model_metadata.json").write_text(
        json.dumps({"features": list(features.columns), "target": "medv"})
    )
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "training"))  # gunicorn's --pythonpath
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "inference.py")
    monkeypatch.setenv("SM_MODEL_DIR", str(model_dir))
    peer = _load_peer()
    yield peer, peer.main, forest, features
    sys.modules.pop("inference", None)


def _call(app, method: str, path: str, body: bytes = b"", headers=()):
    """One WSGI request; returns (status code, headers, body)."""
    from werkzeug.test import Client

    response = Client(app).open(path, method=method, data=body, headers=list(headers))
    return response.status_code, response.headers, response.get_data()


def test_the_peer_serves_the_handlers_as_the_container_worker(peer_client):
    peer, app, forest, features = peer_client
    row = features.iloc[7]
    expected = float(forest.predict(features.iloc[[7]])[0])
    body = ",".join(str(value) for value in row).encode()

    assert _call(app, "GET", "/ping")[0] == 200
    status, headers, answer = _call(
        app, "POST", "/invocations", body, [("Content-Type", "text/csv"), ("Accept", "text/csv")]
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    assert float(answer.decode()) == pytest.approx(expected)
    # No Accept, or */*: the container's default accept, JSON.
    for accept in ([], [("Accept", "*/*")]):
        status, headers, answer = _call(
            app, "POST", "/invocations", body, [("Content-Type", "text/csv"), *accept]
        )
        assert (status, headers["Content-Type"]) == (200, "application/json")
        assert json.loads(answer)["predictions"] == [pytest.approx(expected)]
    # The container reads the ContentType header (some AWS services send it) first.
    status, _, answer = _call(
        app, "POST", "/invocations", body,
        [("ContentType", "text/csv"), ("Content-Type", "application/json")],
    )  # fmt: skip
    assert status == 200
    # The model was loaded once, by the first request: the app is kept.
    assert peer.app is not None
    first = peer.app
    _call(app, "GET", "/ping")
    assert peer.app is first


def test_the_peer_answers_a_handler_error_with_its_status(peer_client):
    _, app, _, _ = peer_client
    status, _headers, answer = _call(
        app, "POST", "/invocations", b"1,2", [("Content-Type", "text/plain")]
    )
    assert status == 415
    assert json.loads(answer)["error"] == "InferenceError"
    status, _, answer = _call(app, "POST", "/invocations", b"1,2", [("Content-Type", "text/csv")])
    assert status == 400
    assert "expected 13 features" in json.loads(answer)["error-message"]
