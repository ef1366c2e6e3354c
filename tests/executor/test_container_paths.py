"""A script that spells /opt/ml itself (AWS's template scripts do) reads and writes its own
job's sandbox there, as in its container; nothing reaches the host's /opt/ml, and two jobs
at once each see their own."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.steps import ProcessingStep

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.definition.sdk_session import definition_session
from pipelines.executor.jobs import private_container_path

pytestmark = pytest.mark.skipif(
    not private_container_path(), reason="needs unprivileged user and mount namespaces"
)

BUCKET = "container-paths"
ROLE = "arn:aws:iam::123456789012:role/test"
# No paths in its arguments: every path is spelled in the script, as in AWS's abalone code.
SCRIPT = """
import os, pathlib, sys
base = pathlib.Path("/opt/ml/processing")
rows = (base / "input" / "rows.csv").read_text().splitlines()
(base / "output").mkdir(parents=True, exist_ok=True)
(base / "output" / "count.txt").write_text(f"{len(rows)} {os.environ['STEP']}")
print("entries", sorted(os.listdir("/opt")), "uid", os.getuid())
"""


@pytest.fixture(scope="module")
def session(emulator_connection):
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="input/rows.csv", Body=b"a\nb\nc\n")
    s3.put_object(Bucket=BUCKET, Key="code/count.py", Body=SCRIPT.encode())
    return definition_session(
        "us-east-1",
        BUCKET,
        emulator_connection.session,
        endpoint_url=emulator_connection.endpoint_url,
        ca_bundle=str(emulator_connection.ca_bundle),
    )


def test_spelled_container_paths_are_the_jobs_sandbox(
    tmp_path, session, emulator_connection, runtime_cache
):
    host_had = Path("/opt/ml").exists()
    backend = LocalBackend(
        Settings(root=tmp_path, state_dir=tmp_path / ".mlops", runtime_cache_dir=runtime_cache),
        emulator_connection,
    )
    steps = []
    for name in ("CountA", "CountB"):  # parallel: each job its own /opt/ml
        processor = SKLearnProcessor(
            framework_version="1.2-1",
            role=ROLE,
            instance_type="ml.m5.large",
            instance_count=1,
            sagemaker_session=session,
            env={"STEP": name},
        )
        steps.append(
            ProcessingStep(
                name=name,
                processor=processor,
                code=f"s3://{BUCKET}/code/count.py",
                inputs=[
                    ProcessingInput(
                        source=f"s3://{BUCKET}/input", destination="/opt/ml/processing/input"
                    )
                ],
                outputs=[
                    ProcessingOutput(
                        source="/opt/ml/processing/output",
                        destination=f"s3://{BUCKET}/outputs/{name}",
                    )
                ],
            )
        )
    text = Pipeline(name="container-paths", steps=steps, sagemaker_session=session).definition()
    execution = backend.wait(
        backend.start_definition("container-paths", text, {}).execution_id, timeout=300
    )
    assert execution.status == "Succeeded", execution.failure_reason
    s3 = emulator_connection.client("s3")
    for name in ("CountA", "CountB"):
        body = s3.get_object(Bucket=BUCKET, Key=f"outputs/{name}/count.txt")["Body"].read()
        assert body.decode() == f"3 {name}"
    # The host's /opt is unchanged; its other entries stayed visible to the job.
    assert Path("/opt/ml").exists() == host_had
    log = next(s for s in backend.steps(execution.execution_id) if s.name == "CountA").log_path
    text = Path(log).read_text()
    assert "'ml'" in text
    # Root of its own user namespace, as a SageMaker container's user.
    assert "uid 0" in text
