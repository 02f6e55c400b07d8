"""Travel time to the nearest facility of each type.

Least-cost (with a friction surface, minutes per metre): a compiled multi-source Dijkstra
over the 8-connected pixel graph (:mod:`kantong.engine.build.travel_kernel`), started from
every facility pixel of one type at once (one pass per type; the types run in parallel
threads). A move between two pixels costs the mean of their frictions times the move length
in metres (diagonals sqrt(dx^2 + dy^2)) - the graph of ``skimage.graph.MCP_Geometric``,
whose costs it reproduces to float rounding (``tests/build/test_travel.py``,
``benchmarks/bench_travel.py``) at several times its speed. Nodata friction is impassable.

Pixel sizes in metres. MCP takes one pixel width and one height for the whole grid. For a
geographic (lat/lon) raster the true width shrinks with cos(latitude) and the height varies
slightly with the ellipsoid's meridional curvature; both are computed per row on the
raster's ellipsoid (``pyproj.Geod``) and the grid is run with the mid-range values, so the
length of every move is right to within the reported ``max_scale_error`` (0.07 % over
Kalimantan Barat, 0.17 % over the whole of Kalimantan, 4.4 deg N to 4.7 deg S). For a
projected raster the pixel size in metres is exact in the projection; the projection's
own scale error (``pyproj`` factors at 25 points of the grid) is reported the same way.

Facilities outside the friction raster, or on a nodata pixel with no valid pixel within
two pixels, are ignored and counted. A facility on a nodata pixel next to valid ones
(a coastal jetty) starts from the nearest valid pixel.

Straight-line fallback (no friction surface): great-circle distance to the nearest
facility (a KD-tree on unit-sphere vectors, exact) converted to minutes at
:data:`STRAIGHT_LINE_SPEED_KMH` (walking speed, no detour factor).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyproj
from affine import Affine
from scipy import ndimage
from scipy.spatial import cKDTree

from kantong.engine.build.travel_kernel import FrictionGrid, least_costs
from kantong.engine.constants import WGS84
from kantong.engine.errors import CRSError, InputError

logger = logging.getLogger(__name__)

#: Method strings written to the manifest.
LEAST_COST_METHOD = "least-cost 8-connected Dijkstra (MCP_Geometric move costs)"
STRAIGHT_LINE_METHOD = "straight-line fallback: no friction surface"
#: Assumed speed of the straight-line fallback (km/h): walking, no detour factor.
STRAIGHT_LINE_SPEED_KMH = 4.0
#: A facility on a nodata friction pixel snaps to the nearest valid pixel within this many.
SNAP_PIXELS = 2
#: Mean Earth radius used for great-circle distances (metres).
EARTH_RADIUS_M = 6_371_008.8


def type_slug(name: str) -> str:
    """Return a facility type as used in column and file names ("Water point" -> water_point)."""
    slug = re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")
    if not slug:
        raise InputError(f"facility type {name!r} has no letters or digits")
    return slug


@dataclass(frozen=True)
class PixelSize:
    """Pixel height and width in metres used by MCP, and the largest relative error."""

    dy: float
    dx: float
    max_scale_error: float


def pixel_size_m(transform: Affine, crs: object, shape: tuple[int, int]) -> PixelSize:
    """Return the pixel size in metres of a north-up grid and its worst relative error.

    Parameters
    ----------
    transform, crs, shape
        The grid (affine transform without rotation, CRS, ``(height, width)``).

    Returns
    -------
    PixelSize
        ``dy``, ``dx`` (metres) and ``max_scale_error`` (fraction): the largest relative
        difference between a true move length anywhere on the grid and the one MCP uses.
    """
    if transform.b or transform.d:
        raise InputError("rotated friction rasters are not supported: warp it north-up first")
    if crs is None:
        raise CRSError("friction raster has no CRS")
    crs = pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    height, width = shape
    if crs.is_geographic:
        geod = crs.get_geod()
        lat = transform.f + transform.e * (np.arange(height) + 0.5)
        lon0 = np.full(height, transform.c + transform.a * width / 2)
        _, _, dx = geod.inv(lon0, lat, lon0 + abs(transform.a), lat)
        _, _, dy = geod.inv(lon0, lat - abs(transform.e) / 2, lon0, lat + abs(transform.e) / 2)
        dx0 = (dx.min() + dx.max()) / 2
        dy0 = (dy.min() + dy.max()) / 2
        err = max((dx.max() - dx.min()) / 2 / dx0, (dy.max() - dy.min()) / 2 / dy0)
        return PixelSize(float(dy0), float(dx0), float(err))
    unit = crs.axis_info[0].unit_conversion_factor
    rows, cols = np.meshgrid(np.linspace(0, height, 5), np.linspace(0, width, 5))
    x = transform.c + transform.a * cols.ravel()
    y = transform.f + transform.e * rows.ravel()
    lon, lat = pyproj.Transformer.from_crs(crs, WGS84, always_xy=True).transform(x, y)
    try:
        factors = pyproj.Proj(crs).get_factors(lon, lat)
        scales = np.r_[factors.meridional_scale, factors.parallel_scale]
        err = float(np.nanmax(np.abs(scales - 1.0))) if np.isfinite(scales).any() else math.nan
    except pyproj.exceptions.ProjError:  # pragma: no cover - exotic projections
        err = math.nan
    return PixelSize(abs(transform.e) * unit, abs(transform.a) * unit, err)


@dataclass
class TravelSurface:
    """A friction surface ready for repeated least-cost runs (one per facility type).

    Build it with :meth:`from_friction`; call :meth:`travel_minutes` for one facility type
    or :meth:`travel_minutes_by_type` for several (parallel threads).

    Examples
    --------
    >>> from affine import Affine
    >>> surface = TravelSurface.from_friction(np.ones((1, 3)), crs="EPSG:32649",
    ...                                       transform=Affine(10, 0, 500_000, 0, -10, 0))
    >>> minutes, ignored = surface.travel_minutes(np.array([111.0]), np.array([-0.00005]))
    >>> minutes.tolist(), ignored
    ([[0.0, 10.0, 20.0]], 0)
    """

    friction: np.ndarray
    transform: Affine
    crs: object
    pixel: PixelSize
    _grid: FrictionGrid = field(repr=False)
    _snap: tuple[np.ndarray, np.ndarray] | None = field(repr=False, default=None)

    @classmethod
    def from_friction(cls, friction: np.ndarray, *, transform: Affine,
                      crs: object) -> TravelSurface:
        """Prepare a friction raster (minutes per metre, NaN = impassable).

        Raises
        ------
        InputError
            Negative friction, no valid pixel, zero everywhere, or a rotated grid.
        """
        costs = np.asarray(friction)
        if costs.dtype not in (np.float32, np.float64):
            costs = costs.astype(np.float64)
        valid = np.isfinite(costs)
        if not valid.any():
            raise InputError("friction raster holds no valid pixel")
        if (costs[valid] < 0).any():
            raise InputError("friction raster holds negative values (minutes per metre >= 0)")
        if not (costs[valid] > 0).any():
            raise InputError("friction raster is 0 everywhere (minutes per metre must be > 0; "
                             "is it a friction surface?)")
        pixel = pixel_size_m(transform, crs, costs.shape)
        grid = FrictionGrid(costs, dy=pixel.dy, dx=pixel.dx)
        logger.info("friction %d x %d px, pixel %.1f x %.1f m, max scale error %.3f %%",
                    costs.shape[1], costs.shape[0], pixel.dx, pixel.dy,
                    100 * pixel.max_scale_error)
        return cls(costs, transform, crs, pixel, grid)

    def _snap_indices(self) -> tuple[np.ndarray, np.ndarray]:
        if self._snap is None:
            invalid = ~np.isfinite(self.friction)
            dist, (rows, cols) = ndimage.distance_transform_edt(invalid, return_indices=True)
            rows = np.where(dist <= SNAP_PIXELS, rows, -1)
            self._snap = (rows, cols)
        return self._snap

    def source_pixels(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, int]:
        """Return the unique start pixels ``(n, 2)`` of facilities and how many were ignored."""
        rows, cols = lonlat_to_pixels(lon, lat, transform=self.transform, crs=self.crs,
                                      shape=self.friction.shape)
        inside = rows >= 0
        r, c = rows[inside], cols[inside]
        bad = ~np.isfinite(self.friction[r, c])
        if bad.any():
            snap_r, snap_c = self._snap_indices()
            nr, nc = snap_r[r[bad], c[bad]], snap_c[r[bad], c[bad]]
            r[bad], c[bad] = nr, nc
        keep = r >= 0
        starts = np.unique(np.stack([r[keep], c[keep]], axis=1), axis=0)
        ignored = int(lon.size - keep.sum())
        return starts, ignored

    def travel_minutes(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, int]:
        """Return minutes to the nearest of the facilities at ``lon``/``lat`` for every pixel.

        Returns
        -------
        tuple
            float32 raster (NaN where unreachable or nodata) and the number of facilities
            ignored (outside the raster or stranded on nodata).
        """
        out = self.travel_minutes_by_type({"": (lon, lat)}, workers=1)
        return out[""]

    def travel_minutes_by_type(self, points: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                               workers: int = 2) -> dict[str, tuple[np.ndarray, int]]:
        """Return :meth:`travel_minutes` for several facility types, ``workers`` at a time.

        Parameters
        ----------
        points
            ``{type: (lon, lat)}`` of the facilities of each type (WGS84).
        workers
            Parallel threads (each holds one float64 cost grid while it runs).

        Returns
        -------
        dict
            ``{type: (minutes raster, facilities ignored)}``.
        """
        starts, ignored = {}, {}
        for name, (lon, lat) in points.items():
            pixels, ignored[name] = self.source_pixels(np.asarray(lon, float),
                                                       np.asarray(lat, float))
            if ignored[name]:
                logger.warning("%d %s facilities outside the friction raster were ignored",
                               ignored[name], name or "")
            starts[name] = (pixels[:, 0], pixels[:, 1])
        costs = least_costs(self._grid, starts, workers=workers)
        return {name: (costs[name], ignored[name]) for name in points}


def lonlat_to_pixels(lon: np.ndarray, lat: np.ndarray, *, transform: Affine, crs: object,
                     shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return the pixel ``(rows, cols)`` holding each WGS84 point; ``-1`` when outside."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    crs_ = pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    if crs_.to_epsg() == 4326:
        x, y = lon, lat
    else:
        x, y = pyproj.Transformer.from_crs(WGS84, crs_, always_xy=True).transform(lon, lat)
    cols, rows = ~transform * (np.asarray(x), np.asarray(y))
    with np.errstate(invalid="ignore"):
        rows = np.floor(rows)
        cols = np.floor(cols)
        inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    rows = np.where(inside, rows, -1).astype(np.int64)
    cols = np.where(inside, cols, -1).astype(np.int64)
    return rows, cols


def sample_raster(values: np.ndarray, lon: np.ndarray, lat: np.ndarray, *, transform: Affine,
                  crs: object) -> np.ndarray:
    """Return the raster value under each WGS84 point (NaN outside the raster)."""
    rows, cols = lonlat_to_pixels(lon, lat, transform=transform, crs=crs, shape=values.shape)
    out = np.full(rows.shape, np.nan)
    inside = rows >= 0
    out[inside] = values[rows[inside], cols[inside]]
    return out


def _unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lam, phi = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=1)


class StraightLine:
    """Great-circle distance to the nearest facility, as minutes at a fixed speed.

    Examples
    --------
    >>> StraightLine(np.array([110.0]), np.array([0.0])).minutes(
    ...     np.array([110.0]), np.array([0.036]))  # doctest: +ELLIPSIS
    array([60.0...])
    """

    def __init__(self, lon: np.ndarray, lat: np.ndarray, *,
                 speed_kmh: float = STRAIGHT_LINE_SPEED_KMH) -> None:
        if speed_kmh <= 0:
            raise InputError(f"speed must be positive, got {speed_kmh}")
        self.speed_kmh = speed_kmh
        self._tree = cKDTree(_unit_vectors(np.asarray(lon, float), np.asarray(lat, float)))

    def minutes(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return minutes from each point to its nearest facility."""
        if len(lon) == 0:
            return np.empty(0)
        chord, _ = self._tree.query(_unit_vectors(np.asarray(lon, float),
                                                  np.asarray(lat, float)), workers=-1)
        metres = 2 * EARTH_RADIUS_M * np.arcsin(np.clip(chord / 2, 0, 1))
        return metres / 1000 / self.speed_kmh * 60


@dataclass(frozen=True, eq=False)
class HouseholdValues:
    """Per-household float values averaged per cell: travel minutes. Picklable.

    Attributes
    ----------
    rasters
        ``{facility type slug: travel-minutes raster}`` (least-cost surfaces); sampled at
        the pixel holding each household.
    transform, crs
        Geotransform and CRS of the rasters (``None`` without rasters).
    straight
        ``{facility type slug: StraightLine}`` for the straight-line fallback.

    Examples
    --------
    >>> values = HouseholdValues(straight={"school": StraightLine(lon, lat)})  # doctest: +SKIP
    >>> values(accepted)["travel_min_school"]  # doctest: +SKIP
    """

    rasters: Mapping[str, np.ndarray] = field(default_factory=dict)
    transform: Any = None
    crs: Any = None
    straight: Mapping[str, StraightLine] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Return the value names, ``travel_min_<type>``."""
        return [f"travel_min_{t}" for t in (*self.rasters, *self.straight)]

    def __call__(self, households: pd.DataFrame) -> dict[str, np.ndarray]:
        """Return ``{travel_min_<type>: minutes per household}`` for accepted households."""
        lon = households["lon"].to_numpy()
        lat = households["lat"].to_numpy()
        out = {}
        for t, minutes in self.rasters.items():
            out[f"travel_min_{t}"] = sample_raster(minutes, lon, lat, transform=self.transform,
                                                   crs=self.crs)
        for t, tree in self.straight.items():
            out[f"travel_min_{t}"] = tree.minutes(lon, lat)
        return out



__all__ = ["HouseholdValues", "LEAST_COST_METHOD", "STRAIGHT_LINE_METHOD",
           "STRAIGHT_LINE_SPEED_KMH", "PixelSize",
           "StraightLine", "TravelSurface", "lonlat_to_pixels", "pixel_size_m", "sample_raster",
           "type_slug"]
