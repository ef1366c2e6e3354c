"""The repository's pipelines (invoke.yaml's mlops.pipelines) and --pipeline's choice."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.config.pipeline_catalog import PROJECT_PIPELINE, PipelineCatalog, derived_key
from pipelines.config.settings import PROJECT_ROOT, Settings
from pipelines.core.errors import MlopsError


def project_config() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "invoke.yaml").read_text())["mlops"]


def test_invoke_yaml_lists_both_built_in_pipelines_housing_first():
    catalog = Settings.load(project_config()).pipelines
    assert catalog.keys == ("housing", "abalone")
    assert catalog.default == "housing"
    assert catalog.position == 0
    housing, abalone = catalog.entries
    assert housing.is_project_pipeline
    assert not abalone.is_project_pipeline
    # The dataset block becomes the project pipeline's parameter defaults.
    assert housing.parameters == {
        "TargetColumn": "medv",
        "BiasFacetColumn": "chas",
        "BiasFacetThreshold": 0.5,
        "MinTestR2": 0.7,
    }
    assert abalone.source.text == "pipelines.abalone.pipeline:get_pipeline"
    assert catalog.terraform_pipelines()[0] == {"key": "housing"}
    assert catalog.terraform_pipelines()[1]["key"] == "abalone"


def test_without_a_pipelines_section_the_project_pipeline_is_the_one():
    catalog = PipelineCatalog.load(None, None, PROJECT_ROOT)
    assert catalog.chosen.source.text == PROJECT_PIPELINE


@pytest.mark.parametrize(
    ("pipelines", "default", "message"),
    [
        ({"Bad_Name": {"source": PROJECT_PIPELINE}}, None, "pipeline name 'Bad_Name'"),
        ({"a--b": {"source": PROJECT_PIPELINE}}, None, "pipeline name 'a--b'"),
        ({"ends-": {"source": PROJECT_PIPELINE}}, None, "pipeline name 'ends-'"),
        ({"wine": {}}, None, "mlops.pipelines.wine.source is missing"),
        ({"wine": {"source": "nocolon"}}, None, "looks like package.module:get_pipeline"),
        ({"wine": {"source": "missing/file.py:get_pipeline"}}, None, "does not exist"),
        (
            {"wine": {"source": PROJECT_PIPELINE, "colour": "red"}},
            None,
            "unknown setting(s) colour",
        ),
        ({"wine": {"source": PROJECT_PIPELINE, "dataset": {"label": "q"}}}, None, "dataset.label"),
        (
            {
                "wine": {
                    "source": "pipelines.abalone.pipeline:get_pipeline",
                    "dataset": {"target": "q"},
                }
            },
            None,
            "applies to the project pipeline",
        ),
        ({"wine": {"source": PROJECT_PIPELINE}}, "beer", "default_pipeline 'beer'"),
    ],
)
def test_a_wrong_entry_is_named_with_what_to_fix(pipelines, default, message):
    with pytest.raises(MlopsError) as error:
        PipelineCatalog.load(pipelines, default, PROJECT_ROOT)
    assert message in str(error.value)


def test_features_may_be_a_list_and_become_the_comma_separated_parameter():
    catalog = PipelineCatalog.load(
        {"wine": {"source": PROJECT_PIPELINE, "dataset": {"features": ["a", "b"]}}},
        None,
        PROJECT_ROOT,
    )
    assert catalog.chosen.parameters == {"FeatureColumns": "a,b"}


def write_module(folder: Path, name: str = "pipeline.py") -> Path:
    path = folder / name
    path.write_text("def get_pipeline(region, role=None):\n    return None\n")
    return path


def test_a_module_not_listed_gets_a_key_from_its_folder_and_a_place_after_the_listed(tmp_path):
    (tmp_path / "churn").mkdir()
    module = write_module(tmp_path / "churn")
    catalog = Settings.load(project_config()).pipelines
    chosen = catalog.selecting(f"{module}:get_pipeline", PROJECT_ROOT)
    assert chosen.chosen.key == "churn"
    assert not chosen.chosen.listed
    assert chosen.position == 2
    # It has no Terraform: the variable lists only what invoke.yaml lists.
    assert [p["key"] for p in chosen.terraform_pipelines()] == ["housing", "abalone"]


def test_a_listed_module_named_by_its_file_is_the_listed_pipeline():
    catalog = Settings.load(project_config()).pipelines
    chosen = catalog.selecting("pipelines/abalone/pipeline.py:get_pipeline", PROJECT_ROOT)
    assert chosen.chosen.key == "abalone"
    assert chosen.chosen.listed


def test_an_unknown_name_lists_the_pipelines_and_the_module_forms():
    catalog = Settings.load(project_config()).pipelines
    with pytest.raises(MlopsError, match=r"lists housing, abalone .*file.py:get_pipeline"):
        catalog.selecting("wine", PROJECT_ROOT)


def test_a_module_whose_key_a_listed_pipeline_has_is_refused(tmp_path):
    (tmp_path / "housing").mkdir()
    module = write_module(tmp_path / "housing")
    catalog = Settings.load(project_config()).pipelines
    with pytest.raises(MlopsError, match="would take the name 'housing'"):
        catalog.selecting(f"{module}:get_pipeline", PROJECT_ROOT)


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("my_pipelines/churn_model.py", "churn-model"),
        ("x/pipeline.py", "xx"),
        ("x/9lives.py", "p-9lives"),
    ],
)
def test_derived_keys_are_valid_resource_name_parts(tmp_path, source, key):
    from pipelines.config.pipeline_catalog import parse_source

    path = tmp_path / source
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("def get_pipeline():\n    pass\n")
    derived = derived_key(parse_source(f"{path}:get_pipeline", PROJECT_ROOT))
    assert derived == key


def test_the_catalog_survives_a_json_round_trip_for_processes_that_outlive_the_command(tmp_path):
    import json

    (tmp_path / "churn").mkdir()
    module = write_module(tmp_path / "churn")
    catalog = Settings.load(project_config()).pipelines.selecting(
        f"{module}:get_pipeline", PROJECT_ROOT
    )
    document = json.loads(json.dumps(catalog.to_document()))
    assert PipelineCatalog.from_document(document, PROJECT_ROOT) == catalog


def test_a_missing_data_file_is_named_when_a_run_needs_it_not_when_settings_load():
    from pipelines.config.pipeline_catalog import check_entry_data

    catalog = PipelineCatalog.load(
        {"wine": {"source": PROJECT_PIPELINE, "data": "nowhere.csv"}}, None, PROJECT_ROOT
    )
    with pytest.raises(MlopsError, match=r"mlops.pipelines.wine.data: file nowhere.csv does not"):
        check_entry_data(catalog.chosen, PROJECT_ROOT)
