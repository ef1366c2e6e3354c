"""An XGBoost built-in-algorithm model package (no inference code) on the local endpoint,
answered as the container's algorithm mode answers (serve.py, serve_utils.py, encoder.py of
aws/sagemaker-xgboost-container 1.7-1)."""

from __future__ import annotations

import contextlib
import json

import pytest

from pipelines.executor.runners import artifact_identities
from pipelines.registry import APPROVED, Registry
from pipelines.serving.local_endpoint import LocalEndpoint
from tests.serving.conftest import (
    CONFIG,
    XGBOOST_IMAGE,
    xgboost_model_tarball,
    xgboost_predictions,
)
from tests.serving.test_local_endpoint import call
from tests.support import free_port

ROWS = [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5], [-2.0, 1.5, 0.0]]
GROUP = "xgboost-algorithm"


@pytest.fixture(scope="module")
def served(tmp_path_factory, emulator_connection, runtime_cache):
    """An approved XGBoost algorithm-mode version, deployed; (endpoint, model folder)."""
    folder = tmp_path_factory.mktemp("xgboost")
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=CONFIG.bucket_name)
    s3.put_object(
        Bucket=CONFIG.bucket_name, Key="xgboost/model.tar.gz", Body=xgboost_model_tarball(folder)
    )
    sagemaker = emulator_connection.client("sagemaker")
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    inference = {
        "Containers": [
            {
                "Image": XGBOOST_IMAGE,
                "ModelDataUrl": f"s3://{CONFIG.bucket_name}/xgboost/model.tar.gz",
            }
        ],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
    }
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        InferenceSpecification=inference,
        CustomerMetadataProperties=artifact_identities(s3, {"InferenceSpecification": inference}),
    )["ModelPackageArn"]
    registry = Registry(emulator_connection, GROUP)
    version = registry.set_status(registry.describe(arn).version, APPROVED, "tests", "pytest")
    endpoint = LocalEndpoint(
        tmp_path_factory.mktemp("endpoint"),
        emulator_connection,
        name="xgboost-algorithm",
        port=free_port(),
        role_arn=CONFIG.execution_role_arn,
        runtime_cache=runtime_cache,
    )
    assert endpoint.deploy(version).running
    yield endpoint, folder
    endpoint.down()


def csv_body(rows) -> bytes:
    return "\n".join(",".join(str(v) for v in row) for row in rows).encode()


def test_csv_rows_are_scored_one_prediction_per_line(served):
    endpoint, folder = served
    code, headers, body = call(
        endpoint.port, "POST", "/invocations", csv_body(ROWS), {"Content-Type": "text/csv"}
    )
    assert code == 200, body
    assert headers["Content-Type"] == "text/csv; charset=utf-8"  # text/csv is the default
    lines = body.decode().splitlines()
    assert [float(line) for line in lines] == xgboost_predictions(folder, ROWS)


def test_json_accept_answers_the_containers_predictions_document(served):
    endpoint, folder = served
    code, headers, body = call(
        endpoint.port,
        "POST",
        "/invocations",
        csv_body(ROWS[:2]),
        {"Content-Type": "text/csv", "Accept": "application/json"},
    )
    assert (code, headers["Content-Type"]) == (200, "application/json")
    expected = xgboost_predictions(folder, ROWS[:2])
    assert json.loads(body) == {"predictions": [{"score": p} for p in expected]}


def test_libsvm_rows_are_read_as_sparse_features(served):
    endpoint, folder = served
    libsvm = b"0 0:0.5 1:-1.0 2:2.0\n0 0:1.0 2:-0.5"
    code, _, body = call(
        endpoint.port, "POST", "/invocations", libsvm, {"Content-Type": "text/libsvm"}
    )
    assert code == 200, body
    assert float(body.decode().splitlines()[0]) == xgboost_predictions(folder, ROWS[:1])[0]


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        (
            {"Content-Type": "application/json"},
            b"[[1, 2, 3]]",
            415,
            "application/json is not an accepted ContentType",
        ),
        ({"Content-Type": "text/csv"}, b"1.0,2.0", 400, "Feature size of csv inference data 2"),
        (
            {"Content-Type": "text/csv", "Accept": "image/png"},
            b"1.0,2.0,3.0",
            406,
            "Accept type image/png is not supported",
        ),
        ({"Content-Type": "text/csv"}, b"", 204, ""),
    ],
)
def test_refusals_are_the_containers(served, headers, body, status, message):
    endpoint, _ = served
    code, _, answer = call(endpoint.port, "POST", "/invocations", body, headers)
    assert code == status
    assert message in answer.decode()
