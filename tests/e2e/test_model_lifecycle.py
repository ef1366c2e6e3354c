"""After a pipeline run, as a user drives it through the tasks: review the new version,
approve or reject it, deploy it to the local endpoint, predict, take it down."""

from __future__ import annotations

import csv
import json
import socket
import urllib.error
import urllib.request

import pytest

from pipelines.config.settings import PROJECT_ROOT
from pipelines.registry import APPROVED, PENDING, REJECTED, ModelVersion, Registry
from pipelines.teardown import LocalTeardown

pytestmark = pytest.mark.e2e

SAMPLE = PROJECT_ROOT / "sample_data" / "boston_housing.csv"


def output(result) -> str:
    return f"{result.stdout} {result.stderr}"


def new_version(local_stack) -> ModelVersion:
    execution = local_stack.run()
    assert execution.status == "Succeeded"
    registry = Registry(local_stack.stack.connection, local_stack.config.model_package_group_name)
    version = registry.get()
    assert version.execution_arn == execution.execution_arn
    return version


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_review_approve_deploy_predict_and_take_down(local_stack, tmp_path):
    version = new_version(local_stack)
    number = str(version.version)
    assert version.status == PENDING

    listed = local_stack.invoke("models")
    assert listed.returncode == 0, output(listed)
    assert f"│ {number} │ Pending │" in listed.stdout
    assert "rmse" in listed.stdout
    assert version.execution_id in listed.stdout

    refused = local_stack.invoke("deploy", "--version", number)
    assert refused.returncode == 1
    assert f"Model version {number} is PendingManualApproval" in output(refused)
    assert not port_open(local_stack.settings.endpoint_port)

    approved = local_stack.invoke("model-approve", "--version", number, "--reason", "R2 ok")
    assert approved.returncode == 0, output(approved)
    assert f"Version {number}: Approved (approved by " in approved.stdout
    assert approved.stdout.rstrip().endswith(": R2 ok)")

    deployed = local_stack.invoke("deploy", "--version", number)
    assert deployed.returncode == 0, output(deployed)
    url = f"http://127.0.0.1:{local_stack.settings.endpoint_port}/invocations"
    assert f"Version {number} serving at {url}" in deployed.stdout

    status = local_stack.invoke("endpoint-status")
    assert status.returncode == 0, output(status)
    assert version.arn in status.stdout

    with SAMPLE.open() as handle:
        header, first = next(csv.reader(handle)), next(csv.reader(handle))
    row = ",".join(value for name, value in zip(header, first, strict=True) if name != "medv")
    request = urllib.request.Request(
        url,
        data=row.encode(),
        headers={"Content-Type": "text/csv", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["X-Mlops-Model-Version"] == number
        (prediction,) = json.loads(response.read())["predictions"]
    assert 5 < prediction < 50  # a house price in $1000s, like the target

    predictions = tmp_path / "predictions.csv"
    predicted = local_stack.invoke("predict", "--data", str(SAMPLE), "--output", str(predictions))
    assert predicted.returncode == 0, output(predicted)
    assert f"Predictions of model version {number}" in predicted.stdout
    assert "Showed 20 of 506 predictions" in predicted.stdout
    assert "over all 506 rows of the file, against its medv column" in predicted.stdout
    lines = predictions.read_text().splitlines()
    assert lines[0] == "prediction"
    assert len(lines) == 507
    assert float(lines[1]) == pytest.approx(prediction)

    down = local_stack.invoke("endpoint-down")
    assert down.returncode == 0, output(down)
    assert "Endpoint stopped." in down.stdout
    assert not port_open(local_stack.settings.endpoint_port)
    after = local_stack.invoke("endpoint-status")
    assert after.returncode == 3
    missing = local_stack.invoke("predict", "--data", str(SAMPLE))
    assert missing.returncode == 1
    endpoint = local_stack.config.endpoint_name()
    assert (
        f"The local endpoint {endpoint} is not serving (not running): deploy a version with "
        in (output(missing))
    )


def test_rejecting_needs_a_reason_and_keeps_the_version_off_the_endpoint(local_stack):
    version = new_version(local_stack)
    number = str(version.version)

    unexplained = local_stack.invoke("model-reject", "--version", number)
    assert unexplained.returncode == 1
    assert "Say why with --reason" in output(unexplained)
    registry = Registry(local_stack.stack.connection, local_stack.config.model_package_group_name)
    assert registry.get(version.version).status == PENDING

    rejected = local_stack.invoke("model-reject", "--version", number, "--reason", "drift")
    assert rejected.returncode == 0, output(rejected)
    assert registry.get(version.version).status == REJECTED
    listed = local_stack.invoke("models", "--status", REJECTED)
    assert f"│ {number} │ Rejected │" in listed.stdout
    assert ": drift" in listed.stdout

    refused = local_stack.invoke("deploy", "--version", number)
    assert refused.returncode == 1
    assert f"Model version {number} is Rejected" in output(refused)


def test_destroy_takes_the_endpoint_down_first(local_stack):
    version = new_version(local_stack)
    registry = Registry(local_stack.stack.connection, local_stack.config.model_package_group_name)
    registry.set_status(version.version, APPROVED, "for destroy", "pytest")
    deployed = local_stack.invoke("deploy")  # the latest Approved version
    assert deployed.returncode == 0, output(deployed)
    assert f"Version {version.version} serving" in deployed.stdout
    assert port_open(local_stack.settings.endpoint_port)

    # What `invoke destroy` runs before Terraform, without tearing down the shared stack.
    assert LocalTeardown().remove_endpoints(local_stack.stack, local_stack.config) == 1
    assert not port_open(local_stack.settings.endpoint_port)
    sagemaker = local_stack.stack.connection.client("sagemaker")
    assert sagemaker.list_endpoints()["Endpoints"] == []
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(
            f"http://127.0.0.1:{local_stack.settings.endpoint_port}/ping", timeout=5
        )
