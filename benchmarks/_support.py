"""What the endpoint benchmarks share: throwaway settings, a trained and approved model
version, the handlers' in-process time, and a loopback round trip."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.definition.parameters import RunParameters
from pipelines.launch import prepare as run
from pipelines.registry import APPROVED, Registry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_settings(prefix: str) -> Iterator[tuple[Settings, Path]]:
    """Settings with their own state folder and free emulator and endpoint ports, so a
    benchmark never touches the user's stack; yields them and the temporary folder,
    which is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as temp:
        settings = Settings.load(
            None,
            environ={
                **os.environ,
                "MLOPS_STATE_DIR": str(Path(temp) / "state"),
                "MLOPS_EMULATOR_PORT": str(free_port()),
                "MLOPS_ENDPOINT_PORT": str(free_port()),
            },
        )
        yield settings, Path(temp)


def approved_version(settings: Settings, stack, config, timeout: float = 600):
    """Run the pipeline with its default parameters and approve the version it registers."""
    prepared = run.prepare_run(stack.connection, config, RunParameters(), None)
    backend = LocalBackend(settings, stack.connection)
    execution = backend.wait(backend.start(prepared).execution_id, timeout=timeout)
    if execution.status != "Succeeded":
        raise SystemExit(f"the pipeline run {execution.status}: {execution.failure_reason}")
    registry = Registry(stack.connection, config.model_package_group_name)
    return registry.set_status(None, APPROVED, "benchmark", "benchmark")


IN_PROCESS = """
import json, sys, time, importlib.util
code, program, model_dir = sys.argv[1], sys.argv[2], sys.argv[3]
rows = json.loads(sys.argv[4])
sys.path.insert(0, code)
spec = importlib.util.spec_from_file_location("inference", code + "/" + program)
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
model = module.model_fn(model_dir)
i = 0
for line in sys.stdin:  # each line: seconds to measure for; one JSON list back
    times, deadline = [], time.perf_counter() + float(line)
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        data = module.input_fn(rows[i % len(rows)], "text/csv")
        module.output_fn(module.predict_fn(data, model), "text/csv")
        times.append(time.perf_counter() - started); i += 1
    print(json.dumps(times), flush=True)
"""


class HandlerTimer:
    """Times ``input_fn -> predict_fn -> output_fn`` of single rows, called back to back in
    the model's runtime (``python``) with the release's code and model, loaded once: so
    the handlers can be timed in short slices between HTTP measurements, under the same
    load on a shared machine, rather than once at another moment."""

    def __init__(
        self, release: Path, python: str, rows: list[str], program: str = "inference.py"
    ) -> None:
        self.process = subprocess.Popen(
            [python, "-c", IN_PROCESS, str(release / "code"), program, str(release / "model"),
             json.dumps(rows[:200])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={"PATH": os.environ["PATH"]},
        )  # fmt: skip

    def measure(self, seconds: float) -> list[float]:
        """Seconds of each call, for ``seconds``."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{seconds}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the handler timer exited ({self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> HandlerTimer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def in_process(
    release: Path, python: str, rows: list[str], seconds: float, program: str = "inference.py"
) -> list[float]:
    """Seconds of each ``input_fn -> predict_fn -> output_fn`` of single rows, for
    ``seconds`` (see :class:`HandlerTimer`)."""
    with HandlerTimer(release, python, rows, program) as timer:
        return timer.measure(seconds)


def _echo(listener: socket.socket, cpus: set[int] | None = None) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    connection, _ = listener.accept()
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := connection.recv(1):
        connection.sendall(data)
    connection.close()


def loopback_rtt(
    samples: int = 2000, cpus: set[int] | None = None, echo_cpus: set[int] | None = None
) -> list[float]:
    """Seconds of each 1-byte ping-pong over one keep-alive TCP connection on 127.0.0.1,
    between this process and an echo process (two processes, as client and server are),
    optionally held to CPUs (this side to ``cpus`` meanwhile, the echo to ``echo_cpus``)."""
    held = os.sched_getaffinity(0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        echo = multiprocessing.get_context("fork").Process(target=_echo, args=(listener, echo_cpus))
        echo.start()
        try:
            if cpus is not None:
                os.sched_setaffinity(0, cpus)
            with socket.create_connection(listener.getsockname()) as client:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                times = []
                for _ in range(samples):
                    started = time.perf_counter()
                    client.sendall(b"x")
                    client.recv(1)
                    times.append(time.perf_counter() - started)
        finally:
            os.sched_setaffinity(0, held)
            echo.join(timeout=10)
            if echo.is_alive():
                echo.kill()
                echo.join()
    return times


def hold_to_cpus(pids: list[int], cpus: set[int] | None) -> None:
    """Let processes (and their children) run only on ``cpus``; on every CPU for None."""
    every = set(range(os.cpu_count() or 1))
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for each in [process, *process.children(recursive=True)]:
                each.cpu_affinity(sorted(cpus if cpus is not None else every))
        except psutil.NoSuchProcess:
            continue
