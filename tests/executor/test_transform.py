"""The TransformStep (batch transform) in the local executor: definitions built with the SDK
(``Transformer`` + ``TransformStep`` after a ModelStep's ``model.create()``), the model served
by the endpoint's own model servers, and the ``.out`` files read back line by line."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import tarfile
from pathlib import Path

import psutil
import pytest
from sagemaker import image_uris
from sagemaker.model import Model
from sagemaker.transformer import Transformer
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.steps import TransformStep

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.definition.builder import TRAINING_DIR
from pipelines.definition.code_package import package_code, upload_code
from pipelines.definition.sdk_session import definition_session
from pipelines.executor.runners import StepFailed
from pipelines.executor.transform import (
    TransformSettings,
    apply_path,
    batches,
    output_records,
    request_body,
    request_problems,
)
from pipelines.serving.local_endpoint import owned_processes
from tests.executor.test_local_backend import BUCKET, ROLE, run, steps_by_name
from tests.serving.conftest import (
    SAMPLE,
    XGBOOST_IMAGE,
    run_script,
    xgboost_model_tarball,
    xgboost_predictions,
)

SKLEARN_INFERENCE = image_uris.retrieve(
    "sklearn",
    region="us-east-1",
    version="1.2-1",
    py_version="py3",
    image_scope="inference",
    instance_type="ml.m5.large",
)


def settings(**changes) -> TransformSettings:
    base = {
        "split": "Line",
        "strategy": "MultiRecord",
        "max_payload": 6 * 1024 * 1024,
        "content_type": "text/csv",
        "accept": "text/csv",
        "assemble": "Line",
        "input_filter": "$",
        "output_filter": "$",
        "join": False,
    }
    return TransformSettings(**{**base, **changes})


# --- the semantics, without servers -----------------------------------------------------------


def test_multi_record_batches_fill_max_payload_and_never_split_a_record():
    records = [b"a" * 9, b"b" * 9, b"c" * 9, b"d" * 9, b"e" * 9]  # 10 bytes each with "\n"
    packed = list(batches(records, settings(max_payload=25)))
    assert packed == [(0, records[:2]), (2, records[2:4]), (4, records[4:])]
    single = list(batches(records, settings(strategy="SingleRecord")))
    assert [first for first, _ in single] == [0, 1, 2, 3, 4]
    with pytest.raises(StepFailed, match="record 1 is 9 bytes, above MaxPayloadInMB"):
        list(batches(records, settings(max_payload=5)))


def test_csv_records_are_filtered_joined_with_their_predictions_and_filtered_again():
    rows = [b"id-1,1.0,2.0", b"id-2,3.0,4.0"]
    chosen = settings(input_filter="$[1:]", join=True, output_filter="$[0,-1]")
    assert request_body(rows, chosen) == b"1.0,2.0\n3.0,4.0\n"
    assert output_records(rows, b"0.5\n0.75\n", chosen) == [b"id-1,0.5", b"id-2,0.75"]
    joined = settings(join=True)
    assert output_records(rows, b"0.5\n0.75\n", joined) == [
        b"id-1,1.0,2.0,0.5",
        b"id-2,3.0,4.0,0.75",
    ]
    with pytest.raises(StepFailed, match="answered 1 records for 2 input records"):
        output_records(rows, b"0.5\n", joined)


def test_json_records_gain_sagemaker_output_or_are_wrapped():
    chosen = settings(content_type="application/jsonlines", join=True)
    rows = [b'{"id": 1, "features": [1, 2]}', b"[3, 4]"]
    assert output_records(rows, b"0.5\n0.25\n", chosen) == [
        b'{"id":1,"features":[1,2],"SageMakerOutput":0.5}',
        b'{"SageMakerInput":[3,4],"SageMakerOutput":0.25}',
    ]
    assert apply_path("$.features[1:]", {"features": [1, 2, 3]}) == [2, 3]
    assert apply_path("$[0,-1]", ["a", "b", "c"]) == ["a", "c"]


def test_requests_the_local_executor_cannot_run_are_named():
    problems = request_problems(
        {
            "TransformInput": {"SplitType": "RecordIO", "ContentType": "text/csv"},
            "DataProcessing": {"InputFilter": "$..price", "JoinSource": "Input"},
        }
    )
    fields = [field for field, _ in problems]
    assert fields == ["TransformInput.SplitType", "DataProcessing.InputFilter", "DataProcessing"]
    assert "use Line or None" in problems[0][1]


# --- real runs ----------------------------------------------------------------------------------


def transform_definition(model: Model, *, join: bool, input_filter: str | None, max_payload: int):
    """ModelStep (model.create()) then TransformStep over s3://BUCKET/transform/input/."""
    session = model.sagemaker_session
    create = ModelStep(name="CreateModel", step_args=model.create(instance_type="ml.m5.large"))
    transformer = Transformer(
        model_name=create.properties.ModelName,
        instance_count=1,
        instance_type="ml.m5.large",
        strategy="MultiRecord",
        assemble_with="Line",
        output_path=f"s3://{BUCKET}/transform/output",
        accept="text/csv",
        max_payload=max_payload,
        sagemaker_session=session,
    )
    step = TransformStep(
        name="Score",
        step_args=transformer.transform(
            data=f"s3://{BUCKET}/transform/input",
            content_type="text/csv",
            split_type="Line",
            input_filter=input_filter,
            join_source="Input" if join else None,
        ),
    )
    pipeline = Pipeline(name="transform-tests", steps=[create, step], sagemaker_session=session)
    return pipeline.definition()


def put_inputs(s3, files: dict[str, str]) -> None:
    for name, text in files.items():
        s3.put_object(Bucket=BUCKET, Key=f"transform/input/{name}", Body=text.encode())


def read_output(s3, name: str) -> list[str]:
    body = s3.get_object(Bucket=BUCKET, Key=f"transform/output/{name}.out")["Body"].read()
    return body.decode().splitlines()


def no_model_servers_left(step_dir: Path) -> bool:
    """Neither the job's model host nor any server it started (front, model server,
    workers: found by their owner marker) is running."""
    hosts = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "pipelines.serving.model_host" in " ".join(p.info["cmdline"] or [])
        and str(step_dir) in " ".join(p.info["cmdline"] or [])
    ]
    return not hosts and not owned_processes(step_dir / "serving" / "endpoints" / "transform")


@pytest.fixture
def backend(tmp_path, emulator_connection, runtime_cache) -> LocalBackend:
    settings = Settings(
        root=tmp_path, state_dir=tmp_path / ".mlops", runtime_cache_dir=runtime_cache
    )
    return LocalBackend(settings, emulator_connection)


@pytest.fixture
def s3(emulator_connection):
    client = emulator_connection.client("s3")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    for item in client.list_objects_v2(Bucket=BUCKET, Prefix="transform/").get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    return client


def test_an_xgboost_algorithm_model_scores_every_line_joined_with_its_input(backend, s3, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="models/xgboost.tar.gz", Body=xgboost_model_tarball(tmp_path))
    rows = {
        "a.csv": [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5], [-2.0, 1.5, 0.0]],
        "nested/b.csv": [[0.25, 0.25, 0.25], [3.0, -3.0, 1.0]],
    }
    # An id column first, which InputFilter keeps from the model and the join puts back.
    put_inputs(
        s3,
        {
            name: "".join(f"row-{i}," + ",".join(map(str, r)) + "\n" for i, r in enumerate(values))
            for name, values in rows.items()
        },
    )
    session = definition_session("us-east-1", BUCKET)
    model = Model(
        image_uri=XGBOOST_IMAGE,
        model_data=f"s3://{BUCKET}/models/xgboost.tar.gz",
        role=ROLE,
        sagemaker_session=session,
    )
    # 1 MB batches: each file is one request of several records.
    text = transform_definition(model, join=True, input_filter="$[1:]", max_payload=1)
    execution = run(backend, text)
    assert execution.status == "Succeeded", execution.failure_reason
    for name, values in rows.items():
        expected = xgboost_predictions(tmp_path, values)
        lines = read_output(s3, name)
        assert len(lines) == len(values)
        for i, (line, row, prediction) in enumerate(zip(lines, values, expected, strict=True)):
            fields = next(csv.reader([line]))
            assert fields[:-1] == [f"row-{i}", *map(str, row)]
            assert float(fields[-1]) == prediction
    score = steps_by_name(backend, execution)["Score"]
    assert score.properties["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/transform/output"
    assert score.properties["TransformJobStatus"] == "Completed"
    assert no_model_servers_left(Path(score.log_path).parent)


@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory, emulator_connection) -> tuple[Path, str]:
    """The project's random forest, trained in the 1.2-1 runtime, and its code bundle's URI."""
    work = tmp_path_factory.mktemp("sklearn")
    run_script(
        "preprocess.py",
        f"--input-dir={SAMPLE.parent}",
        f"--input-file={SAMPLE.name}",
        f"--output-dir={work / 'splits'}",
        "--target-column=medv",
        "--bias-facet=chas",
    )
    run_script(
        "train.py",
        f"--train={work / 'splits' / 'train'}",
        f"--validation={work / 'splits' / 'validation'}",
        f"--model-dir={work / 'model'}",
        f"--output-data-dir={work / 'output'}",
        "--n_estimators",
        "5",
    )
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted((work / "model").iterdir()):
            tar.add(path, arcname=path.name)
    s3.put_object(Bucket=BUCKET, Key="models/sklearn.tar.gz", Body=archive.getvalue())
    code = package_code(TRAINING_DIR)
    upload_code(code, s3, BUCKET, "transform-tests")
    return work / "model", code.s3_uri(BUCKET, "transform-tests")


def sklearn_predictions(model_dir: Path, body: str) -> list[str]:
    """inference.py's own answer for ``body``, computed in the 1.2-1 runtime."""
    from pipelines.containers.environments import EnvironmentCache
    from pipelines.containers.profiles import profile_for_image

    python = EnvironmentCache(Path(__import__("os").environ["MLOPS_RUNTIME_CACHE"])).ensure(
        profile_for_image(SKLEARN_INFERENCE)
    )
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import inference as i\n"
        "m = i.model_fn(sys.argv[2])\n"
        "print(i.output_fn(i.predict_fn(i.input_fn(sys.argv[3], 'text/csv'), m), 'text/csv')[0])"
    )
    result = subprocess.run(
        [python.python, "-c", script, str(TRAINING_DIR), str(model_dir), body],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.split()


def test_the_projects_sklearn_model_scores_every_line_joined_with_its_input(
    backend, s3, sklearn_model
):
    model_dir, code_uri = sklearn_model
    features = [line.rsplit(",", 1)[0] for line in SAMPLE.read_text().splitlines()[1:8]]
    put_inputs(s3, {"houses.csv": "\n".join(features) + "\n"})
    session = definition_session("us-east-1", BUCKET)
    model = Model(
        image_uri=SKLEARN_INFERENCE,
        model_data=f"s3://{BUCKET}/models/sklearn.tar.gz",
        role=ROLE,
        env={"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": code_uri},
        sagemaker_session=session,
    )
    execution = run(
        backend, transform_definition(model, join=True, input_filter=None, max_payload=1)
    )
    assert execution.status == "Succeeded", execution.failure_reason
    expected = sklearn_predictions(model_dir, "\n".join(features))
    lines = read_output(s3, "houses.csv")
    assert lines == [
        f"{row},{prediction}" for row, prediction in zip(features, expected, strict=True)
    ]


def test_a_record_the_model_refuses_fails_the_job_and_leaves_no_server(backend, s3, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="models/xgboost.tar.gz", Body=xgboost_model_tarball(tmp_path))
    put_inputs(s3, {"bad.csv": "1.0,2.0,3.0\n1.0\n"})  # the second row has one feature
    session = definition_session("us-east-1", BUCKET)
    model = Model(
        image_uri=XGBOOST_IMAGE,
        model_data=f"s3://{BUCKET}/models/xgboost.tar.gz",
        role=ROLE,
        sagemaker_session=session,
    )
    text = transform_definition(model, join=False, input_filter=None, max_payload=1)
    definition = json.loads(text)
    definition["Steps"][1]["Arguments"]["BatchStrategy"] = "SingleRecord"
    execution = run(backend, json.dumps(definition))
    assert execution.status == "Failed"
    assert (
        "Step Score failed: AlgorithmError: Bad HTTP status received from algorithm: 400 for "
        f"s3://{BUCKET}/transform/input/bad.csv, records 2-2"
    ) in execution.failure_reason
    score = steps_by_name(backend, execution)["Score"]
    assert no_model_servers_left(Path(score.log_path).parent)
