"""The local endpoint: the SageMaker inference contract over HTTP, zero-downtime swaps,
data capture, and what it records in the emulator."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time

import psutil
import pytest

from pipelines.core.errors import MlopsError
from pipelines.registry import REJECTED, Registry, require_approved
from pipelines.serving.deploy import capture_destination, endpoint_name
from pipelines.serving.local_endpoint import LocalEndpoint, stop_local_endpoints
from pipelines.serving.model_server import MAX_DEFAULT_WORKERS
from pipelines.serving.predict import Predictions, local_invoker, predict, read_rows
from tests.serving.conftest import CONFIG, SAMPLE, read_jsonl
from tests.support import free_port

ROW = "0.00632,18.0,2.31,0.0,0.538,6.575,65.2,4.09,1.0,296.0,15.3,396.9,4.98"


def call(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def endpoint(tmp_path, emulator_connection, runtime_cache):
    instance = LocalEndpoint(
        tmp_path,
        emulator_connection,
        name=endpoint_name(CONFIG),
        port=free_port(),
        role_arn=CONFIG.execution_role_arn,
        capture_uri=capture_destination(CONFIG),
        capture_percent=100,
        tags={"Project": CONFIG.name_prefix},
        runtime_cache=runtime_cache,
    )
    yield instance
    instance.down()


def test_serves_the_sagemaker_inference_contract(endpoint, register_version):
    version = register_version(10)
    status = endpoint.deploy(version)
    assert status.running
    assert status.version == version.version

    code, headers, _ = call(endpoint.port, "GET", "/ping")
    assert code == 200
    assert headers["X-Mlops-Model-Version"] == str(version.version)

    code, headers, body = call(
        endpoint.port,
        "POST",
        "/invocations",
        ROW.encode(),
        {"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert code == 200
    assert headers["Content-Type"].startswith("text/csv")
    assert 15 < float(body.decode().strip()) < 40

    rows = {"instances": [[float(v) for v in ROW.split(",")]] * 2}
    code, _, body = call(
        endpoint.port,
        "POST",
        "/invocations",
        json.dumps(rows).encode(),
        {"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert code == 200
    assert len(json.loads(body)["predictions"]) == 2


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"1,2,3", "text/csv", 400, "expected 13 features (crim, zn"),
        (
            ROW.replace("18.0", "abc").encode(),
            "text/csv",
            400,
            "non-numeric value 'abc' for feature zn",
        ),
        (b"<xml/>", "application/xml", 415, "unsupported content type"),
        (b"", "text/csv", 400, "request body is empty"),
        (b"1" * (6 * 1024 * 1024 + 1), "text/csv", 413, "the limit is 6,291,456 bytes"),
    ],
    # Short ids: the test id is exported to subprocesses in PYTEST_CURRENT_TEST.
    ids=["feature-count", "non-numeric", "content-type", "empty", "too-large"],
)
def test_bad_requests_get_a_clear_error(
    endpoint, register_version, body, content_type, status, message
):
    endpoint.deploy(register_version(10))
    code, _, payload = call(
        endpoint.port, "POST", "/invocations", body, {"Content-Type": content_type}
    )
    assert code == status
    assert message in json.loads(payload)["error"]


def test_the_deployment_is_recorded_in_the_emulator(
    endpoint, register_version, emulator_connection
):
    version = register_version(10)
    endpoint.deploy(version)
    sagemaker = emulator_connection.client("sagemaker")
    described = sagemaker.describe_endpoint(EndpointName=endpoint.name)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == f"{endpoint.name}-v{version.version}"
    model = sagemaker.describe_model(ModelName=f"{endpoint.name}-v{version.version}")
    assert model["PrimaryContainer"]["ModelPackageName"] == version.arn

    endpoint.down()
    with pytest.raises(sagemaker.exceptions.ClientError):
        sagemaker.describe_endpoint(EndpointName=endpoint.name)


def test_redeploying_swaps_versions_without_a_failed_request(endpoint, register_version):
    first, second = register_version(10), register_version(12)
    endpoint.deploy(first)
    old_server = endpoint.status().model_server_pid

    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def load(keep_alive: bool) -> None:
        # A kept connection sees the old version's last answer with "Connection: close";
        # http.client then opens a new one, which the new version accepts.
        connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=30)
        while not stop.is_set():
            try:
                connection.request(
                    "POST", "/invocations", ROW.encode(), {"Content-Type": "text/csv"}
                )
                response = connection.getresponse()
                response.read()
                results.append((response.status, response.getheader("X-Mlops-Model-Version")))
            except (OSError, http.client.HTTPException) as error:
                results.append((0, repr(error)))
            if not keep_alive:
                connection.close()
        connection.close()

    clients = [threading.Thread(target=load, args=(kept,)) for kept in (False, True, True)]
    for client in clients:
        client.start()
    time.sleep(0.5)
    endpoint.deploy(second)
    time.sleep(0.5)
    stop.set()
    for client in clients:
        client.join()

    failures = [r for r in results if r[0] != 200]
    assert failures == []
    versions = [v for _, v in results]
    assert str(first.version) in versions
    assert versions[-1] == str(second.version)
    assert (
        not psutil.pid_exists(old_server)
        or psutil.Process(old_server).status() == psutil.STATUS_ZOMBIE
    )
    assert endpoint.status().version == second.version


def test_requests_and_responses_are_captured_to_s3(endpoint, register_version, emulator_connection):
    endpoint.deploy(register_version(10))
    for _ in range(3):
        call(
            endpoint.port,
            "POST",
            "/invocations",
            ROW.encode(),
            {"Content-Type": "text/csv", "Accept": "application/json"},
        )
    endpoint.down()  # flushes the capture buffer
    records = read_jsonl(
        emulator_connection.client("s3"),
        CONFIG.bucket_name,
        f"datacapture/{endpoint.name}/AllTraffic/",
    )
    assert len(records) >= 3
    record = records[-1]
    assert record["eventVersion"] == "0"
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": ROW,
        "encoding": "CSV",
    }
    output = record["captureData"]["endpointOutput"]
    assert output["encoding"] == "JSON"
    assert "predictions" in json.loads(output["data"])


def test_endpoint_down_stops_everything_and_frees_the_port(endpoint, register_version):
    status = endpoint.deploy(register_version(10))
    assert endpoint.down() is True
    assert not endpoint.status().running
    for pid in (status.front_pid, status.model_server_pid):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(ConnectionRefusedError):
        call(endpoint.port, "GET", "/ping")


def test_an_endpoint_that_outlived_its_emulator_is_stopped_from_its_pid_files(
    endpoint, register_version, tmp_path
):
    status = endpoint.deploy(register_version(10))
    assert stop_local_endpoints(tmp_path) == 1
    assert not endpoint.status().running
    assert not endpoint.state_file.exists()
    for pid in (status.front_pid, status.model_server_pid):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert stop_local_endpoints(tmp_path) == 0


def test_servers_listen_on_loopback_only(endpoint, register_version):
    status = endpoint.deploy(register_version(10))
    for pid in (status.front_pid, status.model_server_pid):
        addresses = {
            c.laddr.ip for c in psutil.Process(pid).net_connections("tcp") if c.status == "LISTEN"
        }
        assert addresses == {"127.0.0.1"}


def test_a_port_taken_by_another_program_is_reported(
    tmp_path, emulator_connection, register_version
):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        endpoint = LocalEndpoint(
            tmp_path,
            emulator_connection,
            name="taken",
            port=other.getsockname()[1],
            role_arn=CONFIG.execution_role_arn,
        )
        with pytest.raises(MlopsError, match="already in use by another program"):
            endpoint.deploy(register_version(10))
        assert model_servers_under(tmp_path) == []
        endpoint.down()


def model_servers_under(directory) -> list[int]:
    """The model servers (not their worker processes, which share their command line)."""
    found = {
        p.pid: p
        for p in psutil.process_iter(["cmdline", "ppid"])
        if "pipelines.serving.model_server" in " ".join(p.info["cmdline"] or [])
        and str(directory) in " ".join(p.info["cmdline"] or [])
        and p.status() != psutil.STATUS_ZOMBIE
    }
    return [pid for pid, p in found.items() if p.info["ppid"] not in found]


def test_a_failed_switch_keeps_the_previous_version_and_stops_the_new_server(
    endpoint, register_version, tmp_path, monkeypatch
):
    first = endpoint.deploy(register_version(10))

    def never_switches(version: int, timeout: float) -> None:
        raise MlopsError(f"The endpoint did not switch to version {version}")

    monkeypatch.setattr(endpoint, "_wait_for_version", never_switches)
    second = register_version(12)
    with pytest.raises(MlopsError, match="did not switch"):
        endpoint.deploy(second)
    assert model_servers_under(tmp_path) == [first.model_server_pid]
    status = endpoint.status()
    assert status.running
    assert status.version == first.version
    code, headers, _ = call(
        endpoint.port, "POST", "/invocations", ROW.encode(), {"Content-Type": "text/csv"}
    )
    assert code == 200
    assert headers["X-Mlops-Model-Version"] == str(first.version)


def test_only_approved_versions_are_deployable(register_version, emulator_connection):
    pending = register_version(10, approve=False)
    with pytest.raises(
        MlopsError, match=f"Model version {pending.version} is PendingManualApproval"
    ):
        require_approved(pending)
    registry = Registry(emulator_connection, CONFIG.model_package_group_name)
    rejected = registry.set_status(pending.version, REJECTED, "too slow", "pytest")
    with pytest.raises(MlopsError, match="is Rejected; only Approved versions"):
        require_approved(rejected)


def test_predict_sends_the_feature_columns_and_scores_the_target(
    endpoint, register_version, emulator_connection
):
    version = register_version(10)
    endpoint.deploy(version)
    registry = Registry(emulator_connection, CONFIG.model_package_group_name)
    features, target = registry.features(version)
    rows, actual = read_rows(SAMPLE, features, target)
    values = predict(rows, local_invoker(endpoint.url), batch_rows=200)
    result = Predictions(values, actual, target, features)
    assert len(values) == 506
    assert result.r2 > 0.7
    assert result.rmse < 5


def test_predict_names_missing_feature_columns(tmp_path):
    data = tmp_path / "partial.csv"
    data.write_text("crim,zn\n1,2\n")
    with pytest.raises(MlopsError, match="lacks the model's feature column\\(s\\) indus"):
        read_rows(data, ["crim", "zn", "indus"], "medv")


def test_concurrent_deploys_leave_one_front_and_one_model_server(endpoint, register_version):
    import threading

    first, second = register_version(10), register_version(12)
    errors: list[BaseException] = []

    def deploy(version) -> None:
        try:
            endpoint.deploy(version)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=deploy, args=(v,)) for v in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    status = endpoint.status()
    assert status.running
    assert status.version in (first.version, second.version)
    # The model server that serves; the replaced one was stopped (and its workers with it).
    assert model_servers_under(endpoint.dir) == [status.model_server_pid]
    workers = psutil.Process(status.model_server_pid).children()
    assert len(workers) == min(os.cpu_count(), MAX_DEFAULT_WORKERS)
    assert psutil.Process(status.front_pid).is_running()


def test_a_first_deploy_that_fails_leaves_nothing_running(endpoint, register_version, monkeypatch):
    def never_switches(version: int, timeout: float) -> None:
        raise MlopsError(f"The endpoint did not switch to version {version}")

    monkeypatch.setattr(endpoint, "_wait_for_version", never_switches)
    with pytest.raises(MlopsError, match="did not switch"):
        endpoint.deploy(register_version(10))
    assert model_servers_under(endpoint.dir) == []
    assert not endpoint.status().running
    with pytest.raises(ConnectionRefusedError):  # the front let the port go too
        call(endpoint.port, "GET", "/ping")


def test_an_endpoint_whose_front_died_is_restarted_by_the_next_deploy(endpoint, register_version):
    first = endpoint.deploy(register_version(10))
    front = psutil.Process(first.front_pid)
    front.kill()
    front.wait(timeout=10)  # SIGKILL is delivered asynchronously; this deploy started it
    assert not endpoint.status().running
    second = endpoint.deploy(register_version(12))
    assert second.running
    assert model_servers_under(endpoint.dir) == [second.model_server_pid]
    code, headers, _ = call(
        endpoint.port, "POST", "/invocations", ROW.encode(), {"Content-Type": "text/csv"}
    )
    assert (code, headers["X-Mlops-Model-Version"]) == (200, str(second.version))
