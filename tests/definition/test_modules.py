"""Calling a pipeline module's get_pipeline as AWS's templates' run_pipeline.py does."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines.config.pipeline_catalog import parse_source
from pipelines.core.errors import MlopsError
from pipelines.definition.modules import (
    build_pipeline,
    call_kwargs,
    load_function,
    parse_kwargs,
    sdk_environment,
    source_sha256,
)

DERIVED = {
    "region": "eu-west-1",
    "role": "arn:aws:iam::123456789012:role/r",
    "default_bucket": "bucket",
    "bucket_kms_id": None,
    "model_package_group_name": "group",
    "pipeline_name": "name",
    "base_job_prefix": "prefix",
}


def template(
    region,
    role=None,
    default_bucket=None,
    model_package_group_name="G",
    pipeline_name="P",
    base_job_prefix="B",
):
    return None


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1]", "JSON object, got list"), ("{nope", "must be a JSON object: Expecting")],
)
def test_kwargs_must_be_a_json_object(text, message):
    with pytest.raises(MlopsError, match=message):
        parse_kwargs(text)


def test_derived_kwargs_a_template_does_not_take_are_left_out():
    # AWS's older templates take no bucket_kms_id: it is not passed, not an error.
    chosen = call_kwargs(template, DERIVED, {"pipeline_name": "mine"}, "m:get_pipeline")
    assert "bucket_kms_id" not in chosen
    assert chosen["pipeline_name"] == "mine"
    assert chosen["region"] == "eu-west-1"


def test_a_given_kwarg_the_function_does_not_take_is_refused_by_name():
    with pytest.raises(MlopsError, match=r"takes no argument\(s\) processing_type; it takes"):
        call_kwargs(template, DERIVED, {"processing_type": "x"}, "m:get_pipeline")


def test_an_open_ended_function_gets_everything():
    def open_ended(region, **rest):
        return None

    chosen = call_kwargs(open_ended, DERIVED, {"extra": 1}, "m:f")
    assert chosen["bucket_kms_id"] is None
    assert chosen["extra"] == 1


def test_a_required_argument_nothing_supplies_is_named():
    def needs(region, project_id):
        return None

    with pytest.raises(MlopsError, match="m:f needs project_id: pass them with --kwargs"):
        call_kwargs(needs, DERIVED, {}, "m:f")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_file_module_loads_with_its_sibling_imports(tmp_path):
    write(tmp_path / "mine" / "helpers.py", "VALUE = 41\n")
    module = write(
        tmp_path / "mine" / "pipeline.py",
        "from helpers import VALUE\n\ndef get_pipeline(region):\n    return VALUE + 1\n",
    )
    function = load_function(parse_source(f"{module}:get_pipeline", tmp_path))
    assert function(region="x") == 42


def test_a_missing_function_or_a_failing_import_names_the_module(tmp_path):
    module = write(tmp_path / "p.py", "def other():\n    pass\n")
    with pytest.raises(MlopsError, match="has no function get_pipeline"):
        load_function(parse_source(f"{module}:get_pipeline", tmp_path))
    broken = write(tmp_path / "q.py", "import not_a_module_anywhere\n")
    with pytest.raises(
        MlopsError, match=r"Importing the pipeline module .*q.py:get_pipeline failed"
    ):
        load_function(parse_source(f"{broken}:get_pipeline", tmp_path))


def test_the_module_builds_in_the_repository_root_and_must_return_a_pipeline(tmp_path):
    def relative_paths(**kwargs):
        return Path("scripts/x.py").resolve()

    with pytest.raises(MlopsError, match="returned PosixPath, not a sagemaker Pipeline"):
        build_pipeline(relative_paths, {}, tmp_path, "m:f")
    seen = []
    with pytest.raises(MlopsError):
        build_pipeline(lambda: seen.append(Path.cwd()), {}, tmp_path, "m:f")
    assert seen == [tmp_path]


def test_a_failure_inside_get_pipeline_says_where():
    def failing():
        raise KeyError("bucket")

    with pytest.raises(MlopsError, match="m:f failed while building the pipeline: KeyError"):
        build_pipeline(failing, {}, Path.cwd(), "m:f")


def test_the_code_hash_follows_the_modules_folder(tmp_path):
    module = write(tmp_path / "pipeline.py", "def get_pipeline():\n    pass\n")
    source = parse_source(f"{module}:get_pipeline", tmp_path)
    before = source_sha256(source)
    write(tmp_path / "preprocess.py", "print('changed')\n")
    assert source_sha256(source) != before


def test_sdk_environment_changes_nothing_on_aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    before = dict(os.environ)
    with sdk_environment(SimpleNamespace(endpoint_url=None)):
        assert dict(os.environ) == before
