"""Benchmark the pockets stage: Gi* (ours vs esda vs a naive loop) and write_pockets.

Run: ``python benchmarks/bench_pockets.py [--rings 182] [--repeat 3]``
(182 rings around one H3 cell = 99,919 cells at resolution 8). Needs the ``bench``
extra for the peer library (esda, libpysal).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import geopandas as gpd
import h3
import h3ronpy
import h3ronpy.vector as h3v
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
import shapely
from agreement import check, check_close
from scipy import stats

from kantong.engine.config import Config
from kantong.engine.constants import DEPRIVATIONS, EQUAL_AREA, FACILITY_TYPES, WGS84
from kantong.engine.inputs import boundaries
from kantong.engine.pockets.hotspots import eb_rate, gi_star, neighbour_weights
from kantong.engine.pockets.run import write_pockets

CENTRE = (0.3, 111.6)  # Sintang / Kapuas Hulu interior, Kalimantan Barat


def synthetic_cells(rings: int, *, seed: int = 0, resolution: int = 8) -> gpd.GeoDataFrame:
    """A contract-like cells table of 3r(r+1)+1 cells with 60 planted pockets (vectorised)."""
    rng = np.random.default_rng(seed)
    origin = h3.latlng_to_cell(*CENTRE, resolution)
    idx = np.asarray(pa.array(h3ronpy.grid_disk(np.array([h3.str_to_int(origin)], np.uint64),
                                                rings, flatten=True))).astype(np.uint64)
    idx.sort()
    cells = np.asarray(pa.array(h3ronpy.cells_to_string(idx)), dtype=object)
    n = len(cells)
    hot = np.zeros(n, bool)
    lookup = pd.Index(idx)
    for centre in rng.choice(idx, 60, replace=False):  # 60 pockets
        disk = np.asarray(pa.array(h3ronpy.grid_disk(np.array([centre], np.uint64),
                                                     int(rng.integers(1, 5)), flatten=True)))
        pos = lookup.get_indexer(disk.astype(np.uint64))
        hot[pos[pos >= 0]] = True
    hh = rng.poisson(20, n) + 1
    ext = rng.binomial(hh, np.where(hot, 0.35, 0.05))
    members = rng.integers(2, 6, n)
    frame = pd.DataFrame({"h3": cells, "resolution": np.int8(resolution), "households": hh,
                          "persons": hh * members, "extreme_households": ext,
                          "extreme_persons": ext * members})
    frame["extreme_rate"] = frame["extreme_persons"] / frame["persons"]
    for _, count_col, share_col in DEPRIVATIONS.values():
        frame[count_col] = rng.binomial(hh, np.where(hot, 0.6, 0.2))
        frame[share_col] = frame[count_col] / hh
    frame["assistance_gap"] = rng.binomial(ext, 0.4)
    for t in FACILITY_TYPES:
        frame[f"travel_min_{t}"] = rng.gamma(2.0, 20.0, n) + np.where(hot, 80.0, 0.0)
    coords = h3v.cells_to_coordinates(idx)
    frame["lat"] = np.asarray(coords.column("lat"))
    frame["lon"] = np.asarray(coords.column("lng"))
    geoms = shapely.from_wkb(np.asarray(pa.array(h3v.cells_to_wkb_polygons(idx))))
    gdf = gpd.GeoDataFrame(frame, geometry=geoms, crs=WGS84)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=WGS84)
    reg = boundaries.regencies()[["province_code", "province_name", "regency_code",
                                  "regency_name", "geometry"]]
    joined = gpd.sjoin(pts, reg, how="left", predicate="within")
    joined = joined[~joined.index.duplicated()]
    outside = joined["regency_code"].isna()
    if outside.any():  # coast / border cells: nearest regency
        near = gpd.sjoin_nearest(pts[outside].to_crs(EQUAL_AREA), reg.to_crs(EQUAL_AREA))
        near = near[~near.index.duplicated()]
        joined.loc[near.index, near.columns.drop("geometry")] = near.drop(columns="geometry")
    for col in ("province_code", "province_name", "regency_code", "regency_name"):
        gdf[col] = joined[col].astype("string").to_numpy()
    return gdf


def naive_weights(cells: np.ndarray, k: int) -> sp.csr_matrix:
    """Loop per cell: h3.grid_disk + dict look-ups (the way not to do it)."""
    pos = {c: i for i, c in enumerate(cells)}
    rows, cols = [], []
    for i, c in enumerate(cells):
        for nb in h3.grid_disk(c, k):
            j = pos.get(nb)
            if j is not None:
                rows.append(i)
                cols.append(j)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(cells), len(cells)))


def naive_gi_star(cells: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Loop per cell Gi* (Ord & Getis 1995) with grid_disk neighbours."""
    pos = {c: i for i, c in enumerate(cells)}
    n, xbar, s = len(x), x.mean(), x.std()
    z = np.empty(n)
    for i, c in enumerate(cells):
        nb = [pos[m] for m in h3.grid_disk(c, k) if m in pos]
        wi = len(nb)
        z[i] = (x[nb].sum() - xbar * wi) / (s * np.sqrt((n * wi - wi * wi) / (n - 1)))
    return z


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rings", type=int, default=182)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--k-ring", type=int, default=1)
    args = parser.parse_args()
    k, rep = args.k_ring, args.repeat

    t0 = time.perf_counter()
    cells = synthetic_cells(args.rings)
    print(f"synthetic cells: {len(cells):,} ({time.perf_counter() - t0:.1f} s to make)")
    h3ids = cells["h3"].to_numpy()
    x = eb_rate(cells["extreme_households"].to_numpy(), cells["households"].to_numpy())

    best_w, med_w, w = timed(lambda: neighbour_weights(h3ids, k_ring=k), rep)
    best_nw, _, w_naive = timed(lambda: naive_weights(h3ids, k), 1)
    check("neighbour weights, ours vs a naive grid_disk loop", (w != w_naive).nnz == 0,
          f"{w.nnz:,} entries")
    print(f"weights  ours (h3ronpy.grid_disk + get_indexer): {best_w:.3f} s (median {med_w:.3f})")
    print(f"weights  naive loop per cell:                    {best_nw:.3f} s "
          f"-> ours {best_nw / best_w:.0f}x faster")

    best_g, med_g, (z, _) = timed(lambda: gi_star(x, w), rep)
    best_ng, _, z_naive = timed(lambda: naive_gi_star(h3ids, x, k), 1)
    print(f"Gi*      ours (sparse, analytical):              {best_g:.4f} s (median {med_g:.4f})")
    print(f"Gi*      naive loop per cell (incl. grid_disk):  {best_ng:.3f} s "
          f"-> ours {best_ng / best_g:.0f}x faster (max |dz| {np.abs(z - z_naive).max():.1e})")
    check_close("Gi* z, ours vs the naive loop", float(np.abs(z - z_naive).max()), 1e-9)

    import esda
    import libpysal

    off = sp.csr_matrix(w - sp.diags(w.diagonal()))
    off.eliminate_zeros()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        pw = libpysal.weights.WSP(off).to_W(silence_warnings=True)
        t_w = time.perf_counter() - t0
        best_e, med_e, g = timed(
            lambda: esda.G_Local(x, pw, transform="B", star=True, permutations=0), rep)
    dz = np.abs(np.asarray(g.Zs) - z).max()
    dp = np.abs(stats.norm.sf(np.abs(z)) - np.asarray(g.p_norm)).max()
    print(f"Gi*      esda.G_Local(star=True, B, perm=0):     {best_e:.3f} s (median {med_e:.3f}); "
          f"libpysal W from our sparse matrix {t_w:.1f} s")
    print(f"         ours {best_e / best_g:.0f}x faster than esda; max |z - esda z| {dz:.1e}, "
          f"max |p - esda p_norm(|z|)| {dp:.1e}")
    check_close("Gi* z, ours vs esda.G_Local", float(dz), 1e-6)
    check_close("Gi* p, ours vs esda p_norm", float(dp), 1e-6)

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        cells.to_parquet(run / "cells.parquet")
        (run / "manifest.json").write_text(json.dumps({"run_id": "bench"}))
        totals, last = [], None
        for _ in range(rep):
            t0 = time.perf_counter()
            last = write_pockets(run, Config())
            totals.append(time.perf_counter() - t0)
        print(f"write_pockets on {len(cells):,} cells: best {min(totals):.2f} s, median "
              f"{statistics.median(totals):.2f} s; {last.n_hot:,} hot cells, "
              f"{last.n_pockets} pockets")
        print("  stages (last run): " + ", ".join(f"{k} {v:.2f} s"
                                                  for k, v in last.timings.items()))


if __name__ == "__main__":
    main()
