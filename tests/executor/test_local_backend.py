"""The local backend on small hand-written definitions whose jobs are tiny Python programs.

Every run is real: a worker process interprets the definition, jobs run as local
processes in their sandboxes, and S3 goes through the emulator.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from sagemaker import image_uris

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.core.records import Execution
from tests.support import source_tarball

BUCKET = "executor-tests"
ROLE = "arn:aws:iam::123456789012:role/test"
# The image the SDK names for scikit-learn 1.2-1: jobs run in its runtime profile.
SKLEARN_IMAGE = image_uris.retrieve(
    "sklearn", region="us-east-1", version="1.2-1", instance_type="ml.m5.large"
)


def join(*values: Any) -> dict:
    return {"Std:Join": {"On": "/", "Values": list(values)}}


def output_uri(step: str, name: str) -> dict:
    return join("s3:/", BUCKET, "runs", {"Get": "Execution.PipelineExecutionId"}, step, name)


def processing(
    name: str,
    code: str,
    *,
    inputs: dict[str, Any] | None = None,
    outputs: tuple[str, ...] = (),
    arguments: list[Any] | None = None,
    cache: bool = False,
    property_files: list[dict] | None = None,
    depends_on: list[str] | None = None,
) -> dict:
    spec: dict[str, Any] = {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "AppSpecification": {
                "ImageUri": SKLEARN_IMAGE,
                "ContainerEntrypoint": ["python3", "-c", code],
                # The API wants at least one argument when the field is present; the
                # SDK leaves it out when there are none.
                **({"ContainerArguments": arguments} if arguments else {}),
            },
            "ProcessingInputs": [
                {
                    "InputName": input_name,
                    "AppManaged": False,
                    "S3Input": {
                        "S3Uri": uri,
                        "LocalPath": f"/opt/ml/processing/input/{input_name}",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                        "S3CompressionType": "None",
                    },
                }
                for input_name, uri in (inputs or {}).items()
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": output,
                        "AppManaged": False,
                        "S3Output": {
                            "S3Uri": output_uri(name, output),
                            "LocalPath": f"/opt/ml/processing/{output}",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                    for output in outputs
                ]
            },
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 30,
                }
            },
            "RoleArn": ROLE,
        },
    }
    if cache:
        spec["CacheConfig"] = {"Enabled": True, "ExpireAfter": "P1D"}
    if property_files:
        spec["PropertyFiles"] = property_files
    if depends_on:
        spec["DependsOn"] = depends_on
    return spec


def definition(*steps: dict, parameters: list[dict] | None = None) -> str:
    return json.dumps(
        {"Version": "2020-12-01", "Parameters": parameters or [], "Steps": list(steps)}
    )


REPORT_URI = "Steps.Score.ProcessingOutputConfig.Outputs['report'].S3Output.S3Uri"
WRITE_SCORE = (
    "import json, pathlib, sys\n"
    "out = pathlib.Path('/opt/ml/processing/report'); out.mkdir(parents=True, exist_ok=True)\n"
    "(out / 'report.json').write_text(json.dumps({'score': {'value': float(sys.argv[1])}}))\n"
    "print('scored', sys.argv[1])\n"
)
SCORE_FILE = [{"PropertyFileName": "Report", "OutputName": "report", "FilePath": "report.json"}]
SCORE = {
    "Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.Score.PropertyFiles.Report"},
        "Path": "score.value",
    }
}
READ_INPUT = (
    "import pathlib\n"
    "files = sorted(p.name for p in pathlib.Path('/opt/ml/processing/input/data').iterdir())\n"
    "print('inputs', files)\n"
)


def gate(threshold: float) -> dict:
    return {
        "Name": "Gate",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {"Type": "GreaterThanOrEqualTo", "LeftValue": SCORE, "RightValue": threshold}
            ],
            "IfSteps": [
                processing(
                    "UseReport",
                    READ_INPUT,
                    inputs={"data": {"Get": REPORT_URI}},
                )
            ],
            "ElseSteps": [
                {
                    "Name": "TooLow",
                    "Type": "Fail",
                    "Arguments": {
                        "ErrorMessage": {
                            "Std:Join": {
                                "On": "",
                                "Values": ["score ", SCORE, " below ", str(threshold)],
                            }
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
def backend(tmp_path, emulator_connection, runtime_cache) -> LocalBackend:
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    settings = Settings(
        root=tmp_path, state_dir=tmp_path / ".mlops", runtime_cache_dir=runtime_cache
    )
    return LocalBackend(settings, emulator_connection)


def run(backend: LocalBackend, text: str, parameters: dict | None = None) -> Execution:
    execution = backend.start_definition("executor-tests", text, parameters or {})
    return backend.wait(execution.execution_id, timeout=120)


def steps_by_name(backend: LocalBackend, execution: Execution) -> dict:
    return {step.name: step for step in backend.steps(execution.execution_id)}


def test_condition_true_runs_the_if_branch_only(backend):
    text = definition(
        processing(
            "Score", WRITE_SCORE, arguments=["0.9"], outputs=("report",), property_files=SCORE_FILE
        ),
        gate(0.7),
    )
    execution = run(backend, text)
    assert execution.status == "Succeeded", execution.failure_reason
    steps = steps_by_name(backend, execution)
    assert set(steps) == {"Score", "Gate", "UseReport"}
    assert steps["Gate"].properties == {"Outcome": "True"}
    assert steps["Score"].property_files == {"Report": {"score": {"value": 0.9}}}
    log = Path(steps["UseReport"].log_path).read_text()
    assert "inputs ['report.json']" in log
    outputs = steps["Score"].properties["ProcessingOutputConfig"]["Outputs"]
    assert outputs[0]["S3Output"]["S3Uri"] == (
        f"s3://{BUCKET}/runs/{execution.execution_id}/Score/report"
    )


def test_condition_false_ends_in_the_fail_step_with_its_message(backend):
    text = definition(
        processing(
            "Score", WRITE_SCORE, arguments=["0.5"], outputs=("report",), property_files=SCORE_FILE
        ),
        gate(0.7),
    )
    execution = run(backend, text)
    assert execution.status == "Failed"
    assert execution.failure_reason == "score 0.5 below 0.7"
    steps = steps_by_name(backend, execution)
    assert steps["TooLow"].status == "Failed"
    assert "UseReport" not in steps


def test_independent_steps_run_in_parallel(backend):
    sleep = "import time; time.sleep(1.5)"
    execution = run(backend, definition(processing("Left", sleep), processing("Right", sleep)))
    assert execution.status == "Succeeded"
    left, right = (steps_by_name(backend, execution)[n] for n in ("Left", "Right"))
    assert left.started_at < right.ended_at
    assert right.started_at < left.ended_at


def test_depends_on_orders_steps_without_data(backend):
    text = definition(
        processing("Second", "print(2)", depends_on=["First"]),
        processing("First", "import time; time.sleep(0.5)"),
    )
    execution = run(backend, text)
    steps = steps_by_name(backend, execution)
    assert steps["First"].ended_at <= steps["Second"].started_at


def test_a_failing_job_fails_the_execution_and_stops_downstream(backend):
    failing = (
        "import sys; print('ERROR: column x is missing (10 rows)', file=sys.stderr); sys.exit(2)"
    )
    text = definition(
        processing("Broken", failing, outputs=("out",)),
        processing(
            "After",
            READ_INPUT,
            inputs={
                "data": {"Get": "Steps.Broken.ProcessingOutputConfig.Outputs['out'].S3Output.S3Uri"}
            },
        ),
    )
    execution = run(backend, text)
    assert execution.status == "Failed"
    assert execution.failure_reason.startswith(
        "Step Broken failed: AlgorithmError: ERROR: column x is missing (10 rows) (exit code 2"
    )
    assert set(steps_by_name(backend, execution)) == {"Broken"}


def test_unsupported_step_types_fail_clearly(backend):
    text = definition({"Name": "Call", "Type": "Lambda", "Arguments": {}})
    execution = run(backend, text)
    assert execution.status == "Failed"
    assert "Unsupported step type 'Lambda'" in execution.failure_reason


def test_a_missing_property_file_is_a_clear_failure(backend):
    text = definition(
        processing("Score", "print('no report')", outputs=("report",), property_files=SCORE_FILE)
    )
    execution = run(backend, text)
    assert "the job wrote no report.json in output 'report'" in execution.failure_reason


def test_empty_input_fails_like_sagemaker(backend):
    text = definition(
        processing("Read", READ_INPUT, inputs={"data": f"s3://{BUCKET}/nothing-here"})
    )
    execution = run(backend, text)
    assert "no S3 objects found under s3://executor-tests/nothing-here" in execution.failure_reason


def test_parameters_and_execution_variables_reach_the_job(backend):
    text = definition(
        processing(
            "Echo",
            "import sys; print('args', sys.argv[1:])",
            arguments=[
                {"Std:Join": {"On": "", "Values": ["--trees=", {"Get": "Parameters.Trees"}]}},
                {"Get": "Execution.PipelineExecutionId"},
                "--out=/opt/ml/processing/out",
            ],
        ),
        parameters=[{"Name": "Trees", "Type": "Integer", "DefaultValue": 10}],
    )
    execution = run(backend, text, {"Trees": 250})
    log = Path(steps_by_name(backend, execution)["Echo"].log_path).read_text()
    sandbox = steps_by_name(backend, execution)["Echo"].log_path.replace("job.log", "sandbox")
    assert (
        f"args ['--trees=250', '{execution.execution_id}', '--out={sandbox}/opt/ml/processing/out']"
        in log
    )


def test_cache_hits_reuse_outputs_until_the_input_changes(backend, emulator_connection):
    s3 = emulator_connection.client("s3")
    s3.put_object(Bucket=BUCKET, Key="cache/data.csv", Body=b"a,b\n1,2\n")
    copy = (
        "import shutil, pathlib\n"
        "out = pathlib.Path('/opt/ml/processing/out'); out.mkdir(parents=True, exist_ok=True)\n"
        "shutil.copy('/opt/ml/processing/input/data/data.csv', out / 'copy.csv')\n"
    )
    text = definition(
        processing(
            "Copy",
            copy,
            inputs={"data": f"s3://{BUCKET}/cache/data.csv"},
            outputs=("out",),
            cache=True,
        )
    )
    first = run(backend, text)
    second = run(backend, text)
    assert first.status == second.status == "Succeeded"
    cached = steps_by_name(backend, second)["Copy"]
    assert cached.cache_hit_of == first.execution_id
    # Downstream steps would read the first run's outputs, as on SageMaker.
    uri = cached.properties["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert first.execution_id in uri

    s3.put_object(Bucket=BUCKET, Key="cache/data.csv", Body=b"a,b\n1,3\n")
    third = run(backend, text)
    assert steps_by_name(backend, third)["Copy"].cache_hit_of is None


def test_stop_terminates_the_running_job_and_starts_nothing_else(backend):
    text = definition(
        processing("Slow", "import time; print('working', flush=True); time.sleep(60)"),
        processing("After", "print('never')", depends_on=["Slow"]),
    )
    execution = backend.start_definition("executor-tests", text, {})
    # The step is recorded Executing just before its job process starts: wait for the
    # process itself (a loaded machine can take a while to start it).
    deadline = time.monotonic() + 120
    job_pids: list[int] = []
    while time.monotonic() < deadline and not job_pids:
        job_pids = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if "time.sleep(60)" in " ".join(p.info["cmdline"] or [])
        ]
        time.sleep(0.1)
    assert job_pids
    backend.stop(execution.execution_id)
    stopped = backend.wait(execution.execution_id, timeout=30)
    assert stopped.status == "Stopped"
    steps = steps_by_name(backend, stopped)
    assert steps["Slow"].status == "Stopped"
    assert "After" not in steps
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        for pid in job_pids
    )


def test_retry_resumes_from_the_failed_step(backend, emulator_connection):
    s3 = emulator_connection.client("s3")
    s3.delete_object(Bucket=BUCKET, Key="retry/flag.txt")
    text = definition(
        processing("Prepare", "print('prepared')", outputs=()),
        processing(
            "NeedsFlag",
            READ_INPUT,
            inputs={"data": f"s3://{BUCKET}/retry/flag.txt"},
            depends_on=["Prepare"],
        ),
    )
    failed = run(backend, text)
    assert failed.status == "Failed"
    prepared_before = steps_by_name(backend, failed)["Prepare"]

    s3.put_object(Bucket=BUCKET, Key="retry/flag.txt", Body=b"go")
    backend.retry(failed.execution_id)
    resumed = backend.wait(failed.execution_id, timeout=60)
    assert resumed.status == "Succeeded"
    assert resumed.execution_id == failed.execution_id
    steps = steps_by_name(backend, resumed)
    assert steps["Prepare"].started_at == prepared_before.started_at  # reused, not re-run
    assert steps["Prepare"].attempt == 1
    assert steps["NeedsFlag"].attempt == 2


def test_only_failed_or_stopped_executions_can_be_retried(backend):
    execution = run(backend, definition(processing("Ok", "print(1)")))
    with pytest.raises(MlopsError, match="only Failed or Stopped executions can be retried"):
        backend.retry(execution.execution_id)


TRAIN_SCRIPT = """
import json, os, sys, pathlib
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / "model.txt").write_text("weights")
seen = {k: v for k, v in os.environ.items() if k.startswith("SM_")}
seen["argv"] = sys.argv[1:]
seen["train_files"] = sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"]))
(pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"]) / "seen.json").write_text(json.dumps(seen))
print("validation:rmse=3.5;")
print("validation:rmse=2.25;")
"""


def test_training_follows_the_script_mode_contract(backend, emulator_connection):
    s3 = emulator_connection.client("s3")
    s3.put_object(
        Bucket=BUCKET,
        Key="train/code/sourcedir.tar.gz",
        Body=source_tarball({"train.py": TRAIN_SCRIPT}),
    )
    s3.put_object(Bucket=BUCKET, Key="train/data/part.csv", Body=b"1,2\n")
    step = {
        "Name": "Fit",
        "Type": "Training",
        "Arguments": {
            "AlgorithmSpecification": {
                "TrainingImage": SKLEARN_IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": "validation:rmse", "Regex": "validation:rmse=([0-9.]+);"}
                ],
            },
            "HyperParameters": {
                "n_estimators": "100",
                "max_depth": "None",
                "sagemaker_program": '"train.py"',
                "sagemaker_submit_directory": f'"s3://{BUCKET}/train/code/sourcedir.tar.gz"',
            },
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"s3://{BUCKET}/train/data",
                        }
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/train/models"},
            "ResourceConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 30,
            },
            "RoleArn": ROLE,
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }
    execution = run(backend, definition(step))
    assert execution.status == "Succeeded", execution.failure_reason
    fit = steps_by_name(backend, execution)["Fit"]
    assert fit.metrics == {"validation:rmse": 2.25}  # the last value, as FinalMetricDataList
    artifact = fit.properties["ModelArtifacts"]["S3ModelArtifacts"]
    assert (
        artifact
        == f"s3://{BUCKET}/train/models/{fit.properties['TrainingJobName']}/output/model.tar.gz"
    )
    key = artifact.split(f"{BUCKET}/", 1)[1]
    with tarfile.open(
        fileobj=io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    ) as tar:
        assert tar.getnames() == ["model.txt"]
    output = s3.get_object(Bucket=BUCKET, Key=key.replace("model.tar.gz", "output.tar.gz"))
    with tarfile.open(fileobj=io.BytesIO(output["Body"].read())) as tar:
        seen = json.loads(tar.extractfile("seen.json").read())
    assert seen["argv"] == ["--max_depth", "None", "--n_estimators", "100"]
    assert json.loads(seen["SM_HPS"]) == {"n_estimators": 100, "max_depth": "None"}
    assert json.loads(seen["SM_CHANNELS"]) == ["train"]
    assert seen["SM_CHANNEL_TRAIN"].endswith("/sandbox/opt/ml/input/data/train")
    assert seen["train_files"] == ["part.csv"]
    assert seen["SM_CURRENT_HOST"] == "algo-1"


def test_register_and_create_model_steps_call_the_registry(backend, emulator_connection):
    sagemaker = emulator_connection.client("sagemaker")
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.create_model_package_group(ModelPackageGroupName="executor-tests")
    container = {"Image": "example/sklearn:1", "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"}
    text = definition(
        {
            "Name": "Register",
            "Type": "RegisterModel",
            "Arguments": {
                "ModelPackageGroupName": "executor-tests",
                "ModelApprovalStatus": "PendingManualApproval",
                "InferenceSpecification": {
                    "Containers": [container],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["text/csv"],
                },
            },
        },
        {
            "Name": "Model",
            "Type": "Model",
            "Arguments": {"ExecutionRoleArn": ROLE, "PrimaryContainer": container},
        },
    )
    execution = run(backend, text)
    assert execution.status == "Succeeded", execution.failure_reason
    steps = steps_by_name(backend, execution)
    arn = steps["Register"].properties["ModelPackageArn"]
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    model_name = steps["Model"].properties["ModelName"]
    assert (
        sagemaker.describe_model(ModelName=model_name)["PrimaryContainer"]["Image"]
        == "example/sklearn:1"
    )


def test_register_model_pins_the_model_and_code_tarballs_it_registers(backend, emulator_connection):
    """CustomerMetadataProperties carry each tarball's sha256 (and S3 version, where the
    bucket keeps them), which a deploy checks (issue 27); a code bundle that no longer
    holds the digest its key names is not registered."""
    s3, sagemaker = emulator_connection.client("s3"), emulator_connection.client("sagemaker")
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.create_model_package_group(ModelPackageGroupName="executor-tests")
    versioned = "executor-tests-versioned"
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=versioned)
    s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    model, code = b"model bytes", b"code bytes"
    code_digest = hashlib.sha256(code).hexdigest()
    model_version = s3.put_object(Bucket=versioned, Key="m/model.tar.gz", Body=model)["VersionId"]
    code_key = f"p/code/{code_digest}/sourcedir.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=code_key, Body=code)

    def register(code_uri: str) -> Execution:
        container = {
            "Image": "example/sklearn:1",
            "ModelDataUrl": f"s3://{versioned}/m/model.tar.gz",
            "Environment": {"SAGEMAKER_SUBMIT_DIRECTORY": code_uri},
        }
        step = {
            "Name": "Register",
            "Type": "RegisterModel",
            "Arguments": {
                "ModelPackageGroupName": "executor-tests",
                "InferenceSpecification": {
                    "Containers": [container],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["text/csv"],
                },
            },
        }
        return run(backend, definition(step))

    execution = register(f"s3://{BUCKET}/{code_key}")
    assert execution.status == "Succeeded", execution.failure_reason
    arn = steps_by_name(backend, execution)["Register"].properties["ModelPackageArn"]
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["CustomerMetadataProperties"] == {
        "mlops:model-sha256": hashlib.sha256(model).hexdigest(),
        "mlops:model-s3-version": model_version,
        "mlops:code-sha256": code_digest,  # an unversioned bucket: no version recorded
    }

    s3.put_object(Bucket=BUCKET, Key=code_key, Body=b"planted inference.py")
    execution = register(f"s3://{BUCKET}/{code_key}")
    assert execution.status == "Failed"
    assert "does not hold the code its key names" in execution.failure_reason


def test_an_invalid_registry_request_fails_before_reaching_the_api(backend):
    text = definition(
        {
            "Name": "Register",
            "Type": "RegisterModel",
            "Arguments": {"ModelApprovalStatus": "Maybe", "Bogus": 1},
        }
    )
    execution = run(backend, text)
    assert execution.status == "Failed"
    assert (
        "ValidationException: CreateModelPackage: Parameter validation failed"
        in execution.failure_reason
    )


def test_a_request_is_validated_again_when_earlier_steps_complete_it(backend, emulator_connection):
    """The description is only known once Score has run: the preflight lets it through,
    and the API model's maximum length (which botocore does not check) stops it then."""
    sagemaker = emulator_connection.client("sagemaker")
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.create_model_package_group(ModelPackageGroupName="executor-tests")
    before = sagemaker.list_model_packages(ModelPackageGroupName="executor-tests")
    text = definition(
        processing(
            "Score",
            WRITE_SCORE,
            outputs=("report",),
            arguments=["0.875"],
            property_files=SCORE_FILE,
        ),
        {
            "Name": "Register",
            "Type": "RegisterModel",
            "Arguments": {
                "ModelPackageGroupName": "executor-tests",
                "ModelPackageDescription": {"Std:Join": {"On": " ", "Values": ["x" * 1020, SCORE]}},
                "InferenceSpecification": {
                    "Containers": [{"Image": SKLEARN_IMAGE}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["text/csv"],
                },
            },
        },
    )
    execution = run(backend, text)
    assert execution.status == "Failed"
    steps = steps_by_name(backend, execution)
    assert steps["Score"].status == "Succeeded"
    assert (
        "ValidationException: CreateModelPackage: Parameter validation failed: "
        "ModelPackageDescription: 1026 characters, above the maximum of 1024"
    ) in steps["Register"].failure_reason
    after = sagemaker.list_model_packages(ModelPackageGroupName="executor-tests")
    assert after["ModelPackageSummaryList"] == before["ModelPackageSummaryList"]
