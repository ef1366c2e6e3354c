"""Bad input is caught before any work starts (issue 12, item 8)."""

from __future__ import annotations

import pytest

from pipelines.cli.arguments import optional_whole_number, whole_number
from pipelines.core.errors import MlopsError
from pipelines.core.s3io import parse_s3_uri
from pipelines.definition.parameters import ParameterError, check_arguments
from pipelines.launch.datasets import check_data_argument, content_key


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/data/a#b.csv", ("bucket", "data/a#b.csv")),
        ("s3://bucket/data/what?.csv", ("bucket", "data/what?.csv")),
        ("s3://bucket/a b/c%20d#?.csv", ("bucket", "a b/c%20d#?.csv")),
        ("s3://bucket", ("bucket", "")),
    ],
)
def test_s3_uris_keep_every_character_s3_accepts(uri, expected):
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["http://bucket/key", "s3:///key", "bucket/key"])
def test_non_s3_uris_are_rejected(uri):
    with pytest.raises(MlopsError, match="Not an S3 URI"):
        parse_s3_uri(uri)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "--version must be a whole number, got 'abc'"),
        ("0", "at least 1"),
        ("1.5", "whole number, got .1.5."),
    ],
)
def test_version_and_limit_must_be_whole_numbers(value, message):
    with pytest.raises(MlopsError, match=message):
        whole_number(value, "--version")


def test_whole_numbers_are_parsed():
    assert whole_number(" 12 ", "--limit") == 12
    assert optional_whole_number(None, "--version") is None


@pytest.mark.parametrize("value", ["2", "nan", "inf", "1.0001"])
def test_a_min_test_r2_outside_what_r2_can_be_is_rejected(value):
    with pytest.raises(ParameterError, match=r"MinTestR2=.* must be a finite R² threshold"):
        check_arguments([f"MinTestR2={value}"], None)


@pytest.mark.parametrize("value", ["1", "0.7", "-0.5"])
def test_a_min_test_r2_r2_can_reach_is_accepted(value):
    assert check_arguments([f"MinTestR2={value}"], None) == {"MinTestR2": float(value)}


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("NEstimators=0", "NEstimators=0 must be at least 1"),
        ("MaxDepth=-1", "MaxDepth=-1 must be at least 0"),
        ("ModelApprovalStatus=Maybe", "must be one of PendingManualApproval"),
    ],
)
def test_other_values_are_checked_against_what_they_mean(pair, message):
    with pytest.raises(ParameterError, match=message):
        check_arguments([pair], None)


def test_a_missing_data_file_is_reported_before_anything_runs(tmp_path):
    with pytest.raises(MlopsError, match="does not exist"):
        check_data_argument(str(tmp_path / "typo.csv"))
    present = tmp_path / "data#1?.csv"
    present.write_text("a,b\n1,2\n")
    check_data_argument(str(present))
    check_data_argument("s3://bucket/any/key?.csv")
    check_data_argument(None)


def test_content_keys_name_the_bytes_and_keep_the_file_name():
    assert content_key("ab" * 32, "d#?.csv") == f"datasets/{'ab' * 32}/d#?.csv"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("folder", r"--output .*folder is a folder: name a file in it, e\.g\. .*predictions\.csv"),
        ("missing/out.csv", r"--output .*out\.csv: the folder .*missing does not exist"),
    ],
)
def test_predict_refuses_an_output_it_cannot_write_before_sending_anything(tmp_path, name, message):
    from pipelines.actions import endpoints
    from pipelines.config.settings import Settings

    (tmp_path / "folder").mkdir()
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,2\n")
    settings = Settings.load(None, environ={"MLOPS_STATE_DIR": str(tmp_path / "state")})
    with pytest.raises(MlopsError, match=message):
        endpoints.predict(settings, "local", None, None, data, None, tmp_path / name)
    assert not (tmp_path / "state").exists()  # no endpoint or emulator was looked for
