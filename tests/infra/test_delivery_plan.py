"""Plan checks of infra/modules/delivery: the builds, the CodePipeline, the EventBridge targets
that start them, and the roles' grants; and the buildspecs' commands run under bash with
hostile event values, their argv parsed by the real invoke task collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.conftest import PlanFn, resources_by_address
from tests.infra.test_automation_plan import (
    ACCOUNT,
    AWS_CODECOMMIT,
    AWS_CONNECTION,
    BUCKET,
    CONNECTION_ARN,
    REGION,
    REPO_ARN,
)

D = "module.delivery[0]"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
DELIVERY_BUCKET = f"mlops-local-builds-{ACCOUNT}-{REGION}"
PIPELINE = "mlops-local-pipeline"


@pytest.fixture(scope="module")
def aws_plan(plan_infra: PlanFn) -> dict[str, dict[str, Any]]:
    return resources_by_address(plan_infra(**AWS_CODECOMMIT))


@pytest.fixture(scope="module")
def connection_plan(plan_infra: PlanFn) -> dict[str, dict[str, Any]]:
    return resources_by_address(plan_infra(**AWS_CONNECTION))


def statements(plan: dict[str, dict[str, Any]], role: str) -> dict[str, dict[str, Any]]:
    document = json.loads(plan[f'{D}.module.role["{role}"].aws_iam_role_policy.this']["policy"])
    return {s["Sid"]: s for s in document["Statement"]}


def as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


def buildspec(plan: dict[str, dict[str, Any]], project: str) -> dict[str, Any]:
    return yaml.safe_load(
        plan[f'{D}.aws_codebuild_project.this["{project}"]']["source"][0]["buildspec"]
    )


# --- the roles: one pattern, each grant names its resources -----------------------------


def test_every_role_is_one_service_role_trusted_for_this_account(aws_plan):
    roles = {
        address: values
        for address, values in aws_plan.items()
        if address.endswith(".aws_iam_role.this") and ".module.role[" in address
    }
    services = {
        values["name"]: json.loads(values["assume_role_policy"])["Statement"][0]
        for values in roles.values()
    }
    assert {name: s["Principal"]["Service"] for name, s in services.items()} == {
        "mlops-local-codebuild": "codebuild.amazonaws.com",
        "mlops-local-codepipeline": "codepipeline.amazonaws.com",
        "mlops-local-events-start-builds": "events.amazonaws.com",
    }
    for statement in services.values():
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    # No hand-written role is left in the automation and delivery modules.
    assert not [
        a
        for a in aws_plan
        if a.startswith(("module.automation", "module.delivery"))
        and ".aws_iam_role." in a
        and ".module." not in a
    ]


def test_codebuild_writes_only_what_the_tasks_write(aws_plan):
    build = statements(aws_plan, "codebuild")
    assert sorted(build["ArtifactObjectsWrite"]["Resource"]) == [
        f"{BUCKET_ARN}/datasets/*",
        f"{BUCKET_ARN}/deployments/*",
        f"{BUCKET_ARN}/{PIPELINE}/code/*",
    ]
    assert as_list(build["ArtifactObjectsWrite"]["Action"]) == ["s3:PutObject"]
    assert sorted(build["ArtifactObjectsRead"]["Resource"]) == [
        f"{BUCKET_ARN}/datasets/*",
        f"{BUCKET_ARN}/deployments/*",
        f"{BUCKET_ARN}/{PIPELINE}/*",
    ]
    assert build["ArtifactBucketListThesePrefixes"]["Condition"] == {
        "StringLike": {"s3:prefix": ["datasets/*", f"{PIPELINE}/*", "deployments/*"]}
    }
    assert build["DeliveryArtifactsRead"]["Resource"] == f"arn:aws:s3:::{DELIVERY_BUCKET}/*"
    assert build["PassExecutionRoleToSageMaker"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert build["SourcePull"]["Resource"] == REPO_ARN
    # Not one statement of any role may touch the whole bucket or use "*".
    for role in ("codebuild", "codepipeline", "events-start-builds"):
        for statement in statements(aws_plan, role).values():
            for resource in as_list(statement["Resource"]):
                assert resource not in ("*", f"{BUCKET_ARN}/*"), (role, statement["Sid"])
                assert "mlops-local" in resource or resource.startswith("arn:aws:kms:"), (
                    role,
                    statement["Sid"],
                    resource,
                )


def test_codebuild_may_describe_the_projects_rollback_alarms_only(aws_plan):
    """deploy names rollback alarms in UpdateEndpoint (deployment guardrails)."""
    alarms = statements(aws_plan, "codebuild")["DescribeRollbackAlarms"]
    assert alarms["Action"] == "cloudwatch:DescribeAlarms"
    assert alarms["Resource"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:mlops-local-*"


def test_codepipeline_artifacts_live_in_their_own_bucket(aws_plan):
    # The store's location is the bucket module's id (known after apply), this bucket.
    assert aws_plan[f"{D}.module.artifacts.aws_s3_bucket.this"]["bucket"] == DELIVERY_BUCKET
    delivery = statements(aws_plan, "codepipeline")
    assert delivery["DeliveryArtifacts"]["Resource"] == f"arn:aws:s3:::{DELIVERY_BUCKET}/*"
    assert not [
        r for s in delivery.values() for r in as_list(s["Resource"]) if r.startswith(BUCKET_ARN)
    ]
    # The execution role's grants name the artifact bucket only: it cannot write the source.
    execution = json.loads(
        aws_plan["module.sagemaker_execution_role.aws_iam_role_policy.this"]["policy"]
    )
    assert not [
        r for s in execution["Statement"] for r in as_list(s["Resource"]) if DELIVERY_BUCKET in r
    ]


def test_codepipeline_is_build_then_staging_then_manual_approval_then_prod(aws_plan):
    pipeline = aws_plan[f"{D}.aws_codepipeline.this"]
    stages = [(s["name"], [a["provider"] for a in s["action"]]) for s in pipeline["stage"]]
    assert stages == [
        ("Source", ["CodeCommit"]),
        ("Build", ["CodeBuild"]),
        ("Staging", ["CodeBuild"]),
        ("Approval", ["Manual"]),
        ("Production", ["CodeBuild"]),
    ]
    assert pipeline["stage"][0]["action"][0]["configuration"]["PollForSourceChanges"] == "false"
    prod = pipeline["stage"][4]["action"][0]["configuration"]
    assert json.loads(prod["EnvironmentVariables"]) == [
        {"name": "STAGE", "value": "prod", "type": "PLAINTEXT"}
    ]


def test_a_connection_source_replaces_codecommit(connection_plan):
    source = connection_plan[f"{D}.aws_codepipeline.this"]["stage"][0]["action"][0]
    assert source["provider"] == "CodeStarSourceConnection"
    assert source["configuration"] == {
        "ConnectionArn": CONNECTION_ARN,
        "FullRepositoryId": "example/mlops",
        "BranchName": "main",
    }
    assert statements(connection_plan, "codepipeline")["ConnectionSource"]["Resource"] == (
        CONNECTION_ARN
    )
    assert statements(connection_plan, "codebuild")["SourceConnection"]["Resource"] == (
        CONNECTION_ARN
    )
    assert f"{D}.aws_cloudwatch_event_target.start_delivery[0]" not in connection_plan


# --- EventBridge starts CODEPIPELINE-sourced projects: with a source of their own --------


def start_build_request(plan: dict[str, dict[str, Any]], target: str, **values: str) -> dict:
    """The StartBuild request EventBridge sends: the template with its placeholders filled."""
    transformer = plan[f"{D}.aws_cloudwatch_event_target.{target}"]["input_transformer"][0]
    template = transformer["input_template"]
    for name, value in values.items():
        template = template.replace(f"<{name}>", value)
    assert "<" not in template, template
    return json.loads(template)


def test_approval_starts_the_deploy_build_with_the_repository_as_its_source(aws_plan):
    target = aws_plan[f"{D}.aws_cloudwatch_event_target.deploy_staging"]
    assert target["rule"] == "mlops-local-approval-deploy"
    transformer = target["input_transformer"][0]
    assert transformer["input_paths"] == {"version": "$.detail.ModelPackageVersion"}
    # StartBuild on a CODEPIPELINE-sourced project without overrides is refused: the
    # request names the source, the branch and no artifacts.
    assert start_build_request(aws_plan, "deploy_staging", version="4") == {
        "sourceTypeOverride": "CODECOMMIT",
        "sourceLocationOverride": (
            f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/mlops-local"
        ),
        "sourceVersion": "refs/heads/main",
        "artifactsOverride": {"type": "NO_ARTIFACTS"},
        "environmentVariablesOverride": [
            {"name": "MODEL_VERSION", "value": "4", "type": "PLAINTEXT"},
            {"name": "STAGE", "value": "staging", "type": "PLAINTEXT"},
        ],
    }


def test_new_data_starts_the_run_build_with_the_object_as_data_uri(aws_plan, connection_plan):
    target = aws_plan[f"{D}.aws_cloudwatch_event_target.run_on_new_data"]
    assert target["input_transformer"][0]["input_paths"] == {"key": "$.detail.object.key"}
    request = start_build_request(aws_plan, "run_on_new_data", key="datasets/incoming/x.csv")
    assert request["environmentVariablesOverride"] == [
        {"name": "DATA_URI", "value": f"s3://{BUCKET}/datasets/incoming/x.csv", "type": "PLAINTEXT"}
    ]
    assert request["sourceTypeOverride"] == "CODECOMMIT"
    assert request["artifactsOverride"] == {"type": "NO_ARTIFACTS"}
    through_connection = start_build_request(connection_plan, "run_on_new_data", key="k")
    assert {k: v for k, v in through_connection.items() if k.startswith("source")} == {
        "sourceTypeOverride": "GITHUB",
        "sourceLocationOverride": "https://github.com/example/mlops.git",
        "sourceVersion": "main",
        "sourceAuthOverride": {"type": "CODECONNECTIONS", "resource": CONNECTION_ARN},
    }


# --- the buildspecs, run under bash with hostile values -----------------------------------

HOSTILE_KEYS = [
    "datasets/incoming/x.csv --no-wait deploy --target aws --stage prod --version 1 --",
    "datasets/incoming/$(id).csv",
    "datasets/incoming/`id`.csv",
    "datasets/incoming/x.csv\ndeploy",
    "datasets/incoming/x.csv; id",
    "datasets/incoming/x.csv' --help '",
    'datasets/incoming/x.csv" --help "',
    "datasets/incoming/*",
    "datasets/other/x.csv",
]
HOSTILE_VERSIONS = ["1 --stage prod", "$(id)", "`id`", "1;id", "1\nid", "-1", "--help", "0", "1.5"]
HOSTILE_STAGES = ["prod --version 1", "staging;id", "$(id)", "dev", "", "--help"]


@pytest.fixture(scope="module")
def task_parser():
    """argv -> [(task name, {argument: value})], as `invoke` itself parses it."""
    from invoke import Program

    import tasks

    def parse(argv: list[str]) -> list[tuple[str, dict[str, Any]]]:
        program = Program(namespace=tasks.ns)
        program.create_config()
        program.parse_core(["invoke", *argv])
        program.parse_collection()
        program.parse_tasks()
        return [
            (context.name, {name: arg.value for name, arg in context.args.items()})
            for context in program.tasks
        ]

    return parse


@pytest.fixture
def stub_checkout(tmp_path: Path) -> Path:
    """A build's working directory whose .venv/bin/invoke prints its argv as JSON."""
    stub = tmp_path / ".venv" / "bin" / "invoke"
    stub.parent.mkdir(parents=True)
    stub.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    stub.chmod(0o755)
    return tmp_path


def run_phase(
    commands: list[str], cwd: Path, env: dict[str, str]
) -> tuple[int, list[list[str]], str]:
    """The build phase as CodeBuild runs it (bash, stop at the first failing command):
    (exit code, each argv the stub received, stderr)."""
    calls: list[list[str]] = []
    errors = ""
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=cwd,
            env={"PATH": os.environ["PATH"], "HOME": str(cwd), **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        calls += [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
        errors += done.stderr
        if done.returncode != 0:
            return done.returncode, calls, errors
    return 0, calls, errors


PROJECT_ENV = {"MLOPS_ENV": "local", "STAGE": "staging"}


def test_buildspecs_run_bash_and_only_invoke_tasks(aws_plan):
    for name in ("build", "deploy", "run"):
        spec = buildspec(aws_plan, name)
        assert spec["env"]["shell"] == "bash"
        assert spec["phases"]["install"]["commands"] == ["scripts/install"]
        invokes = [c for c in spec["phases"]["build"]["commands"] if c.startswith(".venv/bin/")]
        assert invokes
        assert all(c.startswith(".venv/bin/invoke ") for c in invokes)


def test_run_takes_a_dataset_object_as_one_data_argument(aws_plan, stub_checkout, task_parser):
    commands = buildspec(aws_plan, "run")["phases"]["build"]["commands"]
    uri = f"s3://{BUCKET}/datasets/incoming/2026-01/new_data.v2.csv"
    code, calls, _ = run_phase(commands, stub_checkout, {**PROJECT_ENV, "DATA_URI": uri})
    assert code == 0
    (argv,) = calls
    ((task, args),) = task_parser(argv)
    assert task == "pipeline-run"
    assert (args["data"], args["target"], args["env"], args["wait"]) == (uri, "aws", "local", False)
    code, calls, _ = run_phase(commands, stub_checkout, PROJECT_ENV)  # no DATA_URI: sample data
    ((task, args),) = task_parser(calls[0])
    assert (task, args["data"]) == ("pipeline-run", None)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_run_refuses_a_hostile_object_key(aws_plan, stub_checkout, key):
    commands = buildspec(aws_plan, "run")["phases"]["build"]["commands"]
    env = {**PROJECT_ENV, "DATA_URI": f"s3://{BUCKET}/{key}"}
    code, calls, errors = run_phase(commands, stub_checkout, env)
    assert code != 0
    assert calls == []
    assert f"DATA_URI must be an object under s3://{BUCKET}/datasets/incoming/" in errors
    assert "uid=" not in errors  # nothing was executed


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_even_unchecked_the_data_uri_stays_one_argument(aws_plan, stub_checkout, task_parser, key):
    """The invoke line alone, without the check before it: quoting keeps the value whole."""
    (line,) = [
        c for c in buildspec(aws_plan, "run")["phases"]["build"]["commands"] if "invoke" in c
    ]
    uri = f"s3://{BUCKET}/{key}"
    code, calls, _ = run_phase([line], stub_checkout, {**PROJECT_ENV, "DATA_URI": uri})
    assert code == 0
    ((task, args),) = task_parser(calls[0])
    assert (task, args["data"], args["wait"]) == ("pipeline-run", uri, False)


def test_deploy_passes_stage_and_version_as_one_argument_each(aws_plan, stub_checkout, task_parser):
    commands = buildspec(aws_plan, "deploy")["phases"]["build"]["commands"]
    for stage, version in (("staging", "12"), ("prod", "")):
        env = {**PROJECT_ENV, "STAGE": stage, "MODEL_VERSION": version}
        code, calls, _ = run_phase(commands, stub_checkout, env)
        assert code == 0
        ((task, args),) = task_parser(calls[0])
        assert task == "deploy"
        assert (args["stage"], args["version"], args["target"]) == (stage, version or None, "aws")


@pytest.mark.parametrize("version", HOSTILE_VERSIONS)
def test_deploy_refuses_a_hostile_version(aws_plan, stub_checkout, version):
    commands = buildspec(aws_plan, "deploy")["phases"]["build"]["commands"]
    env = {**PROJECT_ENV, "MODEL_VERSION": version}
    code, calls, errors = run_phase(commands, stub_checkout, env)
    assert (code != 0, calls) == (True, [])
    assert "MODEL_VERSION must be a whole number" in errors


@pytest.mark.parametrize("stage", HOSTILE_STAGES)
def test_deploy_refuses_an_unknown_stage(aws_plan, stub_checkout, stage):
    commands = buildspec(aws_plan, "deploy")["phases"]["build"]["commands"]
    code, calls, errors = run_phase(commands, stub_checkout, {**PROJECT_ENV, "STAGE": stage})
    assert (code != 0, calls) == (True, [])
    assert "STAGE must be staging or prod" in errors
