"""Plan checks of several pipelines per stack (the ``pipelines`` variable): each has its own
group, pipeline name, prefixes, endpoints and alarms; the first keeps today's names."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tftest

from pipelines.stack.plan_review import render_markdown, summarize_plan
from tests.infra.conftest import PlanFn, resources_by_address

TWO = '[{key = "housing"}, {key = "abalone", monitored_features = ["rings", "length"]}]'
SAGEMAKER = "arn:aws:sagemaker:us-east-1:123456789012"
BUCKET_ARN = "arn:aws:s3:::mlops-local-artifacts-123456789012-us-east-1"
ROLE_POLICY = "module.sagemaker_execution_role.aws_iam_role_policy.this"
FIRST_GROUP = "module.model_registry.aws_sagemaker_model_package_group.this"
SECOND_GROUP = 'module.other_model_registries["abalone"].aws_sagemaker_model_package_group.this'
ALARM = "module.model_monitoring.aws_cloudwatch_metric_alarm.drift"


@pytest.fixture(scope="module")
def two(plan_infra: PlanFn) -> tftest.TerraformPlanOutput:
    return plan_infra(pipelines=TWO)


@pytest.fixture(scope="module")
def resources(two) -> dict[str, dict[str, Any]]:
    return resources_by_address(two)


def statements(policy_json: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(policy_json)["Statement"]}


def as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_each_pipeline_has_its_own_group_and_the_first_keeps_its_address_and_name(resources):
    groups = {
        address: values["model_package_group_name"]
        for address, values in resources.items()
        if address.endswith("aws_sagemaker_model_package_group.this")
    }
    assert groups == {FIRST_GROUP: "mlops-local-models", SECOND_GROUP: "mlops-local-abalone-models"}


def test_the_first_pipelines_resources_are_the_ones_a_single_pipeline_plans(plan_infra, resources):
    """Adding a pipeline adds resources; the first's keep their addresses and values
    except the shared policies that now name the second pipeline too."""
    single = resources_by_address(plan_infra())
    shared = {
        ROLE_POLICY,
        "module.sagemaker_execution_role.aws_iam_role.this",  # its description names both
        "module.artifact_bucket.aws_s3_bucket_policy.this",
    }
    assert set(single) <= set(resources)
    for address, values in single.items():
        if address not in shared:
            assert resources[address] == values, address


def test_outputs_list_every_pipelines_names_and_keep_the_firsts_at_the_top(two):
    outputs = two["planned_values"]["outputs"]
    assert outputs["pipeline_name"]["value"] == "mlops-local-pipeline"
    assert outputs["model_package_group_name"]["value"] == "mlops-local-models"
    assert outputs["endpoint_names"]["value"]["default"] == "mlops-local-endpoint"
    # The group ARNs are known after apply: compare the rest.
    pipelines = two["output_changes"]["pipelines"]["after"]
    assert set(pipelines) == {"housing", "abalone"}
    assert pipelines["housing"] == {
        "pipeline_name": "mlops-local-pipeline",
        "base_job_prefix": "mlops-local-pipeline",
        "model_package_group_name": "mlops-local-models",
        "endpoint_names": {
            "default": "mlops-local-endpoint",
            "staging": "mlops-local-staging-endpoint",
            "prod": "mlops-local-prod-endpoint",
        },
        "monitoring_schedule_names": {
            "default": "mlops-local-endpoint-data-quality",
            "staging": "mlops-local-staging-endpoint-data-quality",
            "prod": "mlops-local-prod-endpoint-data-quality",
        },
    }
    stem = "mlops-local-abalone"
    assert pipelines["abalone"] == {
        "pipeline_name": f"{stem}-pipeline",
        "base_job_prefix": f"{stem}-pipeline",
        "model_package_group_name": f"{stem}-models",
        "endpoint_names": {
            "default": f"{stem}-endpoint",
            "staging": f"{stem}-staging-endpoint",
            "prod": f"{stem}-prod-endpoint",
        },
        "monitoring_schedule_names": {
            "default": f"{stem}-endpoint-data-quality",
            "staging": f"{stem}-staging-endpoint-data-quality",
            "prod": f"{stem}-prod-endpoint-data-quality",
        },
    }
    unknown = two["output_changes"]["pipelines"]["after_unknown"]
    assert unknown["abalone"]["model_package_group_arn"] is True


def test_the_role_may_run_both_pipelines_and_register_in_both_groups_only(resources):
    policy = statements(resources[ROLE_POLICY]["policy"])
    assert sorted(as_list(policy["OwnPipeline"]["Resource"])) == sorted(
        [
            f"{SAGEMAKER}:pipeline/mlops-local-pipeline",
            f"{SAGEMAKER}:pipeline/mlops-local-pipeline/execution/*",
            f"{SAGEMAKER}:pipeline/mlops-local-abalone-pipeline",
            f"{SAGEMAKER}:pipeline/mlops-local-abalone-pipeline/execution/*",
        ]
    )
    assert sorted(as_list(policy["ModelRegistry"]["Resource"])) == sorted(
        [
            f"{SAGEMAKER}:model-package-group/mlops-local-models",
            f"{SAGEMAKER}:model-package/mlops-local-models/*",
            f"{SAGEMAKER}:model-package-group/mlops-local-abalone-models",
            f"{SAGEMAKER}:model-package/mlops-local-abalone-models/*",
        ]
    )
    # Each pipeline's prefix is readable and writable; neither's code is writable by jobs.
    prefixes = ["mlops-local-pipeline", "mlops-local-abalone-pipeline"]
    assert {f"{BUCKET_ARN}/{p}/*" for p in prefixes} <= set(
        as_list(policy["ArtifactObjectsWrite"]["Resource"])
    )
    assert sorted(as_list(policy["CodeIsWrittenByTheCallerOnly"]["Resource"])) == sorted(
        f"{BUCKET_ARN}/{p}/code/*" for p in prefixes
    )
    assert "mlops-local-abalone-pipeline/*" in as_list(
        policy["ArtifactBucketListThesePrefixes"]["Condition"]["StringLike"]["s3:prefix"]
    )


def test_deploying_accounts_read_every_pipeline_and_a_pipeline_without_features_has_no_alarms(
    plan_infra: PlanFn,
):
    # One plan for both (each plan costs seconds): a second pipeline without features.
    planned = resources_by_address(
        plan_infra(
            pipelines='[{key = "housing"}, {key = "abalone"}]',
            deploying_account_ids=["111122223333"],
        )
    )
    policy = statements(planned["module.artifact_bucket.aws_s3_bucket_policy.this"]["policy"])
    assert sorted(as_list(policy["DeployingAccountsReadArtifacts"]["Resource"])) == sorted(
        f"{BUCKET_ARN}/{p}/{kind}/*"
        for p in ("mlops-local-pipeline", "mlops-local-abalone-pipeline")
        for kind in ("models", "code")
    )
    assert (
        'module.other_model_registries["abalone"].aws_sagemaker_model_package_group_policy.this[0]'
        in planned
    )
    assert SECOND_GROUP in planned
    assert not [a for a in planned if a.startswith(f'{ALARM}["abalone/')]


def test_each_pipeline_with_monitored_features_gets_alarms_on_its_own_endpoint(resources):
    alarms = {a: v for a, v in resources.items() if a.startswith(f"{ALARM}[")}
    # The first's keep their feature-only addresses (14 sample-data columns by default).
    assert f'{ALARM}["medv"]' in alarms
    assert alarms[f'{ALARM}["medv"]']["dimensions"]["Endpoint"] == "mlops-local-endpoint"
    second = {a: v for a, v in alarms.items() if a.startswith(f'{ALARM}["abalone/')}
    assert set(second) == {f'{ALARM}["abalone/rings"]', f'{ALARM}["abalone/length"]'}
    assert second[f'{ALARM}["abalone/rings"]']["dimensions"] == {
        "Endpoint": "mlops-local-abalone-endpoint",
        "Feature": "rings",
        "MonitoringSchedule": "mlops-local-abalone-endpoint-data-quality",
    }
    assert second[f'{ALARM}["abalone/rings"]']["alarm_name"] == (
        "mlops-local-abalone-endpoint-drift-rings"
    )
    assert len(alarms) == 14 + 2


def test_plan_md_lists_each_pipeline_with_its_group_pipeline_and_endpoint(two):
    markdown = render_markdown(summarize_plan(two), title="Plan: local")
    assert "### Pipelines (2)" in markdown
    assert (
        "| `housing` (first: the environment's own names; automation acts on it) "
        "| `mlops-local-pipeline` | `mlops-local-models` | `mlops-local-endpoint` | 14 |"
    ) in markdown
    assert (
        "| `abalone` | `mlops-local-abalone-pipeline` | `mlops-local-abalone-models` "
        "| `mlops-local-abalone-endpoint` | 2 |"
    ) in markdown
    # In the variable's order: the first pipeline's row comes first.
    assert markdown.index("`housing`") < markdown.index("`abalone`")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('[{key = "Bad_Key"}]', "pipelines: each key must be 2-16 lower-case"),
        ('[{key = "main"}, {key = "main"}]', "pipelines must not repeat a key"),
        ("[]", "pipelines must list at least one pipeline"),
        (
            '[{key = "main", monitored_features = ["a b"]}]',
            "monitored_features are column names",
        ),
    ],
)
def test_bad_pipelines_are_refused(plan_infra: PlanFn, value, message):
    with pytest.raises(tftest.TerraformTestError) as failure:
        plan_infra(pipelines=value)
    assert message in " ".join(str(failure.value).split())


def test_names_longer_than_sagemaker_allows_are_refused(plan_infra: PlanFn):
    with pytest.raises(tftest.TerraformTestError) as failure:
        plan_infra(
            name_prefix="a-long-prefix", pipelines='[{key = "main"}, {key = "sixteen-letters"}]'
        )
    # The error's text is a repr: its line breaks are escaped.
    text = " ".join(str(failure.value).replace("\\n", " ").split())
    assert "names are longer than SageMaker" in text
    assert "63 characters" in text
    assert "a-long-prefix-local-sixteen-letters-staging-endpoint-data-quality" in text
