"""A model package group's first run: the check switches SageMaker needs without a
baseline are set by the run itself, explicit values are kept, and nothing is set once a
version is Approved."""

from __future__ import annotations

import contextlib
import uuid

from pipelines.config.infra_config import InfraConfig
from pipelines.definition.parameters import CHECK_SWITCHES, check_arguments
from pipelines.launch.prepare import first_run_switches


def _group(connection) -> InfraConfig:
    name = f"first-run-{uuid.uuid4().hex[:8]}"
    sagemaker = connection.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=name)
    return InfraConfig(
        region="us-east-1", account_id="123456789012", environment="local", name_prefix="t",
        bucket_name="b", bucket_arn="arn:aws:s3:::b", execution_role_arn="arn:role",
        model_package_group_name=name, model_package_group_arn=f"arn:group/{name}",
        pipeline_name="p",
    )  # fmt: skip


def _register(connection, group: str, status: str) -> None:
    connection.client("sagemaker").create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": "example/sklearn:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )


def test_a_first_run_sets_the_unset_switches_and_keeps_explicit_ones(emulator_connection):
    config = _group(emulator_connection)
    _register(emulator_connection, config.model_package_group_name, "PendingManualApproval")
    arguments = check_arguments(["SkipDataBiasCheck=false"], None)
    set_now = first_run_switches(emulator_connection, config, arguments)
    every = {name for pair in CHECK_SWITCHES for name in pair}
    assert set(set_now) == every - {"SkipDataBiasCheck"}
    assert arguments["SkipDataBiasCheck"] is False  # explicit: obeyed, the check will say so
    assert all(arguments[name] is True for name in set_now)


def test_nothing_is_set_once_a_version_is_approved(emulator_connection):
    config = _group(emulator_connection)
    _register(emulator_connection, config.model_package_group_name, "Approved")
    arguments = check_arguments([], None)
    assert first_run_switches(emulator_connection, config, arguments) == ()
    assert dict(arguments) == {}


def test_a_group_that_does_not_exist_yet_is_a_first_run(emulator_connection):
    config = _group(emulator_connection)
    with contextlib.suppress(Exception):
        emulator_connection.client("sagemaker").delete_model_package_group(
            ModelPackageGroupName=config.model_package_group_name
        )
    assert first_run_switches(emulator_connection, config, check_arguments([], None))
