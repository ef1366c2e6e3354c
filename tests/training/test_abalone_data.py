"""The abalone sample is what its generator writes, with the shape its pipeline reads."""

from __future__ import annotations

import csv
import subprocess
import sys

from pipelines.config.settings import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "sample_data" / "abalone" / "abalone.csv"


def test_the_generator_reproduces_the_committed_sample(tmp_path):
    out = tmp_path / "abalone.csv"
    subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "make_abalone_data.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == SAMPLE.read_bytes()


def test_rows_are_sex_seven_measurements_and_integer_rings():
    rows = list(csv.reader(SAMPLE.open()))
    assert len(rows) == 800
    assert {row[0] for row in rows} == {"M", "F", "I"}
    for row in rows:
        assert len(row) == 9
        assert all(float(value) > 0 for value in row[1:8])
        assert 1 <= int(row[8]) <= 29
