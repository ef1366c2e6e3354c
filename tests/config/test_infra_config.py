"""InfraConfig per pipeline: Terraform's listed pipelines, derived ones, older states."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.config.infra_config import InfraConfig
from pipelines.core.errors import MlopsError
from tests.config.test_settings import OUTPUTS

GROUPS = "arn:aws:sagemaker:us-east-1:123456789012:model-package-group"


def names(stem: str) -> dict[str, Any]:
    """What infra/outputs.tf's `pipelines` holds for a pipeline named <stem>-..."""
    endpoints = {
        "default": f"{stem}-endpoint",
        "staging": f"{stem}-staging-endpoint",
        "prod": f"{stem}-prod-endpoint",
    }
    return {
        "pipeline_name": f"{stem}-pipeline",
        "base_job_prefix": f"{stem}-pipeline",
        "model_package_group_name": f"{stem}-models",
        "model_package_group_arn": f"{GROUPS}/{stem}-models",
        "endpoint_names": endpoints,
        "monitoring_schedule_names": {k: f"{v}-data-quality" for k, v in endpoints.items()},
    }


# Two pipelines as Terraform outputs them: the map is ordered by key, the first pipeline
# (housing) is the one whose names are also the top-level outputs.
TWO = {
    **OUTPUTS,
    "model_package_group_name": "mlops-local-models",
    "model_package_group_arn": f"{GROUPS}/mlops-local-models",
    "pipelines": {"abalone": names("mlops-local-abalone"), "housing": names("mlops-local")},
}


def test_the_outputs_read_as_the_first_pipelines_config():
    config = InfraConfig.from_outputs(TWO)
    assert config.pipeline_key == "housing"
    assert config.base_job_prefix == "mlops-local-pipeline"
    assert config.derived is False
    assert config.for_pipeline(None) is config
    assert config.for_pipeline("housing") is config


def test_a_listed_pipeline_gets_its_own_names_and_keeps_the_rest():
    config = InfraConfig.from_outputs(TWO)
    abalone = config.for_pipeline("abalone")
    assert (abalone.pipeline_key, abalone.derived) == ("abalone", False)
    assert abalone.pipeline_name == "mlops-local-abalone-pipeline"
    assert abalone.base_job_prefix == "mlops-local-abalone-pipeline"
    assert abalone.model_package_group_name == "mlops-local-abalone-models"
    assert abalone.model_package_group_arn == f"{GROUPS}/mlops-local-abalone-models"
    assert abalone.endpoint_name() == "mlops-local-abalone-endpoint"
    assert abalone.endpoint_name("staging") == "mlops-local-abalone-staging-endpoint"
    assert abalone.monitoring_schedule_name() == "mlops-local-abalone-endpoint-data-quality"
    # What all pipelines share stays.
    assert (abalone.bucket_name, abalone.execution_role_arn) == (
        config.bucket_name,
        config.execution_role_arn,
    )
    # And back: the first pipeline from another's config.
    assert abalone.for_pipeline("housing").pipeline_name == "mlops-local-pipeline"


def test_an_unlisted_pipeline_gets_the_names_terraform_would_give_it_marked_derived():
    """The same names as a listed pipeline after the first: compare with one."""
    config = InfraConfig.from_outputs(TWO)
    derived = config.for_pipeline("churn")
    assert derived.derived is True
    assert derived.pipeline_key == "churn"
    fields = names("mlops-local-churn")
    assert {name: getattr(derived, name) for name in fields} == fields
    listed = config.for_pipeline("abalone")
    as_if_unlisted = InfraConfig.from_outputs(
        {**TWO, "pipelines": {"housing": names("mlops-local")}}
    ).for_pipeline("abalone")
    assert as_if_unlisted.derived is True
    assert {n: getattr(as_if_unlisted, n) for n in fields} == {
        n: getattr(listed, n) for n in fields
    }


def test_a_derived_pipeline_with_a_bad_or_too_long_name_is_refused():
    config = InfraConfig.from_outputs(TWO)
    with pytest.raises(MlopsError, match="pipeline name 'Bad_Key' must be 2-16 lower-case"):
        config.for_pipeline("Bad_Key")
    long = InfraConfig.from_outputs({**TWO, "name": "a-long-prefix-local"})
    with pytest.raises(MlopsError, match=r"would name a-long-prefix-local-sixteen-letters-st.* 63"):
        long.for_pipeline("sixteen-letters")


def test_a_state_applied_before_per_pipeline_outputs_is_the_first_pipeline():
    old = {k: v for k, v in TWO.items() if k != "pipelines"}
    config = InfraConfig.from_outputs(old, first_pipeline="housing")
    assert config.pipeline_key == "housing"
    assert config.pipelines == {"housing": {**names("mlops-local")}}
    assert config.for_pipeline("housing") is config
    # A pipeline added since is not applied yet: derived until the next infra-up.
    abalone = config.for_pipeline("abalone")
    assert (abalone.derived, abalone.model_package_group_name) == (
        True,
        "mlops-local-abalone-models",
    )
    # Without the caller's first key: the catalog's default one.
    assert InfraConfig.from_outputs(old).pipeline_key == "main"
