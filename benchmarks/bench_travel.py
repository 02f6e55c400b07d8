"""Benchmark: the build's travel stage at 100 m over Kalimantan Barat, and agreement with MCP.

1. The demo's friction model (real Natural Earth rivers, synthetic roads and land-cover
   speed classes; ``kantong.engine.demo.friction``) is built at ``--resolution`` metres
   (default 100) in UTM zone 49S over the demo's Kalimantan Barat grid by the engine of
   ``kantong friction``, and written to a GeoTIFF. The four demo facility types (puskesmas,
   posyandu, school, water point: about 12,000 points) are generated as ``kantong
   demo-data`` does.
2. The build's travel stage (``kantong.engine.build.run._prepare_travel``: read the
   friction window, validate, copy it into the run, one multi-source search per type with
   two types at a time in threads, write the four travel-time GeoTIFFs) is timed, and the
   process's peak RSS is sampled every 0.1 s (psutil).
3. Agreement: on a ``--window`` x ``--window`` pixel crop around Pontianak, ours and
   ``skimage.graph.MCP_Geometric`` (the previous engine) run side by side for every type;
   reachability must be identical and costs equal within 1e-5 relative.

Asserted: agreement, and the travel stage within 60 s and 4 GiB (``--budget-s``,
``--budget-gib``). Run: ``python benchmarks/bench_travel.py [--resolution 100]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import psutil
import rasterio
from skimage.graph import MCP_Geometric

from kantong.engine import datapaths
from kantong.engine.build.friction import build_friction, target_grid, write_friction
from kantong.engine.build.run import _prepare_travel
from kantong.engine.build.travel import TravelSurface
from kantong.engine.demo.facilities import make_facilities
from kantong.engine.demo.friction import (
    demo_roads,
    demo_speed_classes,
    demo_speed_table,
    friction_surface,
    travel_minutes,
)
from kantong.engine.demo.space import load_demo_area
from kantong.engine.inputs.boundaries import province_polygon

GIB = 1024**3


class PeakRSS:
    """Sample this process's resident memory in a thread; ``peak`` in bytes."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.1)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def demo_inputs(resolution: float, tmp: Path) -> tuple[Path, gpd.GeoDataFrame, tuple]:
    """Write the demo friction at ``resolution`` m; return it, the facilities and bounds."""
    area = load_demo_area("61")
    rng = np.random.default_rng(42)
    coarse = friction_surface(area, np.random.default_rng(7))
    towns = area.towns
    travel = travel_minutes(area, coarse, towns["lon"].to_numpy(), towns["lat"].to_numpy())
    fac = make_facilities(area, travel, rng)
    facilities = gpd.GeoDataFrame(fac, geometry=fac.geometry, crs="EPSG:4326")
    codes = demo_speed_classes(area, np.random.default_rng(7))
    lc = tmp / "landcover.tif"
    with rasterio.open(lc, "w", driver="GTiff", width=area.shape[1], height=area.shape[0],
                       count=1, dtype="int32", crs=area.crs, transform=area.transform) as dst:
        dst.write(codes, 1)
    grid = target_grid(area.bounds, resolution=resolution, crs="EPSG:32749")
    rivers = gpd.read_file(datapaths.data_file(datapaths.CONTEXT_RIVERS))
    t0 = time.perf_counter()
    friction, info = build_friction(grid, table=demo_speed_table(codes), roads=demo_roads(area),
                                    rivers=rivers, landcover=str(lc))
    path = tmp / "friction.tif"
    write_friction(str(path), friction, grid, info)
    print(f"friction {grid.shape[1]} x {grid.shape[0]} px at {resolution:g} m "
          f"({np.isfinite(friction).mean():.0%} passable) built in "
          f"{time.perf_counter() - t0:.1f} s; facilities "
          f"{facilities['type'].value_counts().to_dict()}", flush=True)
    west, south, east, north = province_polygon("61").total_bounds
    return path, facilities, (west, south, east, north)


def agreement(path: Path, facilities: gpd.GeoDataFrame, window: int) -> None:
    with rasterio.open(path) as src:
        row, col = src.index(*_utm(109.33, -0.03))
        r0, c0 = max(row - window // 2, 0), max(col - window // 2, 0)
        win = rasterio.windows.Window(c0, r0, window, window)
        data = src.read(1, window=win)
        transform, crs = src.window_transform(win), src.crs
    surface = TravelSurface.from_friction(data, transform=transform, crs=crs)
    points = {t: (g.geometry.x.to_numpy(), g.geometry.y.to_numpy())
              for t, g in facilities.groupby("type")}
    t0 = time.perf_counter()
    ours = surface.travel_minutes_by_type(points, workers=1)
    t_ours = time.perf_counter() - t0
    costs = np.where(np.isfinite(data), data, np.inf).astype(np.float64)
    t_mcp = 0.0
    for t, (lon, lat) in points.items():
        starts, _ = surface.source_pixels(lon, lat)
        if len(starts) == 0:
            continue
        t0 = time.perf_counter()
        mcp = MCP_Geometric(costs, fully_connected=True,
                            sampling=(surface.pixel.dy, surface.pixel.dx))
        ref, _ = mcp.find_costs([tuple(p) for p in starts.tolist()])
        t_mcp += time.perf_counter() - t0
        reach = np.isfinite(ref)
        got = ours[t][0]
        assert (np.isfinite(got) == reach).all(), t
        rel = np.abs(got[reach] - ref[reach]) / np.maximum(ref[reach], 1e-9)
        print(f"  {t:12s} {len(starts):5d} start pixels: max rel diff vs MCP_Geometric "
              f"{rel.max():.1e}")
        assert rel.max() <= 1e-5, t
    print(f"window {window} x {window} px, 4 types one at a time: ours {t_ours:.1f} s, "
          f"MCP_Geometric {t_mcp:.1f} s (x{t_mcp / t_ours:.1f})", flush=True)


def _utm(lon: float, lat: float) -> tuple[float, float]:
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", "EPSG:32749", always_xy=True).transform(lon, lat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, default=100.0)
    parser.add_argument("--window", type=int, default=1500)
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--budget-gib", type=float, default=4.0)
    args = parser.parse_args()
    print(f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        path, facilities, bounds = demo_inputs(args.resolution, tmp)
        agreement(path, facilities, args.window)
        base = psutil.Process().memory_info().rss
        with PeakRSS() as mem:
            t0, c0 = time.perf_counter(), time.process_time()
            travel = _prepare_travel(facilities, path, bounds=bounds, run_dir=tmp / "run")
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"travel stage ({len(travel.rasters)} types): {wall:.1f} s wall, {cpu:.1f} s CPU, "
              f"peak RSS {mem.peak / GIB:.2f} GiB (+{(mem.peak - base) / GIB:.2f} GiB over the "
              f"{base / GIB:.2f} GiB before it); load {os.getloadavg()[0]:.1f}", flush=True)
    assert wall <= args.budget_s, f"travel stage {wall:.1f} s > {args.budget_s} s"
    assert mem.peak <= args.budget_gib * GIB, f"peak RSS {mem.peak / GIB:.2f} GiB"
    print(f"asserted: agreement with MCP_Geometric, travel stage <= {args.budget_s:g} s and "
          f"<= {args.budget_gib:g} GiB")


if __name__ == "__main__":
    main()
