"""The background process that runs one local execution.

``python -m pipelines.executor.worker --db PATH --execution-id ID``. Started by the
local backend in its own session, so the run survives ``--no-wait`` and a Ctrl-C in
the terminal reaches the task, which asks for a stop with SIGTERM instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.aws import AwsConnection
from pipelines.core.errors import MlopsError
from pipelines.core.records import FAILED, Execution
from pipelines.emulator.aws_proxy import AwsHostsProxy, proxied_aws_environment
from pipelines.executor.engine import Engine
from pipelines.executor.store import ExecutionNotFound, ExecutionStore
from pipelines.executor.toolkit import allowed_host_environment


def job_environment(connection: AwsConnection, proxy_url: str) -> dict[str, str]:
    """What a job process sees: only the emulator, with the project's CA; no real identity,
    and of the host's variables only the allow-listed locale ones (a container starts
    with an environment of its own, not the user's shell).

    A job that calls AWS itself, with its image's boto3 of any version, reaches the
    emulator through the AWS-hosts proxy at ``proxy_url``, signing with the emulator's
    key in the stack's region. The executor runs only on the local target: on SageMaker
    the job's execution role provides the credentials and the region, and AWS's own
    endpoints answer."""
    if connection.ca_bundle is None or connection.endpoint_url is None:
        raise ValueError("job_environment needs the emulator connection")
    env = proxied_aws_environment(
        allowed_host_environment(os.environ),
        proxy_url=proxy_url,
        ca_bundle=connection.ca_bundle,
        region=connection.region,
    )
    env["PYTHONUNBUFFERED"] = "1"
    # Keep the unpacked code folders free of bytecode.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _log(line: str) -> None:
    print(line, flush=True)  # the worker's stdout is its log file


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until_owner(
    store: ExecutionStore, execution_id: str, timeout: float = 900.0, starter: int | None = None
) -> Execution | None:
    """The execution, once its record names this process as its worker; None if it
    never does. The starter spawns the worker before it writes the record (as early as
    it prepares the run), so a reader never sees a running execution whose owner it
    cannot check; a starter that dies first leaves no worker waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(starter):
        try:
            execution = store.get_execution(execution_id)
        except ExecutionNotFound:
            execution = None
        if execution is not None and execution.worker_pid == os.getpid():
            return None if execution.finished else execution
        time.sleep(0.02)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipelines.executor.worker")
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--execution-id", required=True)
    parser.add_argument("--starter-pid", type=int, default=None)
    args = parser.parse_args(argv)

    store = ExecutionStore(args.db)
    execution = wait_until_owner(store, args.execution_id, starter=args.starter_pid)
    if execution is None:
        # The starter died (or chose another worker) before recording us: not our run.
        store.close()
        return 0
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    runtime = execution.runtime
    connection = AwsConnection.from_emulator_record(runtime)
    try:
        connection.client("s3").list_buckets()
    except (ClientError, BotoCoreError) as error:
        store.update_execution(
            execution.execution_id,
            status=FAILED,
            failure_reason=(
                f"The local AWS emulator at {runtime['endpoint']} is not reachable: {error}"
            ),
            ended_at=time.time(),
        )
        return 1

    try:
        # For the run's duration: a thread of this process, so it ends with the run.
        proxy = AwsHostsProxy.for_connection(connection, log=_log).start()
    except MlopsError as error:
        store.update_execution(
            execution.execution_id, status=FAILED, failure_reason=str(error), ended_at=time.time()
        )
        return 1
    try:
        engine = Engine(
            store,
            execution,
            connection,
            work_dir=Path(runtime["work_dir"]),
            job_env=job_environment(connection, proxy.url),
            stop=stop,
        )
        finished = engine.run()
    finally:
        proxy.stop()
    store.close()
    return 0 if finished.status != FAILED else 1


if __name__ == "__main__":
    sys.exit(main())
