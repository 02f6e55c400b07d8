"""Benchmark national-scale builds: local streaming vs the Dask backend, 1 to 20 M households.

Run: ``python benchmarks/bench_scale.py [--sizes 1,2,5,10,20] [--data /tmp/kantong_scale]
[--backends local,dask] [--workers 2] [--naive 2]``.

For each size N (millions of households, all five Kalimantan provinces):

1. the data set is generated once with ``kantong demo-data --province all --households N
   --partitions N`` into ``DATA/hh_NM/`` (reused when present), and its partitions are
   concatenated (streamed, row group by row group) into one file ``DATA/hh_NM.parquet`` for
   the local backend, which reads one file;
2. ``kantong build`` runs in a subprocess, with the demo facilities (straight-line travel
   times, so every household gets four nearest-facility queries), the bundled population
   raster and the pockets stage: ``--backend local`` on the single file and ``--backend
   dask --workers W`` (a LocalCluster of W single-thread processes) on the partitions;
3. wall time and the peak memory of the whole process tree (the build, and for Dask the
   scheduler, nannies and workers) are sampled every 0.2 s with psutil: the sum of RSS (an
   upper bound: shared library pages count once per process) and the sum of PSS
   (proportional set size: shared pages split among the processes);
4. the two run directories are compared (cells, counts, rejects).

``--naive M`` also times the naive way on M million households: the whole file read and
validated at once (``read_households(chunk_rows=None)``) then aggregated, to show what
streaming saves in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
from agreement import check

GIB = 1024**3


def ensure_data(data: Path, millions: int) -> tuple[Path, Path, Path]:
    """Return (partition directory, single file, facilities) of an N-million data set."""
    folder = data / f"hh_{millions}M"
    if not (folder / "metadata.json").exists():
        print(f"generating {millions} M households into {folder} ...", flush=True)
        t0 = time.perf_counter()
        subprocess.run(["kantong", "demo-data", "--out", str(folder), "--province", "all",
                        "--households", str(millions * 1_000_000), "--partitions",
                        str(millions), "--seed", "42"], check=True)
        print(f"  generated in {time.perf_counter() - t0:.0f} s", flush=True)
    parts = folder / "households_synthetic"
    single = data / f"hh_{millions}M.parquet"
    if not single.exists():
        files = sorted(parts.glob("part-*.parquet"))
        tmp = single.with_suffix(".tmp")
        writer = None
        for path in files:
            pf = pq.ParquetFile(path)
            for rg in range(pf.metadata.num_row_groups):
                table = pf.read_row_group(rg)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table, row_group_size=1_000_000)
        assert writer is not None
        writer.close()
        tmp.rename(single)
    return parts, single, folder / "facilities_synthetic.geojson"


class TreeMemory:
    """Sample the memory of a process and all its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = pss = 0
            for p in procs:
                try:
                    info = p.memory_full_info()
                    rss += info.rss
                    pss += info.pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(procs))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_build(households: Path, facilities: Path, out: Path, backend: str,
              workers: int) -> dict:
    """Run ``kantong build`` in a subprocess; return time, peak memory and the manifest."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["kantong", "build", "--households", str(households), "--facilities",
           str(facilities), "--out", str(out), "--backend", backend]
    if backend == "dask":
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with TreeMemory(proc.pid) as mem:
        output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output}")
    manifest = json.loads((out / "manifest.json").read_text())
    return {"backend": backend, "wall_s": round(wall, 1),
            "peak_rss_gib": round(mem.peak_rss / GIB, 2),
            "peak_pss_gib": round(mem.peak_pss / GIB, 2), "processes": mem.peak_procs,
            "timings_s": manifest.get("timings_s", {}),
            "backend_section": manifest.get("backend", {}),
            "counts": manifest["counts"]["households"], "cells": manifest["cells"]}


def same_results(a: Path, b: Path) -> str:
    """Compare two run directories: cells and counts exactly, means to 1e-9."""
    ca = pd.read_parquet(a / "cells.parquet").drop(columns="geometry")
    cb = pd.read_parquet(b / "cells.parquet").drop(columns="geometry")
    if list(ca["h3"]) != list(cb["h3"]):
        return "DIFFERENT cells"
    for col in ca.columns:
        x, y = ca[col], cb[col]
        if pd.api.types.is_float_dtype(x):
            if not np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=0, atol=1e-9,
                               equal_nan=True):
                return f"DIFFERENT {col}"
        elif not x.equals(y):
            return f"DIFFERENT {col}"
    ra = pd.read_csv(a / "rejects.csv")
    rb = pd.read_csv(b / "rejects.csv")
    if len(ra) != len(rb) or sorted(ra["reason"]) != sorted(rb["reason"]):
        return "DIFFERENT rejects"
    return "identical"


def naive(single: Path) -> dict:
    """The whole file read and validated at once, then aggregated (in a subprocess)."""
    code = (
        "import time, json\n"
        "from kantong.engine.inputs.households import read_households\n"
        "from kantong.engine.build.grid import households_to_cell_sums\n"
        "from kantong.engine.build.run import read_study_area\n"
        "t = time.perf_counter()\n"
        "area, _ = read_study_area()\n"
        f"res = read_households({str(single)!r}, study_area=area, chunk_rows=None)\n"
        "sums = households_to_cell_sums(res.accepted, resolution=8)\n"
        "print(json.dumps({'s': time.perf_counter() - t, 'cells': len(sums)}))\n")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    with TreeMemory(proc.pid) as mem:
        output, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError("naive run failed")
    return {"wall_s": round(time.perf_counter() - t0, 1),
            "peak_rss_gib": round(mem.peak_rss / GIB, 2), **json.loads(output)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,5,10,20",
                        help="millions of households, comma-separated")
    parser.add_argument("--data", type=Path, default=Path("/tmp/kantong_scale"))
    parser.add_argument("--backends", default="local,dask")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naive", type=int, default=0,
                        help="also time the naive in-memory way on this many millions")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    print(f"machine: {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / GIB:.0f} GiB, {platform.platform()}")
    results_path = args.data / "bench_scale.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for n in sizes:
        parts, single, facilities = ensure_data(args.data, n)
        row = results.setdefault(f"{n}M", {})
        for backend in backends:
            source = single if backend == "local" else parts
            out = args.data / "runs" / f"{backend}_{n}M"
            print(f"{n} M households, {backend} ...", flush=True)
            row[backend] = run_build(source, facilities, out, backend, args.workers)
            r = row[backend]
            print(f"  {r['wall_s']:8.1f} s  peak RSS {r['peak_rss_gib']:.2f} GiB  "
                  f"PSS {r['peak_pss_gib']:.2f} GiB  ({r['processes']} processes)  "
                  f"households stage {r['timings_s'].get('households', 0):.1f} s", flush=True)
        if {"local", "dask"} <= set(row):
            row["same"] = same_results(args.data / "runs" / f"local_{n}M",
                                       args.data / "runs" / f"dask_{n}M")
            ratio = row["dask"]["wall_s"] / row["local"]["wall_s"]
            print(f"  dask / local time: {ratio:.2f}; results {row['same']}", flush=True)
            results_path.write_text(json.dumps(results, indent=1))
            check(f"{n} M households, local vs dask run directories", row["same"] == "identical",
                  row["same"])
        results_path.write_text(json.dumps(results, indent=1))
    if args.naive:
        _, single, _ = ensure_data(args.data, args.naive)
        print(f"naive in-memory, {args.naive} M households ...", flush=True)
        results[f"naive_{args.naive}M"] = r = naive(single)
        print(f"  {r['wall_s']:8.1f} s  peak RSS {r['peak_rss_gib']:.2f} GiB", flush=True)
        results_path.write_text(json.dumps(results, indent=1))

    print("\nsize  backend  wall s  peak RSS GiB  peak PSS GiB  households/s")
    for key, row in results.items():
        for backend in ("local", "dask"):
            if backend in row:
                r = row[backend]
                rate = r["counts"]["read"] / r["wall_s"]
                print(f"{key:>5} {backend:>7} {r['wall_s']:7.1f} {r['peak_rss_gib']:13.2f} "
                      f"{r['peak_pss_gib']:13.2f} {rate:13,.0f}")
    print(f"results: {results_path}")


if __name__ == "__main__":
    main()
