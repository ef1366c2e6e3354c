"""Definitions built with the SageMaker SDK, run by the local executor in the
container's runtime: preflight, the 1.2-1 profile, the container's contract.

Every definition here comes from the SDK (``Pipeline.definition()``), built with a
session bound to the emulator, so nothing in these tests can reach AWS.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from sagemaker.inputs import TrainingInput
from sagemaker.lambda_helper import Lambda
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.sklearn.estimator import SKLearn
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals, ConditionNot
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.lambda_step import LambdaStep
from sagemaker.workflow.parameters import ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.retry import StepExceptionTypeEnum, StepRetryPolicy
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipelines.backends.local import LocalBackend
from pipelines.config.settings import Settings
from pipelines.containers.selection import step_runtime_labels
from pipelines.core.records import Execution
from pipelines.definition.sdk_session import AwsCallRefused, definition_session
from pipelines.ui.run_views import execution_summary, steps_table
from tests.support import source_tarball

BUCKET = "runtime-tests"
ROLE = "arn:aws:iam::123456789012:role/test"


@pytest.fixture(scope="module")
def session(emulator_connection):
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    return definition_session(
        "us-east-1",
        BUCKET,
        emulator_connection.session,
        endpoint_url=emulator_connection.endpoint_url,
        ca_bundle=str(emulator_connection.ca_bundle),
    )


def make_backend(tmp_path: Path, connection, cache: Path, *, host: bool = False, notes=None):
    settings = Settings(
        root=tmp_path,
        state_dir=tmp_path / ".mlops",
        runtime_cache_dir=cache,
        runtime_host=host,
    )
    return LocalBackend(settings, connection, notify=(notes.append if notes is not None else None))


@pytest.fixture
def backend(tmp_path, emulator_connection, runtime_cache) -> LocalBackend:
    return make_backend(tmp_path, emulator_connection, runtime_cache)


def put(connection, key: str, body: bytes | str) -> str:
    connection.client("s3").put_object(
        Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body
    )
    return f"s3://{BUCKET}/{key}"


def processor(session, count=1, instance_type="ml.m5.large") -> SKLearnProcessor:
    return SKLearnProcessor(
        framework_version="1.2-1",
        role=ROLE,
        instance_type=instance_type,
        instance_count=count,
        sagemaker_session=session,
    )


def script_step(session, connection, name: str, script: str, **kwargs) -> ProcessingStep:
    code = put(connection, f"code/{name}.py", script)
    return ProcessingStep(
        name=name,
        processor=kwargs.pop("processor", None) or processor(session),
        code=code,
        **kwargs,
    )


def definition(session, *steps, parameters=()) -> str:
    return Pipeline(
        name="runtime-tests",
        parameters=list(parameters),
        steps=list(steps),
        sagemaker_session=session,
    ).definition()


def run(backend: LocalBackend, text: str, parameters: dict | None = None) -> Execution:
    execution = backend.start_definition("runtime-tests", text, parameters or {})
    return backend.wait(execution.execution_id, timeout=300)


def log_of(backend: LocalBackend, execution: Execution, step: str) -> str:
    (found,) = [s for s in backend.steps(execution.execution_id) if s.name == step]
    return Path(found.log_path).read_text()


PROBE = """
import json, os, sys
import numpy, pandas, scipy, sklearn
print("versions", sys.version_info[:2], sklearn.__version__, pandas.__version__,
      numpy.__version__, scipy.__version__)
print("environment", sorted(k for k in os.environ if not k.startswith(("AWS_", "SM_", "PYTHON"))))
for name in ("processingjobconfig.json", "resourceconfig.json"):
    with open(os.path.join(sys.argv[1], name)) as handle:
        print(name, json.dumps(json.load(handle), sort_keys=True))
try:
    import pipelines
except ImportError as error:
    print("import pipelines:", error)
"""


def test_jobs_run_in_the_containers_python_and_libraries_only(
    backend, session, emulator_connection, monkeypatch
):
    monkeypatch.setenv("MY_SHELL_SECRET", "from the host")
    # Container paths reach a job through its arguments (remapped into its sandbox).
    probe = script_step(
        session, emulator_connection, "Probe", PROBE, job_arguments=["/opt/ml/config"]
    )
    text = definition(session, probe)
    execution = run(backend, text)
    assert execution.status == "Succeeded", execution.failure_reason
    log = log_of(backend, execution, "Probe")
    assert "versions (3, 9) 1.2.1 1.1.3 1.24.1 1.8.0" in log
    environment = json.loads(log.split("environment ", 1)[1].splitlines()[0].replace("'", '"'))
    assert "MY_SHELL_SECRET" not in environment
    assert "HOME" not in environment
    assert "import pipelines: No module named 'pipelines'" in log
    config = json.loads(log.split("processingjobconfig.json ", 1)[1].splitlines()[0])
    assert config["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.large"
    assert config["ProcessingJobName"].startswith(f"pipelines-{execution.execution_id}")
    resources = json.loads(log.split("resourceconfig.json ", 1)[1].splitlines()[0])
    assert resources["current_host"] == "algo-1"
    assert resources["hosts"] == ["algo-1"]
    # execution-show names the runtime each job used.
    labels = step_runtime_labels(json.loads(execution.definition), execution.runtime)
    assert labels["Probe"].startswith("sklearn 1.2-1 · Python 3.9.")
    table = steps_table(execution, backend.steps(execution.execution_id))
    assert [header for header, _, _ in table.columns][-1] == "runtime"


NEWER_PANDAS = """
import pandas as pd
frame = pd.DataFrame({"a": [1, 2]})
print(frame.map(str))
"""


def test_a_pandas_api_the_container_lacks_fails_locally_with_its_error(
    backend, session, emulator_connection, tmp_path, runtime_cache
):
    text = definition(session, script_step(session, emulator_connection, "Map", NEWER_PANDAS))
    execution = run(backend, text)
    assert execution.status == "Failed"
    assert "AttributeError: 'DataFrame' object has no attribute 'map'" in execution.failure_reason

    # The host interpreter (pandas >= 2.1) hides the problem; the opt-out says so.
    notes: list[str] = []
    host = make_backend(
        tmp_path / "host", emulator_connection, runtime_cache, host=True, notes=notes
    )
    execution = run(host, text)
    assert execution.status == "Succeeded", execution.failure_reason
    assert any("may not hold on SageMaker" in note for note in notes)
    labels = step_runtime_labels(json.loads(execution.definition), execution.runtime)
    assert labels["Map"].startswith("host · Python 3.")


def test_an_invalid_instance_count_or_type_is_rejected_before_anything_runs(
    backend, session, emulator_connection
):
    count = ParameterInteger(name="ProcessingInstanceCount", default_value=1)
    instance_type = ParameterString(name="ProcessingInstanceType", default_value="ml.m5.large")
    step = script_step(
        session,
        emulator_connection,
        "Sized",
        "print('ran')",
        processor=processor(session, count, instance_type),
    )
    text = definition(session, step, parameters=[count, instance_type])
    sagemaker = emulator_connection.client("sagemaker")
    packages_before = sagemaker.list_model_packages()["ModelPackageSummaryList"]

    execution = run(backend, text, {"ProcessingInstanceCount": 0})
    assert execution.status == "Failed"
    assert backend.steps(execution.execution_id) == []  # nothing ran
    assert "Step Sized: Arguments: ValidationException: CreateProcessingJob" in (
        execution.failure_reason
    )
    assert "ProcessingResources.ClusterConfig.InstanceCount: 0, below the minimum of 1" in (
        execution.failure_reason
    )

    execution = run(backend, text, {"ProcessingInstanceType": "ml.bogus.huge"})
    assert execution.status == "Failed"
    assert backend.steps(execution.execution_id) == []
    assert "InstanceType: 'ml.bogus.huge' is not one of" in execution.failure_reason
    assert sagemaker.list_model_packages()["ModelPackageSummaryList"] == packages_before


def test_an_unsupported_step_type_is_rejected_before_the_first_step(
    backend, session, emulator_connection
):
    first = script_step(session, emulator_connection, "First", "print('ran')")
    notify = LambdaStep(
        name="Notify",
        lambda_func=Lambda(
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:notify",
            session=session,
        ),
        depends_on=[first],
    )
    execution = run(backend, definition(session, first, notify))
    assert execution.status == "Failed"
    # Refused as a whole before its first step: the step before it did not run either.
    assert backend.steps(execution.execution_id) == []
    assert "Step Notify: Type: Unsupported step type 'Lambda'" in execution.failure_reason


def test_unsupported_execution_variables_and_manifest_inputs_are_named(
    backend, session, emulator_connection
):
    step = script_step(
        session,
        emulator_connection,
        "Named",
        "print('ran')",
        job_arguments=["--job", ExecutionVariables.PROCESSING_JOB_NAME],
        inputs=[
            ProcessingInput(
                source=f"s3://{BUCKET}/manifest.json",
                destination="/opt/ml/processing/input/m",
                s3_data_type="ManifestFile",
            )
        ],
    )
    execution = run(backend, definition(session, step))
    assert execution.status == "Failed"
    assert backend.steps(execution.execution_id) == []
    reason = execution.failure_reason
    assert (
        "Step Named: Arguments.AppSpecification.ContainerArguments[1]: unsupported execution "
        "variable 'ProcessingJobName'" in reason
    )
    assert "Step Named: ProcessingInputs[0].S3Input.S3DataType: ManifestFile is not supported" in (
        reason
    )


def test_condition_not_runs_as_the_sdk_writes_it(backend, session, emulator_connection):
    flag = ParameterString(name="Flag", default_value="on")
    ran = script_step(session, emulator_connection, "Ran", "print('branch taken')")
    condition = ConditionStep(
        name="Check",
        conditions=[ConditionNot(expression=ConditionEquals(left=flag, right="off"))],
        if_steps=[ran],
        else_steps=[FailStep(name="Stop", error_message="flag was off")],
    )
    text = definition(session, condition, parameters=[flag])
    assert '"Type": "Not", "Condition"' in text
    execution = run(backend, text)
    assert execution.status == "Succeeded", execution.failure_reason
    assert "branch taken" in log_of(backend, execution, "Ran")
    execution = run(backend, text, {"Flag": "off"})
    assert execution.failure_reason == "flag was off"


def test_retry_policies_are_shown_and_a_job_error_is_not_retried(
    backend, session, emulator_connection
):
    step = script_step(
        session,
        emulator_connection,
        "Flaky",
        "import sys; sys.exit('ERROR: broken input')",
        retry_policies=[
            StepRetryPolicy(
                exception_types=[StepExceptionTypeEnum.SERVICE_FAULT],
                interval_seconds=1,
                backoff_rate=2.0,
                max_attempts=3,
            )
        ],
    )
    execution = run(backend, definition(session, step))
    assert execution.status == "Failed"
    # An AlgorithmError is the job's own: SageMaker's policies never retry it.
    assert "attempts" not in execution.failure_reason
    summary = execution_summary(execution, backend.steps(execution.execution_id))
    rendered = _render(summary)
    assert "Flaky: Step.SERVICE_FAULT: every 1 s x 2, max 3 attempts" in rendered


def _render(renderable) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


TRAIN = """
import json, os, sys
print("argv", json.dumps(sys.argv[1:]))
print("env", json.dumps({k: v for k, v in os.environ.items() if k.startswith("SM_")}))
for name in ("hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"):
    with open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], name)) as handle:
        print(name, json.dumps(json.load(handle)))
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("weights")
print("noise rmse=9.0")
print("rmse=1.5")
"""


def test_training_gets_the_toolkits_contract(backend, session, emulator_connection):
    source = put(emulator_connection, "train/sourcedir.tar.gz", source_tarball({"train.py": TRAIN}))
    data = put(emulator_connection, "train/data/part.csv", "1,2\n")
    estimator = SKLearn(
        entry_point="train.py",
        source_dir=source,
        framework_version="1.2-1",
        role=ROLE,
        instance_type="ml.m5.large",
        hyperparameters={"flag": True, "lookup": "/opt/ml/input/data/train/part.csv"},
        # Anchored: SageMaker applies the regex to each log line.
        metric_definitions=[{"Name": "rmse", "Regex": "^rmse=([0-9.]+)$"}],
        output_path=f"s3://{BUCKET}/models",
        sagemaker_session=session,
    )
    step = TrainingStep(
        name="Fit",
        estimator=estimator,
        inputs={"train": TrainingInput(s3_data=data.rsplit("/", 1)[0])},
    )
    execution = run(backend, definition(session, step))
    assert execution.status == "Succeeded", execution.failure_reason
    log = log_of(backend, execution, "Fit")
    env = json.loads(log.split("env ", 1)[1].splitlines()[0])
    assert env["SM_HP_FLAG"] == "true"  # JSON, as the toolkit encodes it
    assert env["SM_HP_LOOKUP"].endswith("/sandbox/opt/ml/input/data/train/part.csv")
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.large"
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert env["SM_MODULE_NAME"] == "train"
    assert env["SM_FRAMEWORK_PARAMS"] == "{}"
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["train"]["TrainingInputMode"] == "File"
    assert json.loads(env["SM_RESOURCE_CONFIG"])["current_instance_type"] == "ml.m5.large"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["hyperparameters"]["flag"] is True
    assert training_env["channel_input_dirs"]["train"].endswith("/opt/ml/input/data/train")
    assert json.loads(env["SM_USER_ARGS"]) == json.loads(log.split("argv ", 1)[1].splitlines()[0])
    assert "--flag" in json.loads(env["SM_USER_ARGS"])
    assert json.loads(log.split("resourceconfig.json ", 1)[1].splitlines()[0])["hosts"] == [
        "algo-1"
    ]
    (fit,) = backend.steps(execution.execution_id)
    assert fit.metrics == {"rmse": 1.5}  # the anchored regex matched its own line only


def test_a_requirements_file_in_the_code_bundle_is_installed(backend, session, emulator_connection):
    script = "import six; print('six', six.__version__)\n" + TRAIN
    source = put(
        emulator_connection,
        "req/sourcedir.tar.gz",
        source_tarball({"train.py": script, "requirements.txt": "six==1.16.0\n"}),
    )
    estimator = SKLearn(
        entry_point="train.py",
        source_dir=source,
        framework_version="1.2-1",
        role=ROLE,
        instance_type="ml.m5.large",
        output_path=f"s3://{BUCKET}/models",
        sagemaker_session=session,
    )
    step = TrainingStep(name="Req", estimator=estimator)
    execution = run(backend, definition(session, step))
    assert execution.status == "Succeeded", execution.failure_reason
    # The container pins six 1.15.0; the bundle's requirements.txt upgrades it.
    assert "six 1.16.0" in log_of(backend, execution, "Req")


def test_the_definition_build_goes_to_the_targets_endpoint_only(session, emulator_connection):
    # Outputs without a destination make the SDK check its default bucket over S3.
    step = ProcessingStep(
        name="Defaulted",
        processor=processor(session),
        code=f"s3://{BUCKET}/code/Probe.py",
        outputs=[ProcessingOutput(output_name="out", source="/opt/ml/processing/out")],
    )
    assert f"s3://{BUCKET}/" in json.dumps(json.loads(definition(session, step)))

    offline = definition_session("us-east-1", BUCKET)
    detached = ProcessingStep(
        name="Defaulted",
        processor=processor(offline),
        code=f"s3://{BUCKET}/code/Probe.py",
        outputs=[ProcessingOutput(output_name="out", source="/opt/ml/processing/out")],
    )
    with pytest.raises(AwsCallRefused, match="tried to call AWS"):
        definition(offline, detached)


ENV_PROBE = """
import json, os, sys, tempfile
names = ["LC_ALL", "LANG", "PYTHONIOENCODING", "SAGEMAKER_SKLEARN_VERSION", "SM_MODEL_DIR",
         "SAGEMAKER_TRAINING_MODULE"]
print("env", json.dumps({n: os.environ.get(n) for n in names}))
print("encoding", sys.stdout.encoding, "temp", tempfile.gettempdir())
"""


def test_a_job_starts_with_its_images_own_environment(
    backend, session, emulator_connection, monkeypatch
):
    """The 1.2-1 image's ENV (aws/sagemaker-scikit-learn-container c59fb77,
    docker/1.2-1/base/Dockerfile.cpu and final/Dockerfile.cpu): its locale and encoding win
    over the host's, as they do in the container; its /opt/ml paths point at the sandbox."""
    monkeypatch.setenv("LC_ALL", "POSIX")  # the host's locale must not leak into the job
    backend.notify = lambda _: None
    execution = run(
        backend, definition(session, script_step(session, emulator_connection, "Env", ENV_PROBE))
    )
    assert execution.status == "Succeeded", execution.failure_reason
    log = log_of(backend, execution, "Env")
    env = json.loads(log.split("env ", 1)[1].splitlines()[0])
    assert env["LC_ALL"] == env["LANG"] == "C.UTF-8"
    assert env["PYTHONIOENCODING"] == "UTF-8"
    assert env["SAGEMAKER_SKLEARN_VERSION"] == "1.2-1"
    assert env["SAGEMAKER_TRAINING_MODULE"] == "sagemaker_sklearn_container.training:main"
    assert env["SM_MODEL_DIR"].endswith("/sandbox/opt/ml/model")
    encoding, temp = log.split("encoding ", 1)[1].split()[0], log.split(" temp ", 1)[1].split()[0]
    assert encoding.lower() in ("utf-8", "utf8")
    assert temp.endswith("/sandbox/tmp")
