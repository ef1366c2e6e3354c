"""Every module README's input and output tables are what scripts/module_docs.py writes from
the module's variables.tf and outputs.tf (fast: parsed with python-hcl2, no Terraform)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import module_docs  # noqa: E402


def test_every_module_readme_has_fresh_tables(capsys):
    assert module_docs.main(["--check"]) == 0, capsys.readouterr().err


def test_tables_list_each_variable_with_its_type_and_default_and_each_output():
    table = module_docs.tables(module_docs.MODULES / "automation")
    assert (
        "| `dataset_prefix` | S3 key prefix under which a new object starts the pipeline." in table
    )
    assert '| `string` | `"datasets/incoming/"` |' in table
    assert (
        "| `name` | Prefix of every resource name, e.g. mlops-dev. | `string` | required |" in table
    )
    assert "| `agent_queue` |" in table
    assert "| `object({kms_master_key_id = optional(string)})` | `null` |" in table
    assert "| `rule_names` | Every EventBridge rule this module created" in table


def test_a_stale_readme_fails_the_check_naming_the_command(tmp_path, monkeypatch, capsys):
    modules = tmp_path / "infra" / "modules"
    shutil.copytree(module_docs.MODULES / "service_role", modules / "service_role")
    monkeypatch.setattr(module_docs, "MODULES", modules)
    assert module_docs.main(["--check"]) == 0
    variables = modules / "service_role" / "variables.tf"
    variables.write_text(
        variables.read_text()
        + "\n"
        + 'variable "extra" {\n  description = "A new input."\n'
        + "  type        = number\n  default     = 3\n}\n"
    )
    assert module_docs.main(["--check"]) == 1
    assert "run `.venv/bin/python scripts/module_docs.py`" in capsys.readouterr().err
    assert module_docs.main([]) == 0  # regenerates
    assert (
        "| `extra` | A new input. | `number` | `3` |"
        in (modules / "service_role" / "README.md").read_text()
    )
    assert module_docs.main(["--check"]) == 0


def test_a_readme_without_the_block_is_refused(tmp_path, monkeypatch):
    modules = tmp_path / "infra" / "modules"
    shutil.copytree(module_docs.MODULES / "service_role", modules / "service_role")
    (modules / "service_role" / "README.md").write_text("# Service role\n")
    monkeypatch.setattr(module_docs, "MODULES", modules)
    with pytest.raises(SystemExit, match="has no generated-tables block"):
        module_docs.main(["--check"])
