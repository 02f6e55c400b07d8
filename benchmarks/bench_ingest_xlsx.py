"""Benchmark reading a P3KE-shaped Excel register against the same rows as CSV.

Run: ``python benchmarks/bench_ingest_xlsx.py [--rows 500000] [--repeat 1]``.

The register is the P3KE family layout (``--schema p3ke``: 31 columns, Indonesian labels,
Kemendagri codes, no coordinates) written once as ``.xlsx`` (a ``Rekap`` sheet and title
rows first) and once as CSV with the same header and values. Measured, best of
``--repeat``:

1. **read**: the rows into batches with the schema's columns
   (:func:`kantong.engine.inputs.households.iter_household_batches`): sheet and header
   detection and fastexcel for the workbook, pandas for the CSV;
2. **ingest**: :func:`kantong.engine.inputs.households.read_households` end to end (read,
   labels, village-code system, placement from the village code of every family).

The acceptance of issue 13 is ingest(xlsx) <= 3 x ingest(CSV). The machine is a shared
2-core box; numbers move with its load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kantong.engine.constants import DEPRIVATION_FIELDS
from kantong.engine.demo.p3ke import register_to_p3ke, write_p3ke_workbook
from kantong.engine.inputs import boundaries
from kantong.engine.inputs.households import iter_household_batches, read_households

PROVINCE = "61"


def canonical(n: int, *, seed: int = 0) -> pd.DataFrame:
    """A canonical register of ``n`` families in Kalbar villages that have a Kemendagri code."""
    rng = np.random.default_rng(seed)
    bps = boundaries.kemendagri_village_crosswalk()
    codes = pd.Series(bps.to_numpy())
    codes = codes[codes.str.startswith(PROVINCE)].unique()
    frame = pd.DataFrame({
        "household_id": [f"P3KE61{i:011d}" for i in range(n)],
        "village_code": codes[rng.integers(0, len(codes), n)],
        "desil": rng.integers(1, 5, n), "members": rng.integers(1, 9, n),
        **{f: rng.random(n) < 0.6 for f in DEPRIVATION_FIELDS},
    })
    return frame


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        p3ke = register_to_p3ke(canonical(args.rows), seed=1)
        xlsx = write_p3ke_workbook(p3ke, folder / "p3ke.xlsx")
        csv = folder / "p3ke.csv"
        p3ke.to_csv(csv, index=False)
        print(f"{len(p3ke):,} families x {p3ke.shape[1]} columns written in "
              f"{time.perf_counter() - start:.1f} s (xlsx {xlsx.stat().st_size / 2**20:.0f} MiB, "
              f"csv {csv.stat().st_size / 2**20:.0f} MiB)")

        def read(path: Path) -> None:
            rows = sum(len(b) for b in iter_household_batches(path, schema="p3ke",
                                                              batch_rows=None))
            assert rows == len(p3ke), rows

        def ingest(path: Path) -> None:
            result = read_households(path, schema="p3ke")
            assert len(result.accepted) == len(p3ke), result.rejects["reason"].value_counts()

        # warm-up, untimed: the village crosswalk and boundary caches are loaded once per
        # process, so whichever format runs first would otherwise pay for them alone
        warm = folder / "warm.csv"
        p3ke.head(1000).to_csv(warm, index=False)
        read_households(warm, schema="p3ke")

        rows = []
        for name, fn in (("read", read), ("ingest", ingest)):
            t_csv = best(lambda fn=fn: fn(csv), args.repeat)
            t_xlsx = best(lambda fn=fn: fn(xlsx), args.repeat)
            rows.append((name, t_csv, t_xlsx))
            print(f"{name:<7} csv {t_csv:6.2f} s   xlsx {t_xlsx:6.2f} s   ratio "
                  f"{t_xlsx / t_csv:4.1f}x   ({len(p3ke) / t_xlsx:,.0f} xlsx rows/s)")
        ratio = rows[-1][2] / rows[-1][1]
        verdict = "meets" if ratio <= 3 else "MISSES"
        print(f"acceptance (ingest xlsx <= 3 x csv): {ratio:.1f}x, {verdict} it")


if __name__ == "__main__":
    main()
