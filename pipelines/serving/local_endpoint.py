"""The local endpoint: deploy, swap, inspect and stop, with no failed request in between.

Two kinds of background processes, both on 127.0.0.1:
- one front (pipelines.serving.front) that owns the endpoint's port for the endpoint's
  life and hands its listening socket to the model servers; it also ships captured data,
  and starts a new model server in place of one that died;
- a model server per deployed version (pipelines.serving.model_server), in the model
  image's runtime, with one worker process per CPU that accepts from the endpoint's port
  while its version is the one routed, and a private Unix socket (0600) for health checks
  and for the share of a canary or linear shift that another version's workers forward.

A deploy downloads the version's model and code and checks each against the sha256 its
model package recorded at registration (nothing is unpacked or loaded otherwise), starts
the new model server, health-checks it on its socket, re-checks under the registry's lock
that the version is still Approved and switches the endpoint to it (an atomic rename of
the state file, which every worker watches), checks that the endpoint answers with the new
version, and only then stops the old model server, whose workers finish what they serve
and close their kept connections cleanly. The deployment is also recorded in the emulator
(model, endpoint config, endpoint), so ``describe_endpoint`` shows what is deployed.

Every server carries its endpoint's folder in its environment (``MLOPS_ENDPOINT_OWNER``),
so a deploy, a down or a destroy stops what the endpoint started even when its records
(``endpoint.json``, ``front.json``) are damaged or gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.containers.environments import JobRuntime
from pipelines.core import processes
from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.core.files import write_json_atomically
from pipelines.core.locks import exclusive
from pipelines.core.processes import LOOPBACK
from pipelines.core.s3io import parse_s3_uri
from pipelines.definition.code_package import ARTIFACTS
from pipelines.registry import ModelVersion
from pipelines.serving.front import HANDOUT, SERVER_SPEC
from pipelines.serving.invocations import VERSION_HEADER
from pipelines.serving.model_runtime import (
    CODE_ENVIRON,
    builtin_handlers,
    model_server_environment,
    model_server_runtime,
)
from pipelines.serving.model_server import WORKERS_ENVIRON

_MODEL_SERVER = "pipelines.serving.model_server"
_FRONT = "pipelines.serving.front"
_DRAIN_SECONDS = 1.0
OWNER_ENVIRON = "MLOPS_ENDPOINT_OWNER"
_RECORDS = ("endpoint.json", "front.json")
# A context that holds the registry's lock and raises unless the version is still Approved.
Watch = Callable[[], "str | None"]  # a reason to roll back now, or None
Guard = Callable[[], contextlib.AbstractContextManager[None]]


def _no_alarm() -> str | None:
    return None


class DamagedRecord(MlopsError):
    """One of the endpoint's JSON records cannot be read."""


@dataclass(frozen=True)
class EndpointStatus:
    running: bool
    name: str
    url: str
    version: int | None = None
    package_arn: str | None = None
    front_pid: int | None = None
    model_server_pid: int | None = None
    detail: str = ""
    release: str | None = None  # the serving release's folder (its model server log)
    # During a canary or linear shift: (version, share of requests) of each variant.
    traffic: tuple[tuple[int | None, float], ...] = ()


def _get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)
    except OSError:
        return 0, {}


def connect_unix(path: Path, timeout: float) -> socket.socket:
    """A connection to the Unix socket at ``path``; a path longer than a socket address
    holds (about 100 bytes) is reached through its folder's descriptor (Linux)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if len(os.fsencode(str(path))) < 100:
            sock.connect(str(path))
        else:
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                sock.connect(f"/proc/self/fd/{folder}/{path.name}")
            finally:
                os.close(folder)
    except BaseException:
        sock.close()
        raise
    return sock


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = connect_unix(self.path, self.timeout)


def ping_server(path: Path, timeout: float = 2.0) -> tuple[int, dict[str, str]]:
    """``GET /ping`` on a model server's own socket: (status, headers), 0 if unreachable."""
    connection = UnixHTTPConnection(path, timeout)
    try:
        connection.request("GET", "/ping")
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.headers)
    except (OSError, http.client.HTTPException):
        return 0, {}
    finally:
        connection.close()


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _extract(archive: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(destination, filter="data")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalEndpoint:
    def __init__(
        self,
        state_dir: Path,
        connection: AwsConnection,
        *,
        name: str,
        port: int,
        role_arn: str,
        capture_uri: str = "",
        capture_percent: float = 0.0,
        tags: dict[str, str] | None = None,
        runtime_cache: Path | None = None,
        host_runtime: bool = False,
    ) -> None:
        if connection.endpoint_url is None or connection.ca_bundle is None:
            raise MlopsError("The local endpoint records itself in the emulator; it needs it.")
        self.connection = connection
        self.name = name
        self.port = port
        self.role_arn = role_arn
        self.capture_uri = capture_uri
        self.capture_percent = capture_percent
        self.tags = tags or {}
        # Where the inference image's runtime environment is built (serving.model_runtime);
        # None or host_runtime: the model server runs on the host interpreter.
        self.runtime_cache = runtime_cache
        self.host_runtime = host_runtime
        self.dir = state_dir / "endpoints" / name
        self.state_file = self.dir / "endpoint.json"
        self.front_file = self.dir / "front.json"
        self.spool = self.dir / "capture"
        # A batch transform's endpoint: its front stops when this process is gone.
        self.owner_pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # --- status -----------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return _record(self.state_file)

    def _front(self) -> dict[str, Any]:
        return _record(self.front_file)

    def status(self) -> EndpointStatus:
        try:
            state, front = self._state(), self._front()
        except DamagedRecord as damage:
            return EndpointStatus(False, self.name, self.url, detail=str(damage))
        front_pid = front.get("pid")
        server_pid = state.get("model_server_pid")
        base = {
            "name": self.name,
            "url": f"http://{LOOPBACK}:{front.get('port', self.port)}",
            "version": state.get("version"),
            "package_arn": state.get("package_arn"),
            "front_pid": front_pid,
            "model_server_pid": server_pid,
            "release": state.get("release"),
            "traffic": tuple(
                (v.get("version"), float(v["weight"])) for v in state.get("variants", [])
            ),
        }
        if not processes.is_ours(front_pid, _FRONT, self.name):
            return EndpointStatus(False, detail="not running", **base)
        code, _ = _get(f"{base['url']}/ping")
        if code != 200:
            if not processes.is_ours(server_pid, _MODEL_SERVER, str(self.dir)):
                return EndpointStatus(False, detail="the front runs but no model server", **base)
            return EndpointStatus(False, detail=f"/ping answered {code}", **base)
        detail = f"serving version {state.get('version')}"
        if not processes.is_ours(server_pid, _MODEL_SERVER, str(self.dir)):
            detail += " (its model server died: the front is starting another)"
        return EndpointStatus(True, detail=detail, **base)

    # --- deploy ------------------------------------------------------------------------------

    def deploy(
        self,
        version: ModelVersion,
        timeout: float = 120.0,
        shift: Sequence[tuple[float, float]] = (),
        guard: Guard | None = None,
        watch: Watch | None = None,
    ) -> EndpointStatus:
        """Serve ``version``. Deploys and downs of one endpoint are serialised across
        processes, so two concurrent deploys never start two fronts or lose a server.

        ``shift`` is a traffic shift (canary, linear): ``(share, bake seconds)`` steps, each
        sending that share of requests to the new version while the old one serves the rest.
        The new model server is health-checked throughout each bake; if it fails, the
        endpoint goes back to the old version alone and the deploy raises.

        ``guard`` wraps every write of the state that sends traffic to the new version: it
        holds the registry's lock and raises unless the version is still Approved, so a
        version rejected while it was being deployed is never served.

        ``watch`` is asked throughout each bake, as SageMaker watches a blue/green update's
        rollback alarms: a reason (an alarm in ALARM) rolls the shift back and the deploy
        raises it.
        """
        with self._lock():
            return self._deploy(
                version, timeout, shift, guard or contextlib.nullcontext, watch or _no_alarm
            )

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return exclusive(self.dir / "endpoint.lock", what=f"the lock of endpoint {self.name}")

    def _deploy(
        self,
        version: ModelVersion,
        timeout: float,
        shift: Sequence[tuple[float, float]],
        guard: Guard,
        watch: Watch,
    ) -> EndpointStatus:
        release = self.dir / "releases" / f"v{version.version}-{int(time.time() * 1000)}"
        try:
            model_dir, code_dir, program = self._materialize(version, release)
        except BaseException:
            shutil.rmtree(release, ignore_errors=True)  # nothing half-downloaded stays
            raise
        runtime = model_server_runtime(
            version.image, self.runtime_cache, host=self.host_runtime, notify=_to_stderr
        )
        try:
            previous = self._state()
            self._front()
        except DamagedRecord as damage:
            _to_stderr(
                f"{damage} Stopping the servers of endpoint {self.name} (found by their "
                "owner marker) and starting it afresh."
            )
            stop_endpoint_processes(self.dir)
            previous = {}
        if previous and not self._front_alive():
            # A front that died leaves its model servers holding the port: start afresh.
            _to_stderr(f"The front of endpoint {self.name} had stopped; restarting the endpoint.")
            stop_endpoint_processes(self.dir)
            previous = {}
        self._ensure_front(timeout)
        try:
            server_pid, server_socket = self._start_model_server(
                release, model_dir, code_dir, program, timeout, runtime, version
            )
        except BaseException:
            if not previous:  # nothing serves: the front need not hold the port
                stop_endpoint_processes(self.dir)
            raise
        # Until the endpoint serves the new version, a failure leaves the previous one
        # serving and no new process behind.
        try:
            code, _ = ping_server(self.dir / server_socket)
            if code != 200:
                raise MlopsError(
                    f"The new model server failed its health check (/ping answered {code})."
                )
            if previous.get("upstream"):
                for share, bake in shift:
                    self._shift(
                        previous, version, server_pid, server_socket, share, bake, guard, watch
                    )
            with guard():
                write_json_atomically(
                    self.state_file,
                    {
                        "upstream": server_socket,
                        "model_server_pid": server_pid,
                        "version": version.version,
                        "package_arn": version.arn,
                        "release": str(release),
                        "deployed_at": time.time(),
                    },
                )
            self._wait_for_version(version.version, timeout)
        except BaseException:
            # The state goes back first, so the previous server accepts again before the
            # new one stops; with no previous version, the front is stopped too.
            if previous:
                write_json_atomically(self.state_file, previous)
            else:
                self.state_file.unlink(missing_ok=True)
            processes.terminate(server_pid)
            if not previous:
                stop_endpoint_processes(self.dir)
            raise
        old_pid = previous.get("model_server_pid")
        if old_pid and old_pid != server_pid:
            # Its workers stopped accepting at the switch; kept connections get their last
            # answer with "Connection: close" meanwhile, and SIGTERM lets the rest finish.
            time.sleep(_DRAIN_SECONDS)
            processes.terminate(old_pid)
        self._record_in_emulator(version)
        return self.status()

    def serve_model(self, container: dict[str, Any], timeout: float = 120.0) -> None:
        """Serve a CreateModel container (``Image``, ``ModelDataUrl``, ``Environment``) on
        this endpoint's port, with the same front and model server as a deploy, for a batch
        transform job. Its artifacts are downloaded as SageMaker's batch transform does:
        a model carries no registered digest to check them against. On failure nothing
        is left running."""
        environment = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
        version = ModelVersion(
            arn=str(container.get("ModelName", self.name)),
            version=1,
            status="",
            created_at=time.time(),
            image=str(container.get("Image", "")),
            model_data_url=str(container.get("ModelDataUrl", "")),
            environment=environment,
        )
        code_uri = environment.get(CODE_ENVIRON)
        builtin = builtin_handlers(version.image, environment)
        if not version.model_data_url or not (code_uri or builtin):
            raise MlopsError(
                f"Model {version.arn} has no ModelDataUrl, or no inference code "
                f"({CODE_ENVIRON}) and an image ({version.image or 'none'}) with no built-in "
                "algorithm to serve it."
            )
        with self._lock():
            release = self.dir / "releases" / "model"
            release.mkdir(parents=True, exist_ok=True)
            try:
                _extract(
                    self.download(version.model_data_url, release / "model.tar.gz"),
                    release / "model",
                )
                if code_uri:
                    _extract(self.download(code_uri, release / "code.tar.gz"), release / "code")
                    code_dir = release / "code"
                    program = environment.get("SAGEMAKER_PROGRAM", "inference.py")
                else:
                    code_dir, program = builtin  # type: ignore[misc]
                runtime = model_server_runtime(
                    version.image, self.runtime_cache, host=self.host_runtime, notify=_to_stderr
                )
                self._ensure_front(timeout)
                pid, server_socket = self._start_model_server(
                    release, release / "model", code_dir, program, timeout, runtime, version
                )
                write_json_atomically(
                    self.state_file,
                    {"upstream": server_socket, "model_server_pid": pid, "version": 1},
                )
                self._wait_for_version(1, timeout)
            except BaseException:
                stop_endpoint_processes(self.dir)
                raise

    def _shift(
        self,
        previous: dict[str, Any],
        version: ModelVersion,
        server_pid: int,
        server_socket: str,
        share: float,
        bake: float,
        guard: Guard,
        watch: Watch,
    ) -> None:
        """Route ``share`` of requests to the new server for ``bake`` seconds, checking it
        and the rollback alarms."""
        with guard():
            write_json_atomically(
                self.state_file,
                {
                    **previous,
                    "variants": [
                        {
                            "address": previous["upstream"],
                            "version": previous.get("version"),
                            "weight": round(1 - share, 6),
                        },
                        {"address": server_socket, "version": version.version, "weight": share},
                    ],
                    "canary_pid": server_pid,
                },
            )
        deadline = time.monotonic() + bake
        while True:
            code, _ = ping_server(self.dir / server_socket)
            if code != 200:
                raise MlopsError(
                    f"Version {version.version} failed its health check during the bake at "
                    f"{share:.0%} of traffic (/ping answered {code}); rolled back to version "
                    f"{previous.get('version')}."
                )
            alarm = watch()
            if alarm is not None:
                raise MlopsError(
                    f"{alarm} during the bake of version {version.version} at {share:.0%} of "
                    f"traffic; rolled back to version {previous.get('version')}."
                )
            if time.monotonic() >= deadline:
                return
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _materialize(self, version: ModelVersion, release: Path) -> tuple[Path, Path, str]:
        """The model artifact and the inference code of the package, each downloaded (the
        S3 version recorded at registration, where the bucket keeps versions), checked
        against its registered sha256, and only then unpacked; the code folder and its
        entry point. A package with no code of its own whose image serves it by a built-in
        algorithm (XGBoost) is served by that algorithm's handlers, its model alone checked."""
        code_uri = version.environment.get(CODE_ENVIRON)
        builtin = builtin_handlers(version.image, version.environment)
        if not version.model_data_url or not (code_uri or builtin):
            raise MlopsError(
                f"Model version {version.version} has no model data or no inference code "
                f"({CODE_ENVIRON}) in its container definition, and its image "
                f"{version.image or '(none)'} has no built-in algorithm that serves it."
            )
        release.mkdir(parents=True, exist_ok=True)
        artifacts = [(version.model_data_url, "model")]
        if code_uri:
            artifacts.append((code_uri, "code"))
        for uri, name in artifacts:
            expected = version.artifact_sha256(name)
            if expected is None:
                raise MlopsError(
                    f"Model version {version.version} records no sha256 of its {name} "
                    f"artifact ({ARTIFACTS[name].sha256} in CustomerMetadataProperties): "
                    "it was registered before digests were recorded, so it cannot be "
                    "verified and is not served. Run the pipeline to register a new version."
                )
            archive = self.download(
                uri, release / f"{name}.tar.gz", version.artifact_version_id(name)
            )
            actual = _sha256(archive)
            if actual != expected:
                raise MlopsError(
                    f"The {name} artifact of model version {version.version} ({uri}) is not "
                    f"what was registered: expected sha256 {expected}, got {actual}. It was "
                    "changed after registration, so nothing was unpacked or served."
                )
            _extract(archive, release / name)
        if builtin:
            return release / "model", *builtin
        program = version.environment.get("SAGEMAKER_PROGRAM", "inference.py")
        return release / "model", release / "code", program

    def download(self, uri: str, archive: Path, version_id: str | None = None) -> Path:
        bucket, key = parse_s3_uri(uri)
        extra = {"VersionId": version_id} if version_id else None
        try:
            self.connection.client("s3").download_file(bucket, key, str(archive), ExtraArgs=extra)
        except (ClientError, BotoCoreError) as error:
            raise MlopsError(f"Cannot download {uri}: {error}") from error
        return archive

    def _start_model_server(
        self,
        release: Path,
        model_dir: Path,
        code_dir: Path,
        program: str,
        timeout: float,
        runtime: JobRuntime,
        version: ModelVersion,
    ) -> tuple[int, str]:
        """Start the version's model server; its pid and its socket (relative to the
        endpoint's folder, where every server runs: a socket path must stay short)."""
        ready = release / "ready.json"
        server_socket = f"{release.relative_to(self.dir)}/server.sock"
        command = [
            runtime.python,
            "-m",
            _MODEL_SERVER,
            "--model-dir",
            str(model_dir),
            "--code-dir",
            str(code_dir),
            "--program",
            program,
            "--front-socket",
            HANDOUT,
            "--socket",
            server_socket,
            "--state-file",
            str(self.state_file),
            "--version",
            str(version.version),
            "--ready-file",
            str(ready),
            "--load-timeout",
            str(timeout),
        ]
        workers = version.environment.get(WORKERS_ENVIRON, "")
        if workers.isdigit():
            command += ["--workers", workers]
        front_pid = self._front().get("pid")
        if isinstance(front_pid, int):
            # The server and its workers stop when the front is gone: nothing else would
            # stop them, or start another in a dead one's place.
            command += ["--front-pid", str(front_pid)]
        if self.capture_uri and self.capture_percent > 0:
            command += [
                "--capture-spool",
                str(self.spool),
                "--capture-percent",
                str(self.capture_percent),
            ]
        env = {
            **model_server_environment(runtime, dict(os.environ), version.environment),
            OWNER_ENVIRON: self.owner,
        }
        # What the front needs to start this server again if it dies.
        write_json_atomically(
            release / SERVER_SPEC,
            {"command": command, "env": env, "ready": str(ready), "timeout": timeout},
        )
        log = release / "model_server.log"
        process = processes.spawn(command, log, env=env, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise MlopsError(
                    "The model server exited while loading the model:\n"
                    + processes.log_tail(log, 15)
                )
            if ready.is_file():
                return process.pid, server_socket
            time.sleep(0.05)
        processes.terminate(process.pid)
        raise MlopsError(f"The model server did not start within {timeout:.0f} s.")

    @property
    def owner(self) -> str:
        """The owner marker every server of this endpoint carries in its environment."""
        return str(self.dir.resolve())

    def _front_alive(self) -> bool:
        try:
            front = self._front()
        except DamagedRecord:
            return False
        return processes.is_ours(front.get("pid"), _FRONT, self.name)

    def _ensure_front(self, timeout: float) -> None:
        if self._front_alive():
            return
        # A front (or servers) whose records were lost still hold the port: stop them.
        stop_endpoint_processes(self.dir)
        if processes.port_in_use(self.port):
            raise MlopsError(
                f"Port {self.port} on {LOOPBACK} is already in use by another program. Choose "
                "another with MLOPS_ENDPOINT_PORT (or mlops.endpoint.port in invoke.yaml)."
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            _FRONT,
            "--port",
            str(self.port),
            "--endpoint-name",
            self.name,
        ]
        if self.capture_uri and self.capture_percent > 0:
            command += [
                "--capture-uri",
                self.capture_uri,
                "--capture-spool",
                str(self.spool),
                "--emulator-endpoint",
                str(self.connection.endpoint_url),
                "--ca-bundle",
                str(self.connection.ca_bundle),
                "--region",
                self.connection.region,
            ]
        if self.owner_pid is not None:
            command += ["--owner-pid", str(self.owner_pid)]
        handout = self.dir / HANDOUT
        handout.unlink(missing_ok=True)
        process = processes.spawn(
            command,
            self.dir / "front.log",
            env={**os.environ, OWNER_ENVIRON: self.owner},
            cwd=self.dir,
        )
        write_json_atomically(self.front_file, {"pid": process.pid, "port": self.port})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise MlopsError(
                    f"The endpoint's front exited: {processes.log_tail(self.dir / 'front.log', 5)}"
                )
            if handout.exists():
                return
            time.sleep(0.05)
        processes.terminate(process.pid)
        raise MlopsError(f"The endpoint's front did not start within {timeout:.0f} s.")

    def _wait_for_version(self, version: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, headers = _get(f"{self.url}/ping")
            if code == 200 and headers.get(VERSION_HEADER) == str(version):
                return
            time.sleep(0.05)
        raise MlopsError(
            f"The endpoint did not switch to version {version} within {timeout:.0f} s."
        )

    def _record_in_emulator(self, version: ModelVersion) -> None:
        """Model, endpoint config and endpoint in the emulator, as a SageMaker deploy would."""
        sagemaker = self.connection.client("sagemaker")
        model = config = f"{self.name}-v{version.version}"
        tags = [
            {"Key": k, "Value": v}
            for k, v in {**self.tags, "ModelVersion": str(version.version)}.items()
        ]
        try:
            with contextlib.suppress(ClientError):  # already recorded by an earlier deploy
                sagemaker.create_model(
                    ModelName=model,
                    PrimaryContainer={"ModelPackageName": version.arn},
                    ExecutionRoleArn=self.role_arn,
                    Tags=tags,
                )
            with contextlib.suppress(ClientError):
                sagemaker.create_endpoint_config(
                    EndpointConfigName=config,
                    ProductionVariants=[
                        {
                            "VariantName": "AllTraffic",
                            "ModelName": model,
                            "InitialInstanceCount": 1,
                            "InstanceType": "ml.m5.large",
                        }
                    ],
                    Tags=tags,
                )
            try:
                sagemaker.describe_endpoint(EndpointName=self.name)
                sagemaker.update_endpoint(EndpointName=self.name, EndpointConfigName=config)
            except ClientError:
                sagemaker.create_endpoint(
                    EndpointName=self.name, EndpointConfigName=config, Tags=tags
                )
        except (ClientError, BotoCoreError) as error:
            raise MlopsError(f"Could not record the endpoint in the emulator: {error}") from error

    # --- down -----------------------------------------------------------------------------------

    def down(self) -> bool:
        """Stop the model servers and the front, and forget the endpoint in the emulator."""
        with self._lock():
            running = stop_endpoint_processes(self.dir)
        self._forget_in_emulator()
        return running

    def _forget_in_emulator(self) -> None:
        sagemaker = self.connection.client("sagemaker")
        with contextlib.suppress(ClientError, BotoCoreError):
            sagemaker.delete_endpoint(EndpointName=self.name)
        with contextlib.suppress(ClientError, BotoCoreError):
            for config in sagemaker.list_endpoint_configs(NameContains=f"{self.name}-v")[
                "EndpointConfigs"
            ]:
                sagemaker.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
            for model in sagemaker.list_models(NameContains=f"{self.name}-v")["Models"]:
                sagemaker.delete_model(ModelName=model["ModelName"])


def owned_processes(directory: Path) -> list[psutil.Process]:
    """This user's live processes that carry the owner marker of the endpoint in
    ``directory``: its front, model servers and their workers (orphans included)."""
    owner, me, found = str(directory.resolve()), os.getuid(), []
    for process in psutil.process_iter(["environ", "uids"]):
        uids, environ = process.info["uids"], process.info["environ"] or {}
        if uids is not None and uids.real == me and environ.get(OWNER_ENVIRON) == owner:
            with contextlib.suppress(psutil.Error):
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
    return found


def stop_endpoint_processes(directory: Path) -> bool:
    """Stop every server of the endpoint in ``directory``, found by its owner marker and
    by the pids its records name (either may be missing or damaged), and drop the records;
    True when the front was running. Needs no emulator. The caller holds the endpoint's
    lock, so the front starts no server meanwhile."""
    servers: dict[int, psutil.Process] = {}
    fronts: dict[int, psutil.Process] = {}
    for process in owned_processes(directory):
        with contextlib.suppress(psutil.Error):
            command = " ".join(process.cmdline())
            if _FRONT in command:
                fronts[process.pid] = process
            elif _MODEL_SERVER in command:
                servers[process.pid] = process
    records = {name: _record_or_empty(directory / name) for name in _RECORDS}
    for key in ("model_server_pid", "canary_pid"):  # a deploy killed mid-canary has two
        pid = records["endpoint.json"].get(key)
        if pid not in servers and processes.is_ours(pid, _MODEL_SERVER, str(directory)):
            servers[pid] = psutil.Process(pid)
    pid = records["front.json"].get("pid")
    if pid not in fronts and processes.is_ours(pid, _FRONT, directory.name):
        fronts[pid] = psutil.Process(pid)
    # Model servers first (their workers close their capture spool files as they stop,
    # and the front ships those before it exits); a server's workers stop with it, an
    # orphaned worker (its server killed) is asked directly.
    leaders = [p for p in servers.values() if _parent(p) not in servers]
    for process in leaders:
        processes.terminate(process.pid, timeout=15)
    for process in servers.values():
        processes.terminate(process.pid, timeout=5)
    for process in fronts.values():
        processes.terminate(process.pid, timeout=30)
    for name in _RECORDS:
        (directory / name).unlink(missing_ok=True)
    return bool(fronts)


def _parent(process: psutil.Process) -> int | None:
    try:
        return process.ppid()
    except psutil.Error:
        return None


def front_running(directory: Path) -> bool:
    """The endpoint's front is alive (its pid file names a front of this endpoint)."""
    pid = _record_or_empty(directory / "front.json").get("pid")
    return processes.is_ours(pid, _FRONT, directory.name)


def _record(path: Path) -> dict[str, Any]:
    """One of the endpoint's JSON records (state, front pid), or {} when there is none;
    :class:`DamagedRecord` when it cannot be read."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise DamagedRecord(_damaged(path, error)) from error
    if not isinstance(record, dict):
        raise DamagedRecord(_damaged(path, "not a JSON object"))
    return record


def _damaged(path: Path, error: object) -> str:
    return (
        f"The endpoint record {path} is damaged ({error}): `invoke deploy` stops the "
        "endpoint's servers (found by their owner marker) and starts it afresh; "
        "`invoke endpoint-down` stops them."
    )


def _record_or_empty(path: Path) -> dict[str, Any]:
    try:
        return _record(path)
    except DamagedRecord:
        return {}


def stop_local_endpoints(state_dir: Path) -> int:
    """Stop every local endpoint under a state directory; returns how many were running."""
    root = state_dir / "endpoints"
    if not root.is_dir():
        return 0
    running = 0
    for path in sorted(root.iterdir()):
        if path.is_dir():
            with exclusive(path / "endpoint.lock", what=f"the lock of endpoint {path.name}"):
                running += stop_endpoint_processes(path)
    return running
