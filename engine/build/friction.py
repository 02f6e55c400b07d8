"""Friction surfaces (minutes per metre) from roads, rivers, land cover and a DEM.

The *merged land cover* of WHO's AccessMod, on a target grid (any CRS, default 100 m):

1. off-road walking speed from the land-cover class of each pixel (raster or polygons; a
   constant ``default`` speed without a land-cover layer); land-cover nodata and
   ``barrier`` classes (open water) are impassable;
2. optional Tobler slope correction of every walking speed: ``v * exp(-3.5 |S|)`` with
   ``S`` the terrain slope (rise over run) of the DEM warped onto the grid - Tobler's
   hiking function ``6 exp(-3.5 |S + 0.05|)`` relative to its value on the flat, taken
   direction-free because a friction surface has no direction;
3. water (river lines drawn touching every pixel they cross, so walkers cannot slip between
   two diagonal river pixels; lakes and other water polygons): rivers marked navigable
   carry boats at the table's boat speed in ``mixed`` mode; every other water pixel, and
   every river in ``walking`` and ``motorised`` modes, is a barrier;
4. roads on top, each class at its table speed for the mode (``walking``: on foot;
   ``motorised`` and ``mixed``: by vehicle); a road pixel keeps the faster of the road and
   what lies under it, and a road over water is a crossing (bridge or ferry).

Friction = ``0.06 / speed`` minutes per metre (60 min/h over 1000 m/km); impassable = NaN.
Moves between pixels are 8-connected in the build, so a road at an angle between the axes
and the diagonals is followed up to 8 % longer than its true length (the usual raster
metric error); along axes and diagonals travel time equals length over speed.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import rasterio
import rasterio.errors
import rasterio.warp
from affine import Affine
from rasterio import features
from rasterio.enums import Resampling

from kantong.engine.build.speeds import SpeedTable
from kantong.engine.build.travel import pixel_size_m
from kantong.engine.constants import WGS84
from kantong.engine.errors import CRSError, InputError

logger = logging.getLogger(__name__)

#: Minutes per metre at 1 km/h.
MIN_PER_M_AT_1_KMH = 0.06
#: Tobler's hiking function decay per unit slope.
TOBLER_DECAY = 3.5
_TRUE = {"1", "true", "yes", "y", "ya", "t"}


@dataclass(frozen=True)
class TargetGrid:
    """The output grid: CRS, north-up transform and ``(rows, cols)``."""

    crs: pyproj.CRS
    transform: Affine
    shape: tuple[int, int]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Return ``(west, south, east, north)`` in the grid's CRS."""
        west, north = self.transform * (0, 0)
        east, south = self.transform * (self.shape[1], self.shape[0])
        return west, south, east, north


def utm_crs(lon: float, lat: float) -> pyproj.CRS:
    """Return the WGS84 UTM zone holding a point (EPSG:326xx north, 327xx south)."""
    zone = int((lon + 180) // 6) % 60 + 1
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def target_grid(bounds: tuple[float, float, float, float], *, resolution: float = 100.0,
                crs: object = None) -> TargetGrid:
    """Return the grid covering ``bounds`` (EPSG:4326) at ``resolution`` metres.

    Parameters
    ----------
    bounds
        ``(west, south, east, north)`` in degrees.
    resolution
        Pixel size in metres (in degrees at the centre latitude for a geographic ``crs``).
    crs
        Target CRS; default the UTM zone of the centre.

    Examples
    --------
    >>> g = target_grid((109.0, -0.1, 109.1, 0.0), resolution=100)
    >>> g.crs.to_epsg(), g.shape
    (32749, (111, 112))
    """
    west, south, east, north = bounds
    if not (west < east and south < north) or resolution <= 0:
        raise InputError(f"empty extent {tuple(round(float(b), 6) for b in bounds)} (west, "
                         f"south, east, north) or resolution {resolution} <= 0")
    crs_ = utm_crs((west + east) / 2, (south + north) / 2) if crs is None else \
        pyproj.CRS.from_user_input(crs)
    if crs_.is_geographic:
        res = resolution / (math.pi / 180 * 6_371_008.8)
    else:
        res = resolution / crs_.axis_info[0].unit_conversion_factor
    x0, y0, x1, y1 = rasterio.warp.transform_bounds(WGS84, crs_, west, south, east, north,
                                                    densify_pts=21)
    x0, y0 = math.floor(x0 / res) * res, math.floor(y0 / res) * res
    cols, rows = math.ceil((x1 - x0) / res), math.ceil((y1 - y0) / res)
    if rows * cols > 400_000_000:
        raise InputError(f"grid of {rows} x {cols} pixels is too large: choose a coarser "
                         "--resolution or a smaller extent")
    return TargetGrid(crs_, Affine(res, 0, x0, 0, -res, y0 + rows * res), (rows, cols))


def _to_grid(gdf: gpd.GeoDataFrame, grid: TargetGrid, what: str) -> gpd.GeoDataFrame:
    if gdf.crs is None:
        raise CRSError(f"{what} have no CRS: set one (e.g. EPSG:4326) before building friction")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    return gdf.to_crs(grid.crs)


def _warp(path: str, grid: TargetGrid, resampling: Resampling, what: str,
          dtype: str) -> np.ndarray:
    """Read band 1 of a raster warped onto the grid; nodata -> NaN (float) or -1 (int)."""
    with rasterio.open(path) as src:
        if src.crs is None:
            raise CRSError(f"{path}: {what} raster has no CRS")
        west, south, east, north = rasterio.warp.transform_bounds(grid.crs, src.crs,
                                                                  *grid.bounds, densify_pts=21)
        left, bottom, right, top = src.bounds
        tol_x, tol_y = abs(src.res[0]), abs(src.res[1])
        if west < left - tol_x or east > right + tol_x or south < bottom - tol_y \
                or north > top + tol_y:
            raise InputError(f"{path}: the {what} raster does not cover the study area "
                             f"(raster {left:.6g}, {bottom:.6g}, {right:.6g}, {top:.6g}; needed "
                             f"{west:.6g}, {south:.6g}, {east:.6g}, {north:.6g} in {src.crs})")
        nodata_out = np.nan if dtype == "float32" else -1
        out = np.full(grid.shape, nodata_out, dtype=dtype)
        rasterio.warp.reproject(rasterio.band(src, 1), out, dst_transform=grid.transform,
                                dst_crs=grid.crs, resampling=resampling,
                                dst_nodata=nodata_out)
    return out


def _landcover_speed(landcover: str | gpd.GeoDataFrame | None, class_column: str,
                     grid: TargetGrid, table: SpeedTable) -> tuple[np.ndarray, list[str]]:
    """Return off-road walking km/h (NaN: impassable) and the land-cover classes found."""
    if landcover is None:
        default = table.landcover.get("default")
        if default is None:
            raise InputError("without --landcover the speed table needs a landcover 'default' "
                             "walking speed")
        return np.full(grid.shape, default, dtype=np.float64), ["default"]
    if isinstance(landcover, str):
        codes = _warp(landcover, grid, Resampling.nearest, "land-cover", "int32")
        names = {int(c): str(int(c)) for c in np.unique(codes) if c >= 0}
    else:
        gdf = _to_grid(landcover, grid, "land-cover polygons")
        if class_column not in gdf.columns:
            raise InputError(f"land-cover polygons have no column {class_column!r}")
        labels = gdf[class_column].astype(str).str.strip()
        uniq = sorted(labels.unique())
        index = {c: i for i, c in enumerate(uniq)}
        codes = features.rasterize(zip(gdf.geometry, labels.map(index), strict=True),
                                   out_shape=grid.shape, transform=grid.transform, fill=-1,
                                   dtype="int32")
        names = {i: c for c, i in index.items() if (codes == i).any()}
    missing = sorted(n for n in names.values() if n not in table.landcover)
    if missing:
        raise InputError(f"land-cover classes missing from the speed table: {', '.join(missing)}")
    lookup = np.full(max(names, default=0) + 2, np.nan)
    for code, name in names.items():
        speed = table.landcover[name]
        lookup[code] = np.nan if speed is None else speed
    speed = lookup[np.where(codes >= 0, codes, lookup.size - 1)]
    return speed, sorted(names.values())


def _water(rivers: gpd.GeoDataFrame | None, navigable_column: str,
           grid: TargetGrid) -> np.ndarray:
    """Return 0 (dry), 1 (water: barrier) or 2 (navigable river) per pixel."""
    water = np.zeros(grid.shape, dtype=np.uint8)
    if rivers is None or rivers.empty:
        return water
    gdf = _to_grid(rivers, grid, "rivers")
    lines = gdf.geom_type.isin(["LineString", "MultiLineString"]).to_numpy()
    if navigable_column in gdf.columns:
        nav = gdf[navigable_column].astype(str).str.strip().str.lower().isin(_TRUE).to_numpy()
    else:  # river lines without the column are navigable main stems; lakes are not
        nav = lines.copy()
    polys = ~lines & gdf.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    if polys.any():
        features.rasterize(zip(gdf.geometry[polys], np.where(nav[polys], 2, 1), strict=True),
                           out=water, transform=grid.transform)
    if lines.any():
        order = np.argsort(nav[lines], kind="stable")  # navigable drawn last: it wins
        features.rasterize(zip(gdf.geometry[lines].iloc[order],
                               np.where(nav[lines], 2, 1)[order], strict=True),
                           out=water, transform=grid.transform, all_touched=True)
    return water


def _road_speed(roads: gpd.GeoDataFrame | None, class_column: str, grid: TargetGrid,
                table: SpeedTable, mode: str) -> tuple[np.ndarray, list[str]]:
    """Return the road km/h per pixel (0 off-road) and the road classes used."""
    speed = np.zeros(grid.shape, dtype=np.float64)
    if roads is None or roads.empty:
        return speed, []
    gdf = _to_grid(roads, grid, "roads")
    if class_column not in gdf.columns:
        raise InputError(f"roads have no class column {class_column!r} (set --road-class)")
    classes = gdf[class_column].astype(str).str.strip()
    used = sorted(classes.unique())
    missing = [c for c in used if c not in table.roads]
    if missing:
        raise InputError(f"road classes missing from the speed table: {', '.join(missing)}")
    unused = sorted(set(table.roads) - set(used))
    if unused and table.source != "default":
        raise InputError(f"{table.source}: road classes the roads do not use: "
                         f"{', '.join(unused)}")
    kmh = classes.map(lambda c: table.road_speed(c, mode)).to_numpy()
    order = np.argsort(kmh, kind="stable")  # faster classes drawn last: they win
    features.rasterize(zip(gdf.geometry.iloc[order], kmh[order], strict=True), out=speed,
                       transform=grid.transform, all_touched=True)
    return speed, used


def _tobler(dem: str, grid: TargetGrid) -> np.ndarray:
    """Return the Tobler walking-speed factor ``exp(-3.5 |slope|)`` (1 where no DEM)."""
    z = _warp(dem, grid, Resampling.bilinear, "DEM", "float32").astype(np.float64)
    pixel = pixel_size_m(grid.transform, grid.crs, grid.shape)
    gy, gx = np.gradient(z, pixel.dy, pixel.dx)
    slope = np.hypot(gx, gy)
    return np.where(np.isfinite(slope), np.exp(-TOBLER_DECAY * slope), 1.0)


def build_friction(grid: TargetGrid, *, table: SpeedTable, mode: str = "mixed",
                   roads: gpd.GeoDataFrame | None = None, road_class: str = "class",
                   rivers: gpd.GeoDataFrame | None = None, navigable: str = "navigable",
                   landcover: str | gpd.GeoDataFrame | None = None,
                   landcover_class: str = "class",
                   dem: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Return the friction surface (float32 minutes per metre, NaN impassable) and its record.

    Parameters
    ----------
    grid
        Output grid (:func:`target_grid`).
    table
        Speeds (:mod:`kantong.engine.build.speeds`).
    mode
        ``walking``, ``motorised`` or ``mixed`` (vehicles on roads and boats on navigable
        rivers; the Kalimantan default).
    roads, road_class
        Road lines and their class column.
    rivers, navigable
        River lines and water polygons, and the optional column marking navigable ones
        (without it river lines are navigable and polygons are not).
    landcover, landcover_class
        Land-cover raster path (class codes) or polygons with a class column.
    dem
        Optional elevation raster path (metres) for the Tobler slope correction.

    Returns
    -------
    tuple
        Friction array and a JSON-ready record (inputs, classes, table, pixel counts).

    Examples
    --------
    >>> import shapely
    >>> from kantong.engine.build.speeds import DEFAULT_TABLE
    >>> g = target_grid((109.0, -0.01, 109.01, 0.0), resolution=100)
    >>> road = gpd.GeoDataFrame({"class": ["primary"]}, crs="EPSG:4326",
    ...                         geometry=[shapely.LineString([(109, -0.005), (109.01, -0.005)])])
    >>> f, info = build_friction(g, table=DEFAULT_TABLE, roads=road)
    >>> round(float(np.nanmin(f)) * 50, 6), round(float(np.nanmax(f)) * 3, 6)  # 50 km/h, 3 km/h
    (0.06, 0.06)
    """
    if mode not in ("walking", "motorised", "mixed"):
        raise InputError(f"unknown mode {mode!r}: expected walking, motorised or mixed")
    speed, lc_classes = _landcover_speed(landcover, landcover_class, grid, table)
    if dem is not None:
        speed *= _tobler(dem, grid)
    water = _water(rivers, navigable, grid)
    if mode == "mixed":  # boats on navigable rivers
        speed[water == 2] = table.boat_kmh
        speed[water == 1] = np.nan
    else:
        speed[water > 0] = np.nan
    road, road_classes = _road_speed(roads, road_class, grid, table, mode)
    on_road = road > 0
    if mode == "walking" and dem is not None:
        road[on_road] *= _tobler(dem, grid)[on_road]
    speed[on_road] = np.fmax(speed[on_road], road[on_road])  # a road over water crosses it
    with np.errstate(divide="ignore", invalid="ignore"):
        friction = np.where(np.isfinite(speed) & (speed > 0), MIN_PER_M_AT_1_KMH / speed,
                            np.nan).astype(np.float32)
    if not np.isfinite(friction).any():
        raise InputError("every pixel of the friction surface is impassable")
    info = {"mode": mode, "units": "minutes per metre", "crs": grid.crs.to_string(),
            "resolution": abs(grid.transform.a), "shape": list(grid.shape),
            "road_classes": road_classes, "landcover_classes": lc_classes,
            "pixels": {"road": int(on_road.sum()), "navigable_river": int((water == 2).sum()),
                       "water_barrier": int((water == 1).sum()),
                       "impassable": int((~np.isfinite(friction)).sum())},
            "tobler_slope": dem is not None, "speed_table": table.as_dict()}
    logger.info("friction %d x %d px (%s): %d road, %d navigable-river, %d impassable pixels",
                grid.shape[1], grid.shape[0], mode, info["pixels"]["road"],
                info["pixels"]["navigable_river"], info["pixels"]["impassable"])
    return friction, info


def write_friction(path: str, friction: np.ndarray, grid: TargetGrid,
                   info: dict[str, Any]) -> None:
    """Write the friction GeoTIFF atomically (float32, NaN nodata, DEFLATE, tiled) with tags."""
    from kantong.engine.atomic import atomic_path

    rows, cols = friction.shape
    profile = {"driver": "GTiff", "dtype": "float32", "count": 1, "width": cols,
               "height": rows, "crs": grid.crs, "transform": grid.transform, "nodata": np.nan,
               "compress": "deflate", "predictor": 3}
    if rows >= 256 and cols >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    tags = {k: (v if isinstance(v, str) else json.dumps(v, sort_keys=True))
            for k, v in info.items()}
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(friction, 1)
            dst.update_tags(**tags)
            dst.set_band_description(1, f"friction (minutes per metre), {info['mode']}")


def is_friction_output(path: str | Path) -> bool:
    """Return True if ``path`` is a GeoTIFF written by ``kantong friction``.

    Parameters
    ----------
    path : str or Path
        An existing file.

    Returns
    -------
    bool
        Whether its band is described as a Kantong friction surface (so ``--out`` may
        replace it).
    """
    try:
        with rasterio.open(path) as src:
            return (src.driver == "GTiff" and src.count == 1
                    and (src.descriptions[0] or "").startswith("friction (minutes per metre)"))
    except rasterio.errors.RasterioIOError:
        return False


__all__ = ["MIN_PER_M_AT_1_KMH", "TargetGrid", "build_friction", "is_friction_output",
           "target_grid", "utm_crs", "write_friction"]
