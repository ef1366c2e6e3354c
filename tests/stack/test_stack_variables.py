"""The variables the tasks pass to Terraform: invoke.yaml's prefix and pipelines."""

from __future__ import annotations

import json

from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings
from pipelines.stack.stacks import _variables
from pipelines.stack.terraform import TerraformStack

PIPELINES = {
    "housing": {"source": "pipelines.definition.builder:get_pipeline"},
    "abalone": {
        "source": "pipelines.abalone.pipeline:get_pipeline",
        "monitored_features": ["rings", "length"],
    },
}


def test_the_listed_pipelines_reach_terraform_as_a_list_in_invoke_yamls_order(tmp_path):
    settings = Settings.load(
        {"name_prefix": "acme", "pipelines": PIPELINES}, root=tmp_path, environ={}
    )
    variables = _variables(settings)
    assert variables == {
        "name_prefix": "acme",
        "pipelines": [
            {"key": "housing"},
            {"key": "abalone", "monitored_features": ["rings", "length"]},
        ],
    }
    # As Terraform reads them: a JSON variables file keeps the list a list.
    stack = TerraformStack(settings, Deployment.parse("local"), {}, variables=variables)
    command = stack._tf.generate_cmd_string("plan", var=dict(stack.variables))
    try:
        var_file = next(arg.split("=", 1)[1] for arg in command if arg.startswith("-var-file="))
        with open(var_file) as handle:
            assert json.load(handle) == variables
    finally:
        stack._tf.temp_var_files.clean_up()


def test_without_listed_pipelines_terraform_gets_its_own_default(tmp_path):
    settings = Settings.load(None, root=tmp_path, environ={})
    assert _variables(settings)["pipelines"] == [{"key": "main"}]
