"""The local endpoint: the SageMaker inference contract over HTTP, zero-downtime swaps,
data capture, and what it records in the emulator."""

from __future__ import annotations

import hashlib
import http.client
import io
import itertools
import json
import os
import signal
import socket
import tarfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from pipelines.core.errors import MlopsError
from pipelines.registry import REJECTED, Registry, require_approved
from pipelines.serving.deploy import capture_destination, endpoint_name
from pipelines.serving.deployer import StageDeployer
from pipelines.serving.local_endpoint import (
    LocalEndpoint,
    owned_processes,
    stop_local_endpoints,
)
from pipelines.serving.model_server import MAX_DEFAULT_WORKERS
from pipelines.serving.predict import Predictions, local_invoker, predict, read_rows
from tests.serving.conftest import CONFIG, SAMPLE, read_jsonl
from tests.support import ClientLoop, free_port

ROW = "0.00632,18.0,2.31,0.0,0.538,6.575,65.2,4.09,1.0,296.0,15.3,396.9,4.98"
HEADER = "crim,zn,indus,chas,nox,rm,age,dis,rad,tax,ptratio,b,lstat"


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
        # The model's own errors: the 1.2-1 stack answers them all with Flask's 500 page
        # (see tests/serving/test_http_worker.py for the source); the message is logged.
        (b"1,2,3", "text/csv", 500, "expected 13 features (crim, zn"),
        (ROW.replace("18.0", "abc").encode(), "text/csv", 500, "non-numeric value 'abc'"),
        (b"<xml/>", "application/xml", 500, "unsupported content type"),
        (b"", "text/csv", 500, "request body is empty"),
        # inference.py refuses a header row (the container would read it as data).
        ((HEADER + "\n" + ROW).encode(), "text/csv", 500, "starts with a header row (crim, zn"),
        # The endpoint's own refusals, before the model.
        (b"1" * (6 * 1024 * 1024 + 1), "text/csv", 413, "the limit is 6,291,456 bytes"),
    ],
    # Short ids: the test id is exported to subprocesses in PYTEST_CURRENT_TEST.
    ids=["feature-count", "non-numeric", "content-type", "empty", "header-row", "too-large"],
)
def test_bad_requests_are_answered_as_the_container_does(
    endpoint, register_version, body, content_type, status, message
):
    endpoint.deploy(register_version(10))
    code, headers, payload = call(
        endpoint.port, "POST", "/invocations", body, {"Content-Type": content_type}
    )
    assert code == status
    if status == 500:
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"<h1>Internal Server Error</h1>" in payload
        log = Path(endpoint.status().release) / "model_server.log"
        assert message in log.read_text()  # the traceback, as CloudWatch holds it on AWS
        if content_type == "text/csv":  # what predict sends
            with pytest.raises(MlopsError, match=f"reports to clients as ModelError.*{log}"):
                local_invoker(endpoint.url, log)(body)
    else:
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


def test_servers_listen_on_loopback_only_and_on_the_endpoints_port_alone(
    endpoint, register_version
):
    status = endpoint.deploy(register_version(10))
    server = psutil.Process(status.model_server_pid)
    for process in (psutil.Process(status.front_pid), server, *server.children()):
        addresses = {
            (c.laddr.ip, c.laddr.port)
            for c in process.net_connections("tcp")
            if c.status == "LISTEN"
        }
        # No private TCP port: a model server's own door is a Unix socket, this user's.
        assert addresses == {("127.0.0.1", endpoint.port)}
    state = json.loads(endpoint.state_file.read_text())
    assert os.stat(endpoint.dir / state["upstream"]).st_mode & 0o777 == 0o600


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


# --- integrity (issue 27 item 2) ---------------------------------------------------------------


@pytest.mark.parametrize("artifact", ["model", "code"])
def test_a_tampered_model_or_code_bundle_is_refused_and_nothing_new_is_served(
    endpoint, register_version, emulator_connection, artifact
):
    first = endpoint.deploy(register_version(10))
    second = register_version(12)
    uri = (
        second.model_data_url
        if artifact == "model"
        else (second.environment["SAGEMAKER_SUBMIT_DIRECTORY"])
    )
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    s3 = emulator_connection.client("s3")
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    planted = io.BytesIO()
    with tarfile.open(fileobj=planted, mode="w:gz") as tar:  # a planted inference.py
        data = b"import os\nos.system('id')\n"
        info = tarfile.TarInfo("inference.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=bucket, Key=key, Body=planted.getvalue())
    try:
        with pytest.raises(MlopsError) as refused:
            endpoint.deploy(second)
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)  # the session's other tests
    message = str(refused.value)
    assert f"The {artifact} artifact of model version {second.version} ({uri})" in message
    assert f"expected sha256 {second.artifact_sha256(artifact)}" in message
    assert f"got {hashlib.sha256(planted.getvalue()).hexdigest()}" in message
    # Nothing new runs or was unpacked; the first version serves on.
    assert model_servers_under(endpoint.dir) == [first.model_server_pid]
    assert not list((endpoint.dir / "releases").glob(f"v{second.version}-*"))
    code, headers, _ = call(
        endpoint.port, "POST", "/invocations", ROW.encode(), {"Content-Type": "text/csv"}
    )
    assert (code, headers["X-Mlops-Model-Version"]) == (200, str(first.version))


def test_a_version_that_records_no_digests_is_not_served(
    endpoint, register_version, emulator_connection
):
    version = register_version(10)
    unpinned = replace(version, customer_metadata={})  # registered before digests existed
    with pytest.raises(MlopsError, match="records no sha256 of its model artifact"):
        endpoint.deploy(unpinned)
    assert model_servers_under(endpoint.dir) == []


# --- a supervised endpoint, ownership (issue 28 items 1 and 2) ----------------------------------


def serving_pid(endpoint: LocalEndpoint, other_than: int, timeout: float = 60.0) -> int:
    """The model server the state names once it is a live one other than ``other_than``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = json.loads(endpoint.state_file.read_text()).get("model_server_pid")
        if pid != other_than and psutil.pid_exists(pid):
            return pid
        time.sleep(0.05)
    raise AssertionError(f"no model server replaced pid {other_than} within {timeout:.0f} s")


def test_a_killed_model_server_is_replaced_while_its_workers_serve_on(endpoint, register_version):
    version = register_version(10)
    status = endpoint.deploy(version)
    with ClientLoop(endpoint.port) as clients:
        killed_at = time.monotonic()
        os.kill(status.model_server_pid, signal.SIGKILL)
        replacement = serving_pid(endpoint, status.model_server_pid)
        time.sleep(1.0)
    assert clients.failures() == []  # its workers answered until the new ones took over
    answered = [t for t, _, _ in clients.results]
    gaps = [b - a for a, b in itertools.pairwise(answered) if b > killed_at]
    assert max(gaps) < 5.0  # the bound; nothing waits on the accept queue
    assert model_servers_under(endpoint.dir) == [replacement]
    assert endpoint.status().running
    # The dead server's workers left once the new ones were named.
    workers = psutil.Process(replacement).children()
    assert {w.pid for w in owned_processes(endpoint.dir)} == {
        status.front_pid,
        replacement,
        *(w.pid for w in workers),
    }


def test_with_no_worker_left_the_front_answers_503_until_a_server_is_back(
    endpoint, register_version
):
    status = endpoint.deploy(register_version(10))
    with ClientLoop(endpoint.port) as clients:
        os.killpg(status.model_server_pid, signal.SIGKILL)  # the server and its workers
        killed_at = time.monotonic()
        replacement = serving_pid(endpoint, status.model_server_pid)
        time.sleep(1.0)
    # In-flight requests die with their workers; after that each gets an answer at once:
    # 503 with Retry-After while nothing serves, then 200 again.
    later = [(t, code) for t, code, _ in clients.results if t > killed_at + 0.5]
    assert {code for _, code in later} <= {200, 503}
    assert later[-1][1] == 200
    assert len([r for r in clients.failures() if r[1] == 0]) <= 3  # one per client at most
    assert model_servers_under(endpoint.dir) == [replacement]


def test_a_damaged_endpoint_record_is_named_and_deploy_and_destroy_stop_everything(
    endpoint, register_version, tmp_path
):
    first = endpoint.deploy(register_version(10))
    text = endpoint.state_file.read_text()
    endpoint.state_file.write_text(text[: len(text) // 2])  # truncated
    status = endpoint.status()
    assert not status.running
    assert f"The endpoint record {endpoint.state_file} is damaged" in status.detail
    assert "`invoke deploy` stops the endpoint's servers" in status.detail
    second = endpoint.deploy(register_version(12))  # stops what it finds, starts afresh
    assert second.running
    assert not psutil.pid_exists(first.model_server_pid) or (
        psutil.Process(first.model_server_pid).status() == psutil.STATUS_ZOMBIE
    )
    assert model_servers_under(endpoint.dir) == [second.model_server_pid]
    for record in (endpoint.state_file, endpoint.front_file):
        record.write_text("{")
    assert stop_local_endpoints(tmp_path) == 1  # destroy's stop: by owner marker
    assert owned_processes(endpoint.dir) == []
    with pytest.raises(ConnectionRefusedError):
        call(endpoint.port, "GET", "/ping")


# --- reject during deploy (issue 28 item 7) ---------------------------------------------------


def test_a_version_rejected_while_it_deploys_is_never_served(
    endpoint, register_version, emulator_connection, tmp_path
):
    first = endpoint.deploy(register_version(10))
    second = register_version(12)
    registry = Registry(emulator_connection, CONFIG.model_package_group_name, lock_dir=tmp_path)
    deployer = SimpleNamespace(registry=registry, endpoint=endpoint.name)
    guard = StageDeployer.still_approved(deployer, second)  # the deployers' own guard
    outcome: list[BaseException | None] = []

    def deploy() -> None:
        try:
            endpoint.deploy(second, guard=guard)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=deploy)
    thread.start()
    # Reject while the new model server is starting (its log appears when it is spawned).
    deadline = time.monotonic() + 120
    while not list((endpoint.dir / "releases").glob(f"v{second.version}-*/model_server.log")):
        assert time.monotonic() < deadline
        assert thread.is_alive()
        time.sleep(0.01)
    registry.set_status(second.version, REJECTED, "found a leak", "pytest")
    thread.join(timeout=300)
    assert isinstance(outcome[0], MlopsError)
    assert f"Model version {second.version} became Rejected while it was being deployed" in str(
        outcome[0]
    )
    assert model_servers_under(endpoint.dir) == [first.model_server_pid]
    code, headers, _ = call(
        endpoint.port, "POST", "/invocations", ROW.encode(), {"Content-Type": "text/csv"}
    )
    assert (code, headers["X-Mlops-Model-Version"]) == (200, str(first.version))


def test_model_servers_and_workers_stop_when_the_front_is_killed(endpoint, register_version):
    """A group kill (or any kill -9) of the front leaves no model server holding the port:
    each server watches the front, and an orphaned worker does too."""
    status = endpoint.deploy(register_version(10))
    server = psutil.Process(status.model_server_pid)
    workers = server.children()
    assert workers
    psutil.Process(status.front_pid).kill()
    _, alive = psutil.wait_procs([server, *workers], timeout=30)
    assert alive == []
    assert owned_processes(endpoint.dir) == []
    assert not processes_listening(endpoint.port)


def processes_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
