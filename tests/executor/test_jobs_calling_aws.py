"""Jobs that call AWS themselves, with their image's own boto3, reach the emulator through
the worker's AWS-hosts proxy; nothing else leaves the machine, and the proxy ends with
the worker.

The steps are built with the SageMaker SDK, as in AWS's templates (their preprocess
downloads its input with ``boto3.resource("s3").Bucket(b).download_file(...)``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import tarfile
import time
from pathlib import Path

import pytest
from sagemaker import image_uris
from sagemaker.processing import ProcessingOutput, ScriptProcessor
from sagemaker.sklearn.estimator import SKLearn
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.definition.sdk_session import definition_session
from tests.support import source_tarball

BUCKET = "jobs-calling-aws"
ROLE = "arn:aws:iam::123456789012:role/test"
REGION = "us-east-1"

# What AWS's abalone preprocess does, plus an upload with a client and a request to a host
# that is not AWS's.
SCRIPT = """
import argparse, json, os, urllib.request
import boto3, botocore

parser = argparse.ArgumentParser()
parser.add_argument("--bucket")
parser.add_argument("--output")
args = parser.parse_args()
print("versions", json.dumps([boto3.__version__, botocore.__version__]))
local = os.path.join(args.output, "abalone.csv")
boto3.resource("s3").Bucket(args.bucket).download_file("raw/abalone.csv", local)
with open(local) as handle:
    rows = handle.read().splitlines()
boto3.client("s3").put_object(
    Bucket=args.bucket, Key="written-by-the-job/" + os.environ["STEP"], Body=str(len(rows))
)
try:
    urllib.request.urlopen("https://example.com/", timeout=10)
    print("outside: reached")
except Exception as error:
    print("outside:", error)
"""

TRAIN = """
import os
import boto3
rows = boto3.client("s3").get_object(Bucket=os.environ["BUCKET"], Key="raw/abalone.csv")
with open(os.path.join(os.environ["SM_MODEL_DIR"], "rows.txt"), "w") as handle:
    handle.write(str(len(rows["Body"].read().splitlines())))
print("boto3", boto3.__version__)
"""

SLEEPER = """
import os, time
print("proxy", os.environ["HTTPS_PROXY"], flush=True)
time.sleep(300)
"""


@pytest.fixture(scope="module")
def session(emulator_connection):
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="raw/abalone.csv", Body=b"M,0.455,0.365,15\nF,0.53,0.42,7\n")
    return definition_session(
        REGION,
        BUCKET,
        emulator_connection.session,
        endpoint_url=emulator_connection.endpoint_url,
        ca_bundle=str(emulator_connection.ca_bundle),
    )


@pytest.fixture
def backend(tmp_path, emulator_connection, runtime_cache) -> LocalBackend:
    settings = Settings(
        root=tmp_path, state_dir=tmp_path / ".mlops", runtime_cache_dir=runtime_cache
    )
    return LocalBackend(settings, emulator_connection)


def processors(session) -> dict[str, object]:
    common = {"role": ROLE, "instance_type": "ml.m5.large", "instance_count": 1}
    return {
        "sklearn-1.2-1": SKLearnProcessor(
            framework_version="1.2-1", sagemaker_session=session, **common
        ),
        "xgboost-1.7-1": ScriptProcessor(
            image_uri=image_uris.retrieve("xgboost", region=REGION, version="1.7-1"),
            command=["python3"],
            sagemaker_session=session,
            **common,
        ),
    }


def step(session, connection, name: str, processor, script: str) -> ProcessingStep:
    key = f"code/{name}.py"
    connection.client("s3").put_object(Bucket=BUCKET, Key=key, Body=script.encode())
    return ProcessingStep(
        name=name,
        processor=processor,
        code=f"s3://{BUCKET}/{key}",
        outputs=[
            ProcessingOutput(
                output_name="data",
                source="/opt/ml/processing/output",
                destination=f"s3://{BUCKET}/outputs/{name}",
            )
        ],
        job_arguments=["--bucket", BUCKET, "--output", "/opt/ml/processing/output"],
    )


def log_of(backend: LocalBackend, execution_id: str, name: str) -> str:
    """The step's job log so far; empty before the step has started."""
    for found in backend.steps(execution_id):
        if found.name == name and found.log_path and Path(found.log_path).is_file():
            return Path(found.log_path).read_text()
    return ""


@pytest.mark.parametrize(
    ("runtime", "versions"),
    [("sklearn-1.2-1", ["1.28.57", "1.31.85"]), ("xgboost-1.7-1", ["1.17.52", "1.20.52"])],
)
def test_a_jobs_own_boto3_reaches_the_emulator_and_nothing_else(
    backend, session, emulator_connection, runtime, versions
):
    name = f"Preprocess-{runtime}".replace(".", "-")
    processor = processors(session)[runtime]
    processor.env = {"STEP": name}
    text = Pipeline(
        name="jobs-calling-aws",
        steps=[step(session, emulator_connection, name, processor, SCRIPT)],
        sagemaker_session=session,
    ).definition()
    execution = backend.start_definition("jobs-calling-aws", text, {})
    execution = backend.wait(execution.execution_id, timeout=300)
    log = log_of(backend, execution.execution_id, name)
    assert execution.status == "Succeeded", f"{execution.failure_reason}\n{log}"

    # The image's own boto3, not the host's.
    assert json.loads(log.split("versions ", 1)[1].splitlines()[0]) == versions
    s3 = emulator_connection.client("s3")
    # Downloaded with the resource API, then uploaded by the executor as the step's output.
    downloaded = s3.get_object(Bucket=BUCKET, Key=f"outputs/{name}/abalone.csv")["Body"].read()
    assert downloaded == b"M,0.455,0.365,15\nF,0.53,0.42,7\n"
    # Uploaded by the job itself with a client.
    written = s3.get_object(Bucket=BUCKET, Key=f"written-by-the-job/{name}")["Body"].read()
    assert written == b"2"
    # A host that is not AWS's is refused by the proxy, not attempted.
    assert "Tunnel connection failed: 403 Forbidden" in log.split("outside: ", 1)[1]


def test_a_training_job_reads_s3_with_its_own_boto3(backend, session, emulator_connection):
    source = f"s3://{BUCKET}/train/sourcedir.tar.gz"
    emulator_connection.client("s3").put_object(
        Bucket=BUCKET, Key="train/sourcedir.tar.gz", Body=source_tarball({"train.py": TRAIN})
    )
    estimator = SKLearn(
        entry_point="train.py",
        source_dir=source,
        framework_version="1.4-2",
        py_version="py3",
        role=ROLE,
        instance_type="ml.m5.large",
        environment={"BUCKET": BUCKET},
        output_path=f"s3://{BUCKET}/models",
        sagemaker_session=session,
    )
    text = Pipeline(
        name="jobs-calling-aws",
        steps=[TrainingStep(name="Fit", estimator=estimator)],
        sagemaker_session=session,
    ).definition()
    execution = backend.start_definition("jobs-calling-aws", text, {})
    execution = backend.wait(execution.execution_id, timeout=300)
    log = log_of(backend, execution.execution_id, "Fit")
    assert execution.status == "Succeeded", f"{execution.failure_reason}\n{log}"
    assert "boto3 1.43.46" in log  # the 1.4-2 image's
    (fit,) = backend.steps(execution.execution_id)
    model = fit.properties["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = model.removeprefix("s3://").split("/", 1)
    archive = emulator_connection.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert tar.extractfile("rows.txt").read() == b"2"


def test_the_proxy_ends_with_the_worker_that_started_it(backend, session, emulator_connection):
    processor = processors(session)["sklearn-1.2-1"]
    text = Pipeline(
        name="jobs-calling-aws",
        steps=[step(session, emulator_connection, "Sleeper", processor, SLEEPER)],
        sagemaker_session=session,
    ).definition()
    execution = backend.start_definition("jobs-calling-aws", text, {})
    deadline = time.monotonic() + 120
    while "proxy " not in (log := log_of(backend, execution.execution_id, "Sleeper")):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
    port = int(log.split("proxy ", 1)[1].split()[0].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the run's proxy answers while its worker lives

    worker = backend.describe(execution.execution_id).worker_pid
    os.kill(worker, signal.SIGKILL)
    # The backend notices the dead worker and stops the job it left.
    finished = backend.wait(execution.execution_id, timeout=60)
    assert finished.status == "Failed"
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))
