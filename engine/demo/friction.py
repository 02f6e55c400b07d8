"""Synthetic friction surface (minutes per metre) and travel time to towns for the demo.

The demo's friction is built by the engine of ``kantong friction``
(:func:`kantong.engine.build.friction.build_friction`, mode ``mixed``) from three layers:

* **rivers (real)**: the Natural Earth 1:10m main stems shipped in ``data/context/``
  (Kapuas, Barito, Mahakam, ...): boats at :data:`BOAT_KMH` on them;
* **roads (synthetic)**: a trunk road along the minimum spanning tree of the GeoNames towns,
  class ``jalan_provinsi`` at :data:`ROAD_KMH`;
* **land cover (synthetic)**: speed classes on the 1 km grid, code = speed x 10 (km/h):
  walking through forest at 3.0 - 4.3 km/h varying smoothly (a stand-in for terrain);
  settlement corridors up to 45 km/h on densely populated pixels of the real GHS-POP grid
  (river and coastal settlements), smoothed by one pixel; towns at 50 km/h within 3 km
  (8 km above 100,000 people), decaying outward; the sea and land outside Kalimantan are
  the ``barrier`` class. No open land-cover raster of Kalimantan ships with Kantong, so
  the classes are the demo's own; a real analysis passes ESA WorldCover or similar to
  ``kantong friction --landcover`` with the default speed table.

Every speed lies in 3 - 50 km/h, so friction = 0.06 / speed lies in [0.0012, 0.02] min/m.
Pixels touching no Kalimantan province (sea, Malaysia) hold the nodata value
``FRICTION_NODATA``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from pyproj import CRS
from scipy import ndimage
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform
from shapely import LineString

from kantong.engine import datapaths
from kantong.engine.build.friction import TargetGrid, build_friction
from kantong.engine.build.speeds import SpeedTable
from kantong.engine.build.travel_kernel import FrictionGrid
from kantong.engine.constants import WGS84
from kantong.engine.demo.space import DemoArea

logger = logging.getLogger(__name__)

#: Nodata value of the friction raster (sea / outside Kalimantan: impassable).
FRICTION_NODATA = -9999.0
#: Friction bounds (minutes per metre): 50 km/h road and 3 km/h forest walking.
FRICTION_MIN = 0.06 / 50.0
FRICTION_MAX = 0.06 / 3.0
#: Synthetic trunk roads: class and speed (km/h, motorised).
ROAD_CLASS = "jalan_provinsi"
ROAD_KMH = 35.0
#: Boats on the real Natural Earth main rivers (km/h).
BOAT_KMH = 12.0
#: Travel time given to pixels no town can reach (islands), in minutes.
UNREACHABLE_MINUTES = 24 * 60.0
_EARTH_RADIUS_M = 6_371_008.8


def pixel_size_m(area: DemoArea) -> tuple[float, float]:
    """Return the (row, column) pixel size in metres at the grid's central latitude."""
    south, north = area.bounds[1], area.bounds[3]
    dy = abs(area.transform.e) * np.pi / 180.0 * _EARTH_RADIUS_M
    mid_lat = np.radians((south + north) / 2.0)
    dx = area.transform.a * np.pi / 180.0 * _EARTH_RADIUS_M * np.cos(mid_lat)
    return float(dy), float(dx)


def demo_roads(area: DemoArea) -> gpd.GeoDataFrame:
    """Return the synthetic trunk roads: the minimum spanning tree of the towns (EPSG:4326)."""
    towns = area.towns
    lines: list[LineString] = []
    if len(towns) >= 2:
        xy = area.to_metric(towns["lon"].to_numpy(), towns["lat"].to_numpy())
        mst = minimum_spanning_tree(squareform(pdist(xy))).tocoo()
        lines = [LineString([(towns["lon"].iat[i], towns["lat"].iat[i]),
                             (towns["lon"].iat[j], towns["lat"].iat[j])])
                 for i, j in zip(mst.row, mst.col, strict=True)]
    return gpd.GeoDataFrame({"class": [ROAD_CLASS] * len(lines)}, geometry=lines, crs=WGS84)


def demo_speed_classes(area: DemoArea, rng: np.random.Generator) -> np.ndarray:
    """Return the synthetic land-cover speed classes (code = km/h x 10; 0 = barrier)."""
    dy, dx = pixel_size_m(area)
    terrain = ndimage.gaussian_filter(rng.standard_normal(area.shape), sigma=6.0)
    terrain = (terrain - terrain.min()) / max(float(np.ptp(terrain)), 1e-12)
    speed = 3.0 + 1.3 * (1.0 - terrain)

    pop = ndimage.gaussian_filter(area.population.astype(np.float64), sigma=1.0)
    level = np.clip(np.log10(1.0 + pop) / np.log10(1.0 + 3000.0), 0.0, 1.0)
    speed = np.maximum(speed, 3.0 + 42.0 * level**1.6)

    towns = area.towns
    if len(towns):
        row, col = area.pixel_of(towns["lon"].to_numpy(), towns["lat"].to_numpy())
        for big, radius_km in ((False, 3.0), (True, 8.0)):
            sel = (towns["population"].to_numpy() >= 100_000) if big else np.ones(len(towns), bool)
            if not sel.any():
                continue
            seed = np.ones(area.shape, dtype=bool)
            seed[row[sel], col[sel]] = False
            dist_km = ndimage.distance_transform_edt(seed, sampling=(dy, dx)) / 1000.0
            town_speed = 50.0 * np.exp(-np.maximum(dist_km - radius_km, 0.0) / 4.0)
            speed = np.maximum(speed, town_speed)
    codes = np.rint(np.clip(speed, 3.0, 50.0) * 10).astype(np.int32)
    codes[~area.land] = 0
    return codes


def demo_speed_table(codes: np.ndarray) -> SpeedTable:
    """Return the speed table of the demo's layers (classes present in ``codes`` only)."""
    landcover: dict[str, float | None] = {str(c): c / 10 for c in np.unique(codes) if c > 0}
    landcover["0"] = None
    return SpeedTable(roads={ROAD_CLASS: {"walking": 5.0, "motorised": ROAD_KMH}},
                      boat_kmh=BOAT_KMH, landcover=landcover, source="demo")


def friction_surface(area: DemoArea, rng: np.random.Generator) -> np.ndarray:
    """Return the demo friction surface (float32, min/m; nodata off land).

    Built by :func:`kantong.engine.build.friction.build_friction` (``kantong friction``'s
    engine) on the demo's 1 km grid from the real rivers, the synthetic roads and the
    synthetic land-cover speed classes (see the module docstring).

    Parameters
    ----------
    area
        The study area (grid, population, towns, land mask).
    rng
        Random generator for the terrain noise.

    Returns
    -------
    numpy.ndarray
        Grid-shaped float32 array in minutes per metre; ``FRICTION_NODATA`` off land.
    """
    codes = demo_speed_classes(area, rng)
    grid = TargetGrid(CRS.from_user_input(area.crs), area.transform, area.shape)
    rivers = gpd.read_file(datapaths.data_file(datapaths.CONTEXT_RIVERS), engine="pyogrio")
    with tempfile.TemporaryDirectory() as tmp:
        landcover = Path(tmp) / "landcover_demo.tif"
        with rasterio.open(landcover, "w", driver="GTiff", width=area.shape[1],
                           height=area.shape[0], count=1, dtype="int32", crs=area.crs,
                           transform=area.transform) as dst:
            dst.write(codes, 1)
        friction, info = build_friction(grid, table=demo_speed_table(codes), mode="mixed",
                                        roads=demo_roads(area), rivers=rivers,
                                        landcover=str(landcover))
    friction = np.where(np.isfinite(friction) & area.land, friction,
                        FRICTION_NODATA).astype(np.float32)
    logger.info("friction surface: %d land pixels, %d road and %d river pixels, "
                "%.4f-%.4f min/m", int(area.land.sum()), info["pixels"]["road"],
                info["pixels"]["navigable_river"], float(friction[area.land].min()),
                float(friction[area.land].max()))
    return friction


def travel_minutes(area: DemoArea, friction: np.ndarray, lon: np.ndarray,
                   lat: np.ndarray) -> np.ndarray:
    """Return least-cost travel time (minutes) from every pixel to the nearest source point.

    Parameters
    ----------
    area
        The study area (grid geometry).
    friction
        Friction surface in minutes per metre; nodata (negative) pixels are impassable.
    lon, lat
        Source points (e.g. towns) in degrees; sources off land are ignored.

    Returns
    -------
    numpy.ndarray
        Grid-shaped float64 minutes; pixels no source can reach hold ``UNREACHABLE_MINUTES``.
    """
    row, col = area.pixel_of(lon, lat)
    keep = friction[row, col] > 0
    starts = sorted(set(zip(row[keep].tolist(), col[keep].tolist(), strict=True)))
    if not starts:
        return np.full(area.shape, UNREACHABLE_MINUTES)
    dy, dx = pixel_size_m(area)
    grid = FrictionGrid(np.where(friction > 0, friction, np.nan), dy=dy, dx=dx)
    rows, cols = (np.array(a) for a in zip(*starts, strict=True))
    minutes = grid.costs((rows, cols)).astype(np.float64)
    return np.where(np.isfinite(minutes), np.minimum(minutes, UNREACHABLE_MINUTES),
                    UNREACHABLE_MINUTES)
