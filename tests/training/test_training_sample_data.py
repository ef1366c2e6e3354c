"""The shipped Boston sample data matches its data card and schema."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

SAMPLE_DATA_DIR = Path(__file__).resolve().parents[2] / "sample_data"

HEADER = "crim,zn,indus,chas,nox,rm,age,dis,rad,tax,ptratio,b,lstat,medv"


def read_rows() -> list[list[str]]:
    with open(SAMPLE_DATA_DIR / "boston_housing.csv", newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_csv_has_exact_header_and_506_numeric_rows():
    text = (SAMPLE_DATA_DIR / "boston_housing.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == HEADER
    rows = read_rows()[1:]
    assert len(rows) == 506
    assert all(len(row) == 14 for row in rows)
    assert all(float(value) == float(value) for row in rows for value in row)


def test_values_are_kept_as_written_in_the_statlib_file():
    rows = read_rows()
    # First and last records of scikit-learn 1.1's boston_house_prices.csv, verbatim.
    assert ",".join(rows[1]) == "0.00632,18,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,396.9,4.98,24"
    assert ",".join(rows[-1]) == "0.04741,0,11.93,0,0.573,6.03,80.8,2.505,1,273,21,396.9,7.88,11.9"


def test_readme_states_the_csv_sha256():
    digest = hashlib.sha256((SAMPLE_DATA_DIR / "boston_housing.csv").read_bytes()).hexdigest()
    readme = (SAMPLE_DATA_DIR / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"sha256 of `boston_housing.csv`: `([0-9a-f]{64})`", readme)
    assert stated is not None
    assert stated.group(1) == digest


def test_target_is_censored_at_50():
    medv = [float(row[-1]) for row in read_rows()[1:]]
    assert max(medv) == 50.0
    assert sum(value == 50.0 for value in medv) == 16


def test_schema_matches_the_csv_columns():
    schema = json.loads((SAMPLE_DATA_DIR / "schema.json").read_text(encoding="utf-8"))
    header = HEADER.split(",")
    assert schema["target"] == "medv"
    assert schema["features"] == [name for name in header if name != "medv"]
