"""Benchmark: exact zonal statistics (ours) against exactextract, side by side, asserted.

Rasters
  * ``ghspop``: the bundled GHS-POP 1 km population grid (EPSG:4326, real data);
  * ``friction100``: a 100 m raster in UTM zone 49S (EPSG:32749) over 280 x 280 km of
    Kalimantan Barat, a smooth field plus noise with a nodata block (synthetic values; what
    matters is the grid: 7.8 M pixels in a projected CRS).

Cells: every H3 cell of resolution 6, 7, 8 and 9 whose centre lies in a box over the
raster (up to 150,000 per resolution; every k-th when there are more). For each raster and
resolution, one run of ``kantong.engine.build.zonal.zonal_stats`` (mean, and count for
``ghspop``) and one of exactextract on the same cell polygons (H3 boundaries with edges
split into <= 1 km great-circle pieces, projected to the raster's CRS). Reported: wall
seconds of each, the speed-up, and the relative difference per cell (median / p99 / max).

Asserted: p99 relative difference <= 1 % and ours >= 10x faster than exactextract, and the
population of the cells tiling Kalimantan Barat (the build's default resolution 8; a cell
belongs to the province whose polygon holds its centre) equals exactextract's sum over the
province polygon within 0.5 %. The residual is the tiling of the province boundary by whole
cells, not the statistic: -1.4 % at r7, -0.25 % at r8.
Run: ``python benchmarks/bench_zonal.py [--quick]`` (``--quick``: r6 and r7 only).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import geopandas as gpd
import h3
import numpy as np
import rasterio
import shapely
from affine import Affine
from exactextract import exact_extract
from pyproj import Transformer

from kantong.engine import datapaths
from kantong.engine.build import zonal
from kantong.engine.inputs import boundaries

MAX_CELLS = 150_000


def cells_in(box: tuple[float, float, float, float], res: int) -> np.ndarray:
    shape = h3.geo_to_h3shape(shapely.geometry.mapping(shapely.box(*box)))
    cells = np.array(sorted(h3.str_to_int(c) for c in h3.geo_to_cells(shape, res)), np.uint64)
    return cells[:: max(1, cells.size // MAX_CELLS)]


def polygons(cells: np.ndarray, crs: str) -> gpd.GeoDataFrame:
    x, y, which = zonal.cell_rings(cells, crs)
    rings = shapely.linearrings(np.column_stack([x, y]), indices=which)
    return gpd.GeoDataFrame({"i": np.arange(cells.size)}, geometry=shapely.polygons(rings),
                            crs=crs)


def friction100(path: str) -> tuple[str, tuple[float, float, float, float]]:
    rng = np.random.default_rng(0)
    h = w = 2800
    transform = Affine(100, 0, 300_000, 0, -100, 9_990_000)  # EPSG:32749 (south)
    rows, cols = np.mgrid[0:h, 0:w]
    data = (0.01 + 0.005 * np.sin(cols / 50) * np.cos(rows / 70)
            + rng.uniform(0, 0.004, (h, w))).astype(np.float32)
    data[1000:1100, 500:900] = np.nan
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
                       crs="EPSG:32749", transform=transform, nodata=np.nan) as dst:
        dst.write(data, 1)
    lon, lat = Transformer.from_crs("EPSG:32749", "EPSG:4326", always_xy=True).transform(
        [310_000, 570_000], [9_730_000, 9_980_000])
    return path, (lon[0], lat[0], lon[1], lat[1])


def rel_diff(a: np.ndarray, b: np.ndarray, floor: float) -> np.ndarray:
    ok = np.isfinite(a) & np.isfinite(b) & (np.abs(b) > floor)
    return np.abs(a[ok] - b[ok]) / np.abs(b[ok])


def compare(path: str, box: tuple[float, float, float, float], resolutions: list[int],
            kinds: list[str], floor: float) -> list[dict]:
    with rasterio.open(path) as src:
        data = src.read(1).astype(np.float32)
        data[data == src.nodata] = np.nan if src.nodata is not None else data[0, 0]
        transform, crs = src.transform, src.crs.to_string()
    rows = []
    for res in resolutions:
        cells = cells_in(box, res)
        zonal.zonal_stats(data, transform=transform, crs=crs, cells=cells[:10])  # compiled
        gdf = polygons(cells, crs)
        ee_ops = {"mean": "mean", "count": "sum"}
        t0 = time.perf_counter()
        ee = exact_extract(path, gdf, [ee_ops[k] for k in kinds], output="pandas")
        t_ee = time.perf_counter() - t0
        for kind in kinds:
            t0 = time.perf_counter()
            ours = zonal.zonal_stats(data, transform=transform, crs=crs, cells=cells, kind=kind)
            t_ours = time.perf_counter() - t0
            rel = rel_diff(ours, ee[ee_ops[kind]].to_numpy(), floor)
            rows.append({"raster": os.path.basename(path), "res": res, "kind": kind,
                         "cells": cells.size, "ours_s": t_ours, "ee_s": t_ee / len(kinds),
                         "median": np.median(rel), "p99": np.percentile(rel, 99),
                         "max": rel.max()})
            r = rows[-1]
            print(f"{r['raster']:18s} r{res} {kind:5s} {cells.size:7,d} cells  ours "
                  f"{t_ours:6.2f} s  exactextract {r['ee_s']:6.2f} s  x{r['ee_s'] / t_ours:5.1f}"
                  f"  rel diff median {r['median']:.1e} p99 {r['p99']:.1e} max {r['max']:.1e}",
                  flush=True)
    return rows


def province_total(path: str) -> tuple[float, float]:
    with rasterio.open(path) as src:
        data = src.read(1).astype(np.float32)
        transform, crs = src.transform, src.crs.to_string()
    prov = boundaries.province_polygon("61")
    shape = h3.geo_to_h3shape(shapely.geometry.mapping(prov.geometry.iloc[0]))
    cells = np.array([h3.str_to_int(c) for c in h3.geo_to_cells(shape, 8)], np.uint64)
    ours = np.nansum(zonal.zonal_stats(data, transform=transform, crs=crs, cells=cells,
                                       kind="count"))
    ee = exact_extract(path, prov, "sum", output="pandas")["sum"].iloc[0]
    return float(ours), float(ee)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="resolutions 6 and 7 only")
    args = parser.parse_args()
    resolutions = [6, 7] if args.quick else [6, 7, 8, 9]
    print(f"{platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    rows = compare(str(datapaths.data_file(datapaths.POPULATION_TIF)), (108.9, -2.9, 111.9, 1.9),
                   resolutions, ["mean", "count"], floor=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        path, box = friction100(os.path.join(tmp, "friction100.tif"))
        rows += compare(path, box, resolutions, ["mean"], floor=1e-9)
    ours, ee = province_total(str(datapaths.data_file(datapaths.POPULATION_TIF)))
    print(f"Kalimantan Barat population: r8 cells {ours:,.0f}, exactextract over the province "
          f"{ee:,.0f} ({(ours - ee) / ee:+.3%})")
    for r in rows:
        assert r["p99"] <= 0.01, r
        assert r["ee_s"] / r["ours_s"] >= 10, r
    assert abs(ours - ee) / ee <= 0.005
    print("asserted: p99 relative difference <= 1 %, >= 10x faster, province total within 0.5 %")


if __name__ == "__main__":
    main()
