"""Synthetic friction surface (minutes per metre) and travel time to towns for the demo.

The surface mimics the Malaria Atlas Project friction layers: the cost, in minutes, of
crossing one metre of a pixel. Speeds are combined as the fastest of

* walking through forest: 3.0 - 4.3 km/h, varying smoothly (a stand-in for terrain);
* settlement corridors: up to 45 km/h on densely populated pixels of the real GHS-POP grid
  (river and coastal settlements, where the roads and boats are), smoothed by one pixel;
* trunk roads: 35 km/h along the minimum spanning tree of the GeoNames towns;
* towns: 50 km/h within 3 km of a town (8 km for towns above 100,000 people), decaying
  outward.

Friction = 0.06 / speed (km/h), clipped to [0.0012, 0.02] min/m. Pixels touching no
Kalimantan province (sea, Malaysia) hold the nodata value ``FRICTION_NODATA``.
"""

from __future__ import annotations

import logging

import numpy as np
from rasterio import features
from scipy import ndimage
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform
from shapely import LineString
from skimage.graph import MCP_Geometric

from kantong.engine.demo.space import DemoArea

logger = logging.getLogger(__name__)

#: Nodata value of the friction raster (sea / outside Kalimantan: impassable).
FRICTION_NODATA = -9999.0
#: Friction bounds (minutes per metre): 50 km/h road and 3 km/h forest walking.
FRICTION_MIN = 0.06 / 50.0
FRICTION_MAX = 0.06 / 3.0
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


def _road_mask(area: DemoArea) -> np.ndarray:
    towns = area.towns
    if len(towns) < 2:
        return np.zeros(area.shape, dtype=bool)
    xy = area.to_metric(towns["lon"].to_numpy(), towns["lat"].to_numpy())
    mst = minimum_spanning_tree(squareform(pdist(xy))).tocoo()
    lines = [LineString([(towns["lon"].iat[i], towns["lat"].iat[i]),
                         (towns["lon"].iat[j], towns["lat"].iat[j])])
             for i, j in zip(mst.row, mst.col, strict=True)]
    return features.rasterize(((g, 1) for g in lines), out_shape=area.shape,
                              transform=area.transform, all_touched=True, dtype="uint8") > 0


def friction_surface(area: DemoArea, rng: np.random.Generator) -> np.ndarray:
    """Return the synthetic friction surface (float32, min/m; nodata off land).

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
    dy, dx = pixel_size_m(area)
    terrain = ndimage.gaussian_filter(rng.standard_normal(area.shape), sigma=6.0)
    terrain = (terrain - terrain.min()) / max(float(np.ptp(terrain)), 1e-12)
    speed = 3.0 + 1.3 * (1.0 - terrain)

    pop = ndimage.gaussian_filter(area.population.astype(np.float64), sigma=1.0)
    level = np.clip(np.log10(1.0 + pop) / np.log10(1.0 + 3000.0), 0.0, 1.0)
    speed = np.maximum(speed, 3.0 + 42.0 * level**1.6)

    speed[_road_mask(area)] = np.maximum(speed[_road_mask(area)], 35.0)

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

    friction = np.clip(0.06 / speed, FRICTION_MIN, FRICTION_MAX).astype(np.float32)
    friction[~area.land] = FRICTION_NODATA
    logger.info("friction surface: %d land pixels, %.4f-%.4f min/m", int(area.land.sum()),
                float(friction[area.land].min()), float(friction[area.land].max()))
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
    costs = np.where(friction > 0, friction, -1.0).astype(np.float64)
    mcp = MCP_Geometric(costs, sampling=pixel_size_m(area))
    minutes, _ = mcp.find_costs(starts)
    return np.where(np.isfinite(minutes), np.minimum(minutes, UNREACHABLE_MINUTES),
                    UNREACHABLE_MINUTES)
