"""Canary and linear shifts on the local endpoint, seen by real clients over HTTP."""

from __future__ import annotations

import json
import threading
import time

import psutil
import pytest

from pipelines.core.errors import MlopsError
from pipelines.serving.deploy import capture_destination, endpoint_name
from pipelines.serving.local_endpoint import LocalEndpoint
from tests.serving.conftest import CONFIG
from tests.support import ClientLoop, free_port


@pytest.fixture
def endpoint(tmp_path, emulator_connection, runtime_cache):
    instance = LocalEndpoint(
        tmp_path,
        emulator_connection,
        name=endpoint_name(CONFIG, "prod"),
        port=free_port(),
        role_arn=CONFIG.execution_role_arn,
        capture_uri=capture_destination(CONFIG),
        capture_percent=0,
        runtime_cache=runtime_cache,
    )
    yield instance
    instance.down()


def test_a_linear_shift_raises_the_new_versions_share_step_by_step(endpoint, register_version):
    old, new = register_version(10), register_version(12)
    endpoint.deploy(old)
    steps = [(0.25, 2.0), (0.5, 2.0), (0.75, 2.0)]
    seen, done = set(), threading.Event()

    def watch_status() -> None:  # what `deployments` and the console read during the shift
        while not done.is_set():
            seen.add(endpoint.status().traffic)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_status)
    with ClientLoop(endpoint.port) as clients:
        watcher.start()
        endpoint.deploy(new, shift=steps)
        done.set()
        watcher.join()
    assert clients.failures() == []
    assert {
        ((old.version, 0.75), (new.version, 0.25)),
        ((old.version, 0.5), (new.version, 0.5)),
        ((old.version, 0.25), (new.version, 0.75)),
    } <= seen
    assert endpoint.status().traffic == ()
    # The shift starts when the new version first answers (after its server started).
    started = next(t for t, _, v in clients.results if v == str(new.version))
    shares = []
    for index in range(3):
        # The middle second of each step's bake, clear of the switch moments.
        low, high = started + 2.0 * index + 0.7, started + 2.0 * index + 1.7
        window = [v for t, _, v in clients.results if low <= t <= high]
        shares.append(window.count(str(new.version)) / len(window))
    assert shares[0] < shares[1] < shares[2]
    assert shares[0] == pytest.approx(0.25, abs=0.15)
    assert shares[2] == pytest.approx(0.75, abs=0.15)
    assert clients.results[-1][2] == str(new.version)
    state = json.loads(endpoint.state_file.read_text())
    assert "variants" not in state
    assert endpoint.status().version == new.version


def test_a_canary_that_fails_its_health_check_is_rolled_back(endpoint, register_version):
    old, new = register_version(10), register_version(12)
    endpoint.deploy(old)
    old_server = endpoint.status().model_server_pid

    def kill_the_canary() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = json.loads(endpoint.state_file.read_text())
            if state.get("canary_pid"):
                psutil.Process(state["canary_pid"]).kill()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_canary)
    with ClientLoop(endpoint.port) as clients:
        killer.start()
        with pytest.raises(MlopsError, match="failed its health check during the bake at 30%"):
            endpoint.deploy(new, shift=[(0.3, 30.0)])
        killer.join()
        rolled_back = time.monotonic()
        time.sleep(1.0)
    # No request failed: the old version's workers answer a dead canary's share themselves.
    assert clients.failures() == []
    after = {version for t, _, version in clients.results if t > rolled_back}
    assert after == {str(old.version)}
    assert endpoint.status().model_server_pid == old_server
    assert "variants" not in json.loads(endpoint.state_file.read_text())


def _alarm(connection, name: str) -> None:
    connection.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        MetricName="Invocation5XXErrors",
        Namespace="AWS/SageMaker",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )


def test_a_rollback_alarm_in_alarm_rolls_the_shift_back(
    endpoint, register_version, emulator_connection
):
    """AutoRollbackConfiguration as SageMaker applies it during a blue/green update: an
    alarm going into ALARM while the canary bakes sends all traffic back to the old version."""
    from pipelines.serving.local_deployer import rollback_alarm_watch

    name = f"rollback-{free_port()}"
    _alarm(emulator_connection, name)
    old, new = register_version(10), register_version(12)
    endpoint.deploy(old)
    old_server = endpoint.status().model_server_pid
    watch = rollback_alarm_watch(emulator_connection, (name,))

    def fire_during_the_bake() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if json.loads(endpoint.state_file.read_text()).get("canary_pid"):
                emulator_connection.client("cloudwatch").set_alarm_state(
                    AlarmName=name, StateValue="ALARM", StateReason="5xx on the canary"
                )
                return
            time.sleep(0.05)

    firing = threading.Thread(target=fire_during_the_bake)
    with ClientLoop(endpoint.port) as clients:
        firing.start()
        with pytest.raises(MlopsError, match=f"Rollback alarm {name} went into ALARM"):
            endpoint.deploy(new, shift=[(0.2, 30.0)], watch=watch)
        firing.join()
    assert clients.failures() == []
    assert endpoint.status().model_server_pid == old_server
    assert endpoint.status().version == old.version


def test_a_rollback_alarm_that_does_not_exist_is_refused_first(emulator_connection):
    from pipelines.serving.local_deployer import rollback_alarm_watch

    with pytest.raises(MlopsError, match=r"Rollback alarm.*no-such-alarm.*do not exist"):
        rollback_alarm_watch(emulator_connection, ("no-such-alarm",))
