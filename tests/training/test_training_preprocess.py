"""training/preprocess.py: validation, splitting, the Clarify config, determinism."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

GOOD_HEADER = "y,a,b"


def good_rows(n: int) -> list[str]:
    return [f"{i * 1.5},{i},{(i * 7) % 11}" for i in range(n)]


def csv_text(rows: list[str], header: str = GOOD_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def run(preprocess, input_dir: Path, out: Path, *extra: str) -> int:
    return preprocess.main(
        ["--input-dir", str(input_dir), "--output-dir", str(out), "--target-column", "y", *extra]
    )


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# --------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------


def test_parse_column_list_strips_and_drops_blanks(preprocess):
    assert preprocess.parse_column_list(" a, b ,,c ") == ["a", "b", "c"]
    assert preprocess.parse_column_list("") == []
    assert preprocess.parse_column_list(None) == []


def test_cli_columns_override_schema(preprocess):
    schema = {"target": "medv", "features": ["crim", "zn"]}
    assert preprocess.resolve_column_config(None, None, None, schema) == (
        "medv",
        ["crim", "zn"],
        [],
    )
    assert preprocess.resolve_column_config("zn", "crim", "b", schema) == ("zn", ["crim"], ["b"])
    # An empty --feature-columns means "not given": the schema's features still apply.
    assert preprocess.resolve_column_config("", "", None, schema)[1] == ["crim", "zn"]
    # Without schema features, None means every column except the target.
    assert preprocess.resolve_column_config("y", "", None, None) == ("y", None, [])


def test_column_config_errors(preprocess):
    with pytest.raises(preprocess.DataValidationError, match="no target column"):
        preprocess.resolve_column_config(None, None, None, None)
    with pytest.raises(preprocess.DataValidationError, match="also listed as a feature"):
        preprocess.resolve_column_config("y", "a,y", None, None)
    with pytest.raises(preprocess.DataValidationError, match="more than once"):
        preprocess.resolve_column_config("y", "a,b,a", None, None)


def test_load_schema_rejects_malformed_files(preprocess, tmp_path):
    bad = tmp_path / "schema.json"
    bad.write_text('{"target": "y", "features": "a,b"}', encoding="utf-8")
    with pytest.raises(preprocess.DataValidationError, match="must be a list") as info:
        preprocess.load_schema(bad)
    assert str(bad) in str(info.value)
    bad.write_text("not json", encoding="utf-8")
    with pytest.raises(preprocess.DataValidationError, match="not valid JSON"):
        preprocess.load_schema(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.5", 1.5), (" 2 ", 2.0), ("-3e2", -300.0), ("0", 0.0)],
)
def test_parse_number_accepts_finite_numbers(preprocess, text, expected):
    assert preprocess.parse_number(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "abc", "nan", "NaN", "inf", "-Infinity", "1_000"])
def test_parse_number_rejects_invalid_cells(preprocess, text):
    assert math.isnan(preprocess.parse_number(text))


def test_split_sizes(preprocess):
    assert preprocess.split_sizes(506, 0.7, 0.15) == (354, 76, 76)
    assert preprocess.split_sizes(442, 0.7, 0.15) == (309, 66, 67)
    with pytest.raises(preprocess.DataValidationError, match="every split needs at least one"):
        preprocess.split_sizes(3, 0.7, 0.15)


def test_split_indices_partition_rows_deterministically(preprocess):
    first = preprocess.split_indices(100, 0.7, 0.15, 42)
    again = preprocess.split_indices(100, 0.7, 0.15, 42)
    other = preprocess.split_indices(100, 0.7, 0.15, 7)
    combined = np.concatenate([first["train"], first["validation"], first["test"]])
    assert sorted(combined.tolist()) == list(range(100))
    assert [len(first[s]) for s in ("train", "validation", "test")] == [70, 15, 15]
    assert all(np.array_equal(first[s], again[s]) for s in first)
    assert not np.array_equal(first["train"], other["train"])


def test_find_input_file_lists_candidates_when_ambiguous(preprocess, tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("x\n1\n", encoding="utf-8")
    with pytest.raises(preprocess.DataValidationError, match=r"a\.csv, b\.csv.*--input-file"):
        preprocess.find_input_file(tmp_path)
    assert preprocess.find_input_file(tmp_path, "b.csv") == tmp_path / "b.csv"


# --------------------------------------------------------------------------------------------
# main() on real data
# --------------------------------------------------------------------------------------------


def test_boston_outputs_follow_the_contract(boston_splits, boston_csv):
    header = read_csv(boston_splits / "train" / "train.csv")[0]
    assert header == ["medv", *[c for c in boston_csv.read_text().splitlines()[0].split(",")[:-1]]]
    split_rows = {
        split: read_csv(boston_splits / split / f"{split}.csv")[1:]
        for split in ("train", "validation", "test")
    }
    assert {s: len(rows) for s, rows in split_rows.items()} == {
        "train": 354,
        "validation": 76,
        "test": 76,
    }
    # Together the splits hold exactly the source rows (as numbers), target moved first.
    source = read_csv(boston_csv)[1:]
    expected = sorted(tuple(float(v) for v in [row[-1], *row[:-1]]) for row in source)
    produced = sorted(tuple(float(v) for v in row) for rows in split_rows.values() for row in rows)
    assert produced == expected


# SHA-256 of the Boston splits (seed 42) as the streaming preprocess.py of commit 6849ccc wrote
# them: the rewrite must keep the same rows, in the same order, formatted the same way.
BOSTON_SPLIT_SHA256 = {
    "train": "d35ba5aa885332690b6f442136f9adc71fba1233d24415b7c3babe8359cea941",
    "validation": "f5c51fadf23ab3a23eff504a4e5fafeb43598073eac340ee5200846003b63d42",
    "test": "40600279a0d42d7f748ee2f406f903952aa396e6f35bbbbcaea58b24dec87d21",
}


def test_boston_splits_are_byte_identical_to_the_previous_implementation(boston_splits):
    digests = {
        split: hashlib.sha256((boston_splits / split / f"{split}.csv").read_bytes()).hexdigest()
        for split in BOSTON_SPLIT_SHA256
    }
    assert digests == BOSTON_SPLIT_SHA256
    # No baseline.json: the data-quality baseline is the analyzer's, from the check step.
    assert not (boston_splits / "baseline" / "baseline.json").exists()


def test_diabetes_runs_with_only_a_different_target_argument(
    preprocess, cli, diabetes_csv, tmp_path
):
    rc = preprocess.main(
        cli(input_dir=diabetes_csv.parent, output_dir=tmp_path, target_column="target")
    )
    assert rc == 0
    rows = read_csv(tmp_path / "test" / "test.csv")
    assert rows[0] == ["target", "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    counts = {s: len(read_csv(tmp_path / s / f"{s}.csv")) - 1 for s in ("train", "validation")}
    assert (counts, len(rows) - 1) == ({"train": 309, "validation": 66}, 67)


def test_schema_file_and_excluded_column(preprocess, cli, boston_csv, boston_schema, tmp_path):
    rc = preprocess.main(
        cli(
            input_dir=boston_csv.parent,
            input_file=boston_csv.name,
            output_dir=tmp_path,
            schema_file=boston_schema,
            exclude_columns="b",
        )
    )
    assert rc == 0
    header = read_csv(tmp_path / "train" / "train.csv")[0]
    assert header[0] == "medv"
    assert "b" not in header
    assert len(header) == 13


def test_explicit_feature_columns_select_and_order(preprocess, write_input, tmp_path):
    folder = write_input(csv_text(good_rows(30)))
    assert run(preprocess, folder, tmp_path / "out", "--feature-columns", "b,a") == 0
    assert read_csv(tmp_path / "out" / "validation" / "validation.csv")[0] == ["y", "b", "a"]


def test_individual_output_dirs_override_the_base(preprocess, write_input, tmp_path):
    folder = write_input(csv_text(good_rows(30)))
    rc = run(
        preprocess,
        folder,
        tmp_path / "base",
        "--train-dir",
        str(tmp_path / "tr"),
        "--baseline-dir",
        str(tmp_path / "bl"),
        "--bias-facet",
        "a",
    )
    assert rc == 0
    assert (tmp_path / "tr" / "train.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "bl").iterdir()) == [
        "analysis_config.json",
        "dataset.csv",
    ]
    assert (tmp_path / "base" / "validation" / "validation.csv").is_file()
    assert (tmp_path / "base" / "test" / "test.csv").is_file()
    assert not (tmp_path / "base" / "train").exists()


def test_outputs_are_byte_identical_across_runs(preprocess, cli, boston_csv, tmp_path):
    outputs = []
    for name in ("first", "second"):
        base = tmp_path / name
        rc = preprocess.main(
            cli(
                input_dir=boston_csv.parent,
                input_file=boston_csv.name,
                output_dir=base,
                target_column="medv",
                bias_facet="chas",
            )
        )
        assert rc == 0
        outputs.append(
            {
                rel: (base / rel).read_bytes()
                for rel in (
                    "train/train.csv",
                    "validation/validation.csv",
                    "test/test.csv",
                    "baseline/analysis_config.json",
                )
            }
        )
    assert outputs[0] == outputs[1]


def test_random_state_changes_the_split(preprocess, write_input, tmp_path):
    folder = write_input(csv_text(good_rows(40)))
    assert run(preprocess, folder, tmp_path / "a", "--random-state", "1") == 0
    assert run(preprocess, folder, tmp_path / "b", "--random-state", "2") == 0
    first = (tmp_path / "a" / "train" / "train.csv").read_bytes()
    assert first != (tmp_path / "b" / "train" / "train.csv").read_bytes()


# --------------------------------------------------------------------------------------------
# Bad input: one clear message on stderr, non-zero exit
# --------------------------------------------------------------------------------------------


def fail(preprocess, capsys, input_dir: Path, tmp_path: Path, *extra: str) -> str:
    rc = run(preprocess, input_dir, tmp_path / "out", *extra)
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.err.startswith("ERROR: ")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    assert not (tmp_path / "out" / "train" / "train.csv").exists()
    return captured.err


def test_empty_file(preprocess, write_input, tmp_path, capsys):
    folder = write_input(b"")
    err = fail(preprocess, capsys, folder, tmp_path)
    assert str(folder / "data.csv") in err
    assert "is empty (0 bytes, 0 data rows)" in err


def test_whitespace_only_file(preprocess, write_input, tmp_path, capsys):
    folder = write_input(" \n\n \t\n")
    err = fail(preprocess, capsys, folder, tmp_path)
    assert f"{folder / 'data.csv'} is empty (only whitespace" in err


def test_binary_file_is_not_a_csv(preprocess, write_input, tmp_path, capsys):
    folder = write_input(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01")
    err = fail(preprocess, capsys, folder, tmp_path)
    assert f"{folder / 'data.csv'} is not a valid CSV" in err
    assert "binary data" in err


def test_non_utf8_file_is_not_a_csv(preprocess, write_input, tmp_path, capsys):
    folder = write_input("y,a\n1,caf\xe9\n".encode("latin-1"))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert f"{folder / 'data.csv'} is not a valid CSV: it is not UTF-8 text" in err
    assert "0xe9" in err


def test_json_document_is_not_a_csv(preprocess, write_input, tmp_path, capsys):
    folder = write_input('{"y": [1, 2], "a": [3, 4]}\n')
    err = fail(preprocess, capsys, folder, tmp_path)
    assert f"{folder / 'data.csv'} is not a valid CSV: it looks like a JSON document" in err


def test_ragged_rows_are_not_a_csv(preprocess, write_input, tmp_path, capsys):
    rows = good_rows(30)
    rows[1] = "1,2"
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert f"{folder / 'data.csv'} is not a valid CSV: line 3 has 2 fields, expected 3" in err


def test_duplicate_header_names(preprocess, write_input, tmp_path, capsys):
    folder = write_input(csv_text(["1,2,3,4"] * 30, header="y,a,b,a"))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert str(folder / "data.csv") in err
    assert "duplicate column name(s) in the header: 'a'" in err
    assert "30 data rows" in err


def test_missing_target_column(preprocess, write_input, tmp_path, capsys):
    folder = write_input(csv_text(good_rows(25), header="price,a,b"))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert str(folder / "data.csv") in err
    assert "missing column(s) 'y' (target)" in err
    assert "available columns: price, a, b" in err
    assert "25 data rows" in err


def test_missing_feature_column(preprocess, write_input, tmp_path, capsys):
    folder = write_input(csv_text(good_rows(25)))
    err = fail(preprocess, capsys, folder, tmp_path, "--feature-columns", "a,c")
    assert str(folder / "data.csv") in err
    assert "missing column(s) 'c' (feature)" in err
    assert "available columns: y, a, b" in err
    assert "25 data rows" in err


def test_non_numeric_values(preprocess, write_input, tmp_path, capsys):
    rows = good_rows(30)
    rows[4] = "7.5,abc,1"
    rows[9] = "9,x,2"
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert str(folder / "data.csv") in err
    assert "column 'a' has 2 invalid value(s)" in err
    assert "in 30 data rows" in err
    assert "first at row 5 (line 6): 'abc'" in err


def test_nan_and_inf_beyond_tolerance(preprocess, write_input, tmp_path, capsys):
    rows = good_rows(40)
    rows[2] = "nan,1,2"
    rows[3] = "inf,1,2"
    rows[7] = ",1,2"
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path, "--max-invalid-fraction", "0.05")
    assert str(folder / "data.csv") in err
    assert "column 'y' has 3 invalid value(s)" in err
    assert "in 40 data rows (7.50%, tolerance 5.00%)" in err
    assert "first at row 3 (line 4): 'nan'" in err


def test_invalid_rows_within_tolerance_are_dropped(preprocess, write_input, tmp_path, capsys):
    rows = good_rows(40)
    rows[2] = "nan,1,2"
    rows[5] = "1,inf,2"
    rows[8] = "1,2,oops"
    folder = write_input(csv_text(rows))
    rc = run(preprocess, folder, tmp_path / "out", "--max-invalid-fraction", "0.05")
    out = capsys.readouterr().out
    assert rc == 0
    assert "dropped 3 of 40 rows" in out
    values = [
        cell
        for split in ("train", "validation", "test")
        for row in read_csv(tmp_path / "out" / split / f"{split}.csv")[1:]
        for cell in row
    ]
    assert len(values) == 37 * 3
    assert all(math.isfinite(float(v)) for v in values)


def test_too_few_rows(preprocess, write_input, tmp_path, capsys):
    folder = write_input(csv_text(good_rows(12)))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert str(folder / "data.csv") in err
    assert "only 12 usable data rows (12 read, 0 dropped); at least 20 required" in err


def test_too_few_rows_after_dropping(preprocess, write_input, tmp_path, capsys):
    rows = good_rows(20)
    rows[0] = "1,,2"
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path, "--max-invalid-fraction", "0.1")
    assert str(folder / "data.csv") in err
    assert "only 19 usable data rows (20 read, 1 dropped); at least 20 required" in err


def test_header_only_file(preprocess, write_input, tmp_path, capsys):
    folder = write_input("y,a,b\n")
    err = fail(preprocess, capsys, folder, tmp_path)
    assert str(folder / "data.csv") in err
    assert "0 data rows" in err


def test_several_csv_files_without_input_file(preprocess, write_input, tmp_path, capsys):
    write_input(csv_text(good_rows(30)), "one.csv")
    folder = write_input(csv_text(good_rows(30)), "two.csv")
    err = fail(preprocess, capsys, folder, tmp_path)
    assert "one.csv, two.csv" in err
    assert "--input-file" in err
    assert run(preprocess, folder, tmp_path / "ok", "--input-file", "two.csv") == 0


def test_bad_ratios_are_rejected(preprocess, write_input, tmp_path, capsys):
    folder = write_input(csv_text(good_rows(30)))
    err = fail(
        preprocess, capsys, folder, tmp_path, "--train-ratio", "0.9", "--validation-ratio", "0.1"
    )
    assert "test split is not empty" in err


@pytest.mark.parametrize(
    ("cell", "column", "expected"),
    [
        # A finite float64, but its square (and so the column's statistics) overflows: 30
        # values, differences up to twice the limit, squared and summed: sqrt(max / 120).
        (
            "1e308",
            "y",
            "column 'y' holds '1e308' at data row 5 (line 6), beyond "
            f"±{math.sqrt(np.finfo(np.float64).max / 120):.4g}, the most whose squares, "
            "summed over its 30 rows, fit in float64",
        ),
        # scikit-learn's trees read features as float32.
        ("1e39", "a", "column 'a' holds '1e39' at data row 5 (line 6), beyond ±3.403e+38"),
    ],
)
def test_values_too_large_for_the_statistics_are_refused(
    preprocess, write_input, tmp_path, capsys, cell, column, expected
):
    rows = good_rows(30)
    rows[4] = f"{cell},1,2" if column == "y" else f"1,{cell},2"
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert f"{folder / 'data.csv'}: {expected}" in err


def test_a_too_large_value_is_named_by_its_data_row_after_drops(
    preprocess, write_input, tmp_path, capsys
):
    rows = good_rows(40)
    rows[1] = "nan,1,2"  # dropped within the tolerance: row numbers still count it
    rows[4] = "1,1e39,2"
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path, "--max-invalid-fraction", "0.05")
    assert "column 'a' holds '1e39' at data row 5 (line 6)" in err


@pytest.mark.parametrize("cell", ["1e309", "-1e400", "inf", "-Infinity", "nan"])
def test_non_finite_text_names_its_column_and_row(preprocess, write_input, tmp_path, capsys, cell):
    rows = good_rows(30)
    rows[4] = f"{cell},1,2"
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert "column 'y' has 1 invalid value(s)" in err
    assert f"first at row 5 (line 6): '{cell}'" in err


def test_large_values_within_the_limits_are_kept(preprocess, write_input, tmp_path):
    rows = good_rows(30)
    rows[4] = "1e150,3e38,-1e-300"
    folder = write_input(csv_text(rows))
    assert run(preprocess, folder, tmp_path / "out") == 0
    written = [
        row
        for split in ("train", "validation", "test")
        for row in read_csv(tmp_path / "out" / split / f"{split}.csv")[1:]
    ]
    assert ["1e+150", "3e+38", "-1e-300"] in written


def test_a_constant_target_has_nothing_to_learn(preprocess, write_input, tmp_path, capsys):
    folder = write_input(csv_text([f"4.5,{i},{i % 3}" for i in range(50)]))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert (
        f"{folder / 'data.csv'}: target column 'y' has the same value (4.5) in all 50 usable "
        "data rows: there is nothing to learn"
    ) in err


def test_a_constant_train_split_target_has_nothing_to_learn(
    preprocess, write_input, tmp_path, capsys
):
    # One differing target value, placed where seed 42 sends a test row.
    test_row = int(preprocess.split_indices(30, 0.7, 0.15, 42)["test"][0])
    rows = [f"{7.0 if i == test_row else 2.0},{i},{i % 3}" for i in range(30)]
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert (
        "target column 'y' has the same value (2.0) in the 21 rows of the train split "
        "(--random-state 42): there is nothing to learn"
    ) in err


@pytest.mark.parametrize("seed", ["99999999999", "4294967296", "-1"])
def test_random_state_outside_numpys_seed_range(preprocess, write_input, tmp_path, capsys, seed):
    folder = write_input(csv_text(good_rows(30)))
    err = fail(preprocess, capsys, folder, tmp_path, "--random-state", seed)
    assert "--random-state must be a whole number from 0 to 4294967295 (2**32 - 1" in err
    assert err.rstrip().endswith(f"got {seed}")


def test_random_state_accepts_the_whole_seed_range(preprocess, write_input, tmp_path):
    folder = write_input(csv_text(good_rows(30)))
    # numpy's own bound, so the rule above is exactly what RandomState enforces.
    with pytest.raises(ValueError, match=r"between 0 and 2\*\*32 - 1"):
        np.random.RandomState(2**32)
    for seed in ("0", "4294967295"):
        assert run(preprocess, folder, tmp_path / seed, "--random-state", seed) == 0


# --------------------------------------------------------------------------------------------
# Reading: bytes, structure, cells
# --------------------------------------------------------------------------------------------


def test_whitespace_only_line_between_rows_is_a_ragged_line(
    preprocess, write_input, tmp_path, capsys
):
    rows = good_rows(30)
    rows[3] = "   "
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert f"{folder / 'data.csv'} is not a valid CSV: line 5 has 1 fields, expected 3" in err


def test_bom_crlf_and_blank_lines_read_like_a_plain_file(preprocess, write_input, tmp_path):
    rows = good_rows(30)
    plain = write_input(csv_text(rows), "plain.csv")
    # Blank and whitespace-only lines before the header and empty lines between rows are skipped.
    messy = "\ufeff \r\n\r\n" + "\r\n".join([GOOD_HEADER, *rows[:10], "", *rows[10:]]) + "\r\n\r\n"
    write_input(messy.encode("utf-8"), "messy.csv")
    assert run(preprocess, plain, tmp_path / "plain", "--input-file", "plain.csv") == 0
    assert run(preprocess, plain, tmp_path / "messy", "--input-file", "messy.csv") == 0
    for split in ("train", "validation", "test"):
        rel = f"{split}/{split}.csv"
        assert (tmp_path / "plain" / rel).read_bytes() == (tmp_path / "messy" / rel).read_bytes()


def test_quoted_header_and_cells_spanning_lines(preprocess, write_input, tmp_path, capsys):
    rows = good_rows(30)
    rows[5] = '"7.5",1,"x\ny"'
    folder = write_input(csv_text(rows, header='"y","a","b\nc"'))
    err = fail(preprocess, capsys, folder, tmp_path, "--feature-columns", "a,b\nc")
    # The header ends on line 2, so data row 6 ends on line 9 (its cell spans lines 8-9).
    assert "column 'b\\nc' has 1 invalid value(s)" in err
    assert "first at row 6 (line 9): 'x\\ny'" in err


def test_byte_checks_name_the_offending_byte(preprocess, tmp_path):
    path = tmp_path / "data.csv"

    def check(content: bytes) -> str:
        path.write_bytes(content)
        return preprocess.read_text(path, "src")

    assert check("\ufeffy,a\n1,café\n".encode()) == "y,a\n1,café\n"
    with pytest.raises(preprocess.DataValidationError, match=r"byte 0xe9 at offset 9\)"):
        check("y,a\n1,caf\xe9\n".encode("latin-1"))
    # Offsets count the BOM; a truncated sequence at the very end is reported too.
    with pytest.raises(preprocess.DataValidationError, match=r"byte 0xe9 at offset 12\)"):
        check(b"\xef\xbb\xbf" + "y,a\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(preprocess.DataValidationError, match=r"byte 0xc3 at offset 8\)"):
        check(b"y,a\n1,ab\xc3")
    # A NUL byte wins over an earlier invalid UTF-8 byte.
    with pytest.raises(preprocess.DataValidationError, match=r"NUL byte at offset 12\)"):
        check(b"y,a\n1,\xff\n2,3\n\x00")
    with pytest.raises(preprocess.DataValidationError, match=r"JSON document \(starts with '\['\)"):
        check(b"\xef\xbb\xbf  \n\t\n  [1, 2]\n")
    with pytest.raises(preprocess.DataValidationError, match=r"empty \(only whitespace"):
        check(b" \n\t\r\n   \n  ")


def test_csv_module_errors_are_reported_with_their_line(preprocess, write_input, tmp_path, capsys):
    rows = good_rows(30)
    rows[20] = "1,2," + "9" * 200_000  # longer than csv.field_size_limit()
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert (
        f"{folder / 'data.csv'} is not a valid CSV: line 22: field larger than field limit" in err
    )


def test_unterminated_quote_is_not_a_csv(preprocess, write_input, tmp_path, capsys):
    folder = write_input(csv_text(good_rows(30)) + '1,2,"3\n')
    err = fail(preprocess, capsys, folder, tmp_path)
    assert f"{folder / 'data.csv'} is not a valid CSV: line 32: unexpected end of data" in err


def test_text_after_a_closing_quote_is_not_a_csv(preprocess, write_input, tmp_path, capsys):
    rows = good_rows(30)
    rows[6] = '1,"2"5,3'  # a lenient reader would take this as 25
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert f"{folder / 'data.csv'} is not a valid CSV: line 8: ',' expected after '\"'" in err


def test_cells_are_parsed_like_parse_number(preprocess, write_input, tmp_path, capsys):
    rows = good_rows(30)
    rows[0] = " 2.5 ,\t1,-0"  # padded cells are numbers, like parse_number(" 2 ")
    folder = write_input(csv_text(rows))
    assert run(preprocess, folder, tmp_path / "ok") == 0
    written = [
        row
        for split in ("train", "validation", "test")
        for row in read_csv(tmp_path / "ok" / split / f"{split}.csv")[1:]
    ]
    assert ["2.5", "1.0", "-0.0"] in written
    rows[7] = "1,1_000,2"  # float() accepts digit-group underscores, parse_number does not
    folder = write_input(csv_text(rows))
    err = fail(preprocess, capsys, folder, tmp_path)
    assert "column 'a' has 1 invalid value(s)" in err
    assert "first at row 8 (line 9): '1_000'" in err


def test_format_rows_writes_repr(preprocess):
    values = [0.1, -0.0, 1e-05, 1e16, 123456789.125, 2.0 / 3.0, -5.0, 1.7976931348623157e308]
    block = np.array(values).reshape(2, 4)
    expected = "".join(",".join(repr(v) for v in row) + "\n" for row in block.tolist())
    assert preprocess.format_rows(block) == expected


def test_bias_analysis_config_uses_the_target_and_the_whole_datas_median(
    preprocess, cli, boston_csv, tmp_path, capsys
):
    out = tmp_path / "out"
    args = cli(input_dir=boston_csv.parent, output_dir=out, target_column="medv")
    assert preprocess.main([*args, "--bias-facet=chas", "--bias-label-threshold="]) == 0
    config = json.loads((out / "baseline" / "analysis_config.json").read_text())
    # The bias check reads every validated row (a rerun with another seed, the same data).
    dataset = read_csv(out / "baseline" / "dataset.csv")
    splits = [read_csv(out / s / f"{s}.csv") for s in ("train", "validation", "test")]
    assert dataset[0] == splits[0][0]
    every_split_row = [tuple(row) for split in splits for row in split[1:]]
    assert sorted(map(tuple, dataset[1:])) == sorted(every_split_row)
    medv = sorted(float(row[0]) for row in dataset[1:])
    middle = len(medv) // 2
    median = medv[middle] if len(medv) % 2 else (medv[middle - 1] + medv[middle]) / 2
    assert config["label"] == "medv"
    # train.csv has a header row: Clarify reads column names from the dataset only when the
    # config has no "headers" (developer guide, clarify-processing-job-configure-analysis:
    # "If a value for headers is not provided, then the Clarify processing job reads the
    # headers from the dataset").
    assert "headers" not in config
    assert config["dataset_type"] == "text/csv"
    assert config["label_values_or_threshold"] == [pytest.approx(median)]
    assert config["facet"] == [{"name_or_index": "chas", "value_or_threshold": [0.5]}]
    assert config["methods"]["pre_training_bias"] == {"methods": "all"}
    # An explicit threshold wins, and a facet that is not a feature is refused clearly.
    assert preprocess.main([*args, "--bias-facet=chas", "--bias-label-threshold=30"]) == 0
    config = json.loads((out / "baseline" / "analysis_config.json").read_text())
    assert config["label_values_or_threshold"] == [30.0]
    assert preprocess.main([*args, "--bias-facet=river"]) == 2
    assert "bias facet column 'river' is not a feature column" in capsys.readouterr().err
