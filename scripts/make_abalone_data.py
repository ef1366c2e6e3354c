"""Write sample_data/abalone/abalone.csv: an abalone-shaped dataset of our own making.

The shape of the UCI abalone data that AWS's SageMaker project templates train on (sex,
seven shell measurements, rings; no header row), drawn from a fixed seed with the
relationships a real shell has: it grows with age, then more slowly; weights follow the
cube of the length; infants are young. Run again, it writes the same bytes.

    python scripts/make_abalone_data.py [--rows 800] [--out sample_data/abalone/abalone.csv]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rows(count: int, seed: int = 7) -> list[list[object]]:
    rng = random.Random(seed)  # noqa: S311 (sample data from a fixed seed, not secrets)
    found = []
    for _ in range(count):
        rings = max(1, min(29, round(rng.gammavariate(9.0, 1.1))))
        sex = "I" if rings < 7 and rng.random() < 0.8 else rng.choice("MF")
        growth = 1 - math.exp(-rings / 6.5)
        length = max(0.07, 0.08 + 0.62 * growth + rng.gauss(0, 0.035))
        diameter = max(0.05, 0.79 * length + rng.gauss(0, 0.015))
        height = max(0.01, 0.27 * length + rng.gauss(0, 0.012))
        whole = max(0.002, 3.4 * length**3 * (1 + rng.gauss(0, 0.09)))
        shucked = whole * min(0.6, max(0.25, rng.gauss(0.43, 0.04) - 0.004 * (rings - 9)))
        viscera = whole * max(0.1, rng.gauss(0.22, 0.02))
        shell = whole * max(0.15, rng.gauss(0.28, 0.025) + 0.003 * (rings - 9))
        found.append(
            [sex]
            + [round(v, 4) for v in (length, diameter, height, whole, shucked, viscera, shell)]
            + [rings]
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "sample_data" / "abalone" / "abalone.csv"
    )
    args = parser.parse_args()
    with args.out.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows(args.rows))
    print(f"Wrote {args.rows} rows to {args.out}")


if __name__ == "__main__":
    main()
