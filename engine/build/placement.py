"""Where households go in space: the study-area test and the village weights.

The weights give the expected allocation of households located only by their village code
(dasymetric allocation).

A register without coordinates (P3KE, DTKS) locates a household by its village code.
Nothing says where in the village it lives, so the engine never invents a point for it.
Instead each village's households are spread over H3 cells as *expected* shares, in
proportion to the population grid inside the village (dasymetric allocation):

1. every pixel of the population raster that meets the village's bounding box is split
   into ``s x s`` sub-pixels (``s`` = :func:`subsample_factor`, 2-8 so that a sub-pixel is
   at most half an H3 edge wide at the build resolution); a sub-pixel centre inside the
   village polygon carries ``pixel population / s**2`` persons;
2. the sub-pixel centres are indexed to H3; a village's weight on a cell is the share of
   the village's persons in that cell (weights of a village sum to 1);
3. a village without any person in the raster spreads uniformly over its area (every
   sub-pixel centre inside it weighs the same); a village too small to hold a sub-pixel
   centre puts all its weight on the cell of its representative point.

Each village's weights depend only on its polygon, the raster and the resolution (never
on the households, their order or the batch they arrive in), so the allocation is
deterministic. Weights are cached per process.

:func:`place_by_village` gives a village-located household its *nominal* point: the
village's representative point (inside the polygon). It is used only to test the study
area and to fill the ``lon``/``lat`` columns of the accepted table; the cell sums use
the weights (:func:`kantong.engine.build.sums.allocate_village_sums`).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import h3
import h3ronpy.vector as h3v
import numpy as np
import pandas as pd
import pyproj
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from kantong.engine import datapaths
from kantong.engine.constants import WGS84
from kantong.engine.errors import CRSError, InputError
from kantong.engine.inputs import boundaries
from kantong.engine.inputs.rasters import open_raster

logger = logging.getLogger(__name__)

#: Most cells of the study-area lookup grid (its resolution adapts to the area's extent).
_MAX_MASK_CELLS = 4_000_000
#: Finest resolution of the study-area lookup grid, degrees.
_MIN_MASK_RES = 0.005
_OUTSIDE, _INSIDE, _EDGE = np.uint8(0), np.uint8(1), np.uint8(2)
#: Sub-pixels per pixel side: at least this many, at most ``_MAX_SUBSAMPLE``.
_MIN_SUBSAMPLE, _MAX_SUBSAMPLE = 2, 8
#: Columns of a weight table.
WEIGHT_COLUMNS = ("village_code", "cell", "weight", "lon", "lat")
_METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True, eq=False)
class StudyArea:
    """A study area in EPSG:4326 with a fast vectorised point-in-polygon test.

    A lookup grid marks cells wholly inside, wholly outside or crossed by the boundary;
    only points in boundary cells go through the exact test (``shapely.contains_xy``).
    Build it with :meth:`from_layer`.
    """

    geometry: BaseGeometry
    grid: np.ndarray
    transform: Affine

    @classmethod
    def from_layer(cls, layer: gpd.GeoDataFrame | gpd.GeoSeries | BaseGeometry | StudyArea
                   ) -> StudyArea:
        """Return the study area of a layer (its union), reprojected to EPSG:4326.

        Parameters
        ----------
        layer
            Polygons with a CRS (a shapely geometry is taken as EPSG:4326).

        Raises
        ------
        CRSError
            The layer has no CRS.
        InputError
            The layer is empty.
        """
        if isinstance(layer, StudyArea):
            return layer
        if isinstance(layer, gpd.GeoDataFrame | gpd.GeoSeries):
            if layer.crs is None:
                raise CRSError("study area: layer has no CRS")
            if not pyproj.CRS(layer.crs).equals(WGS84, ignore_axis_order=True):
                logger.info("reprojecting study area from %s to %s", layer.crs, WGS84)
                layer = layer.to_crs(WGS84)
            geoms = layer.geometry.to_numpy() if isinstance(layer, gpd.GeoDataFrame) \
                else layer.to_numpy()
        else:
            geoms = np.asarray([layer])
        return _study_area_cached(tuple(shapely.to_wkb(geoms)))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Return ``(west, south, east, north)`` in EPSG:4326."""
        west, south, east, north = self.geometry.bounds
        return float(west), float(south), float(east), float(north)

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return a bool array: which points (EPSG:4326) lie inside the study area.

        Non-finite coordinates are outside. Points on the boundary count as outside
        (``shapely.contains_xy`` semantics).
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        out = np.zeros(lon.shape, dtype=bool)
        t = self.transform
        with np.errstate(invalid="ignore"):
            col = np.floor((lon - t.c) / t.a)
            row = np.floor((lat - t.f) / t.e)
        height, width = self.grid.shape
        inb = (col >= 0) & (col < width) & (row >= 0) & (row < height)  # False for NaN
        idx = np.flatnonzero(inb)
        state = self.grid[row[idx].astype(np.int64), col[idx].astype(np.int64)]
        out[idx[state == _INSIDE]] = True
        edge = idx[state == _EDGE]
        if edge.size:
            out[edge] = shapely.contains_xy(self.geometry, lon[edge], lat[edge])
        return out


@functools.lru_cache(maxsize=8)
def _study_area_cached(wkb: tuple[bytes, ...]) -> StudyArea:
    geoms = shapely.from_wkb(np.asarray(wkb, dtype=object))
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if geoms.size == 0:
        raise InputError("study area: layer holds no geometry")
    geom = geoms[0] if geoms.size == 1 else shapely.union_all(geoms)
    geom = shapely.make_valid(geom) if not shapely.is_valid(geom) else geom
    shapely.prepare(geom)
    west, south, east, north = geom.bounds
    res = max(_MIN_MASK_RES, float(np.sqrt((east - west) * (north - south) / _MAX_MASK_CELLS)))
    width = int(np.ceil((east - west) / res)) + 2
    height = int(np.ceil((north - south) / res)) + 2
    transform = Affine(res, 0.0, west - res, 0.0, -res, north + res)
    inside = rasterio.features.rasterize([(geom, 1)], out_shape=(height, width),
                                         transform=transform, dtype="uint8")
    edge = rasterio.features.rasterize([(geom.boundary, 1)], out_shape=(height, width),
                                       transform=transform, all_touched=True, dtype="uint8")
    edge = ndimage.binary_dilation(edge.astype(bool), iterations=1)
    grid = np.where(edge, _EDGE, np.where(inside.astype(bool), _INSIDE, _OUTSIDE)).astype(np.uint8)
    logger.debug("study area grid %d x %d at %.4f deg, %.1f%% boundary cells", width, height,
                 res, 100.0 * edge.mean())
    return StudyArea(geometry=geom, grid=grid, transform=transform)




def subsample_factor(pixel_m: float, resolution: int) -> int:
    """Return how many sub-pixels per pixel side the allocation uses at ``resolution``.

    ``ceil(2 * pixel size / mean H3 edge length)``, clipped to 2-8: a sub-pixel is at most
    half a cell edge wide (r8, 1 km pixels: 4; r7: 2; r9 and finer: 8).

    Parameters
    ----------
    pixel_m
        Pixel size of the population raster, metres.
    resolution
        H3 resolution of the cells.

    Returns
    -------
    int
    """
    edge = h3.average_hexagon_edge_length(resolution, "m")
    return int(np.clip(math.ceil(2.0 * pixel_m / edge), _MIN_SUBSAMPLE, _MAX_SUBSAMPLE))


@dataclass(frozen=True, eq=False)
class _Grid:
    """The population raster as non-negative float64 persons per pixel, in its own CRS."""

    data: np.ndarray
    transform: Affine
    to_raster: pyproj.Transformer | None   # EPSG:4326 -> raster CRS (None when 4326)
    to_wgs84: pyproj.Transformer | None
    pixel_m: float


@functools.cache
def _grid(raster_path: str) -> _Grid:
    layer = open_raster(raster_path, name="population")
    data = np.nan_to_num(layer.data.astype(np.float64), nan=0.0)
    data[data < 0] = 0.0
    t = layer.transform
    if pyproj.CRS(layer.crs).equals(WGS84, ignore_axis_order=True):
        to_raster = to_wgs84 = None
        pixel_m = math.sqrt(abs(t.a * t.e)) * _METRES_PER_DEGREE
    else:
        to_raster = pyproj.Transformer.from_crs(WGS84, layer.crs, always_xy=True)
        to_wgs84 = pyproj.Transformer.from_crs(layer.crs, WGS84, always_xy=True)
        unit = pyproj.CRS(layer.crs).axis_info[0].unit_conversion_factor
        pixel_m = math.sqrt(abs(t.a * t.e)) * unit
    return _Grid(data=data, transform=t, to_raster=to_raster, to_wgs84=to_wgs84,
                 pixel_m=pixel_m)


@functools.cache
def _village_layer() -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Village codes (sorted as in the layer), polygons and representative points."""
    vil = boundaries.villages()
    codes = pd.Index(vil["village_code"].to_numpy(dtype=object))
    points = boundaries.village_points().set_index("village_code")
    points = points.reindex(codes.to_numpy())[["lon", "lat"]].to_numpy(dtype=np.float64)
    return codes, vil.geometry.to_numpy(), points


def known_village_codes() -> pd.Index:
    """Return the BPS codes of the shipped village polygons (unique)."""
    return _village_layer()[0]


def villages_of_points(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return the code of the village polygon covering each point (``None`` outside all).

    A point on an edge shared by two villages takes the lower code.

    Parameters
    ----------
    lon, lat
        EPSG:4326 degrees.

    Returns
    -------
    numpy.ndarray
        Object array of BPS village codes.
    """
    codes, geoms, _ = _village_layer()
    out = np.full(len(lon), None, dtype=object)
    if len(lon) == 0:
        return out
    points = shapely.points(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
    poly_idx, point_idx = shapely.STRtree(points).query(geoms, predicate="covers")
    values = codes.to_numpy(dtype=object)
    order = np.lexsort((values[poly_idx].astype(str), point_idx))
    point_idx, poly_idx = point_idx[order], poly_idx[order]
    first = np.r_[True, point_idx[1:] != point_idx[:-1]] if point_idx.size else point_idx
    out[point_idx[first]] = values[poly_idx[first]]
    return out


@functools.cache
def village_attributes() -> pd.DataFrame:
    """Return names and parent codes of every village, indexed by BPS village code.

    Returns
    -------
    pandas.DataFrame
        ``village_name``, ``district_code``, ``regency_code``, ``province_code`` (strings).
    """
    pts = boundaries.village_points().set_index("village_code")
    cols = ["village_name", "district_code", "regency_code", "province_code"]
    return pts[cols].astype("string")


def _sub_points(geoms: np.ndarray, grid: _Grid, s: int, *, populated: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel centres inside each polygon (raster CRS): ``(owner, x, y, persons)``.

    With ``populated`` only pixels holding persons are split (weights = persons); else
    every pixel is, each sub-pixel weighing 1 (uniform over the area).
    """
    height, width = grid.data.shape
    bounds = shapely.bounds(geoms)
    inv = ~grid.transform
    cols, rows = [], []
    for x, y in ((bounds[:, 0], bounds[:, 1]), (bounds[:, 0], bounds[:, 3]),
                 (bounds[:, 2], bounds[:, 1]), (bounds[:, 2], bounds[:, 3])):
        c, r = inv * (x, y)
        cols.append(c)
        rows.append(r)
    c0 = np.clip(np.floor(np.min(cols, axis=0)), 0, width).astype(np.int64)
    c1 = np.clip(np.floor(np.max(cols, axis=0)) + 1, 0, width).astype(np.int64)
    r0 = np.clip(np.floor(np.min(rows, axis=0)), 0, height).astype(np.int64)
    r1 = np.clip(np.floor(np.max(rows, axis=0)) + 1, 0, height).astype(np.int64)
    nc, nr = c1 - c0, r1 - r0
    npx = nc * nr
    owner = np.repeat(np.arange(len(geoms)), npx)
    k = np.arange(int(npx.sum())) - np.repeat(np.cumsum(npx) - npx, npx)
    col = c0[owner] + k % nc[owner]
    row = r0[owner] + k // nc[owner]
    persons = grid.data[row, col]
    if populated:
        keep = persons > 0
        owner, col, row, persons = owner[keep], col[keep], row[keep], persons[keep]
    else:
        persons = np.ones(owner.size)
    off = (np.arange(s) + 0.5) / s
    ox, oy = (a.ravel() for a in np.meshgrid(off, off))
    m = s * s
    x, y = grid.transform * ((col[:, None] + ox[None, :]).ravel(),
                             (row[:, None] + oy[None, :]).ravel())
    owner = np.repeat(owner, m)
    persons = np.repeat(persons / m, m)
    inside = shapely.contains_xy(geoms[owner], x, y)
    return owner[inside], x[inside], y[inside], persons[inside]


def _compute_weights(codes: np.ndarray, grid: _Grid, resolution: int) -> pd.DataFrame:
    """Return the weight table of ``codes`` (known village codes); see village_cell_weights."""
    all_codes, all_geoms, all_points = _village_layer()
    pos = all_codes.get_indexer(codes)
    geoms = all_geoms[pos]
    if grid.to_raster is not None:
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(
            grid.to_raster.transform(xy[:, 0], xy[:, 1])))
    shapely.prepare(geoms)
    s = subsample_factor(grid.pixel_m, resolution)
    owner, x, y, w = _sub_points(geoms, grid, s, populated=True)
    empty = np.flatnonzero(np.bincount(owner, minlength=len(codes)) == 0)
    if empty.size:  # no person in the raster: uniform over the village's area
        o2, x2, y2, w2 = _sub_points(geoms[empty], grid, s, populated=False)
        owner = np.concatenate([owner, empty[o2]])
        x, y, w = np.concatenate([x, x2]), np.concatenate([y, y2]), np.concatenate([w, w2])
    if grid.to_wgs84 is not None:
        x, y = grid.to_wgs84.transform(x, y)
    tiny = np.flatnonzero(np.bincount(owner, minlength=len(codes)) == 0)
    if tiny.size:  # smaller than a sub-pixel: the representative point's cell
        owner = np.concatenate([owner, tiny])
        x = np.concatenate([x, all_points[pos[tiny], 0]])
        y = np.concatenate([y, all_points[pos[tiny], 1]])
        w = np.concatenate([w, np.ones(tiny.size)])
    cells = np.asarray(h3v.coordinates_to_cells(np.ascontiguousarray(y),
                                                np.ascontiguousarray(x), resolution),
                       dtype=np.uint64)
    order = np.lexsort((cells, owner))
    owner, cells, x, y, w = owner[order], cells[order], x[order], y[order], w[order]
    start = np.r_[True, (owner[1:] != owner[:-1]) | (cells[1:] != cells[:-1])]
    piece = np.cumsum(start) - 1
    n = int(piece[-1]) + 1 if piece.size else 0
    total = np.bincount(piece, weights=w, minlength=n)
    lon = np.bincount(piece, weights=w * x, minlength=n) / total
    lat = np.bincount(piece, weights=w * y, minlength=n) / total
    v = owner[start]
    weight = total / np.bincount(v, weights=total, minlength=len(codes))[v]
    logger.debug("village weights r%d: %d villages, %d (village, cell) pieces, s=%d "
                 "(%d uniform, %d at their point)", resolution, len(codes), n, s,
                 empty.size - tiny.size, tiny.size)
    return pd.DataFrame({"village_code": pd.array(codes[v], dtype="string"),
                         "cell": cells[start],
                         "weight": weight, "lon": lon, "lat": lat})


class _WeightStore:
    """Weight tables computed so far for one (raster, resolution), one per village."""

    def __init__(self, raster: str, resolution: int) -> None:
        self.raster = raster
        self.resolution = resolution
        self.table = pd.DataFrame({"village_code": pd.array([], dtype="string"),
                                   "cell": np.empty(0, np.uint64), "weight": np.empty(0),
                                   "lon": np.empty(0), "lat": np.empty(0)})

    def get(self, codes: np.ndarray) -> pd.DataFrame:
        done = self.table["village_code"].unique()
        missing = np.setdiff1d(codes, np.asarray(done, dtype=object))
        if missing.size:
            new = _compute_weights(missing, _grid(self.raster), self.resolution)
            self.table = pd.concat([self.table, new], ignore_index=True).sort_values(
                ["village_code", "cell"], kind="stable", ignore_index=True)
        return self.table[self.table["village_code"].isin(codes)].reset_index(drop=True)


@functools.cache
def _store(raster: str, resolution: int) -> _WeightStore:
    return _WeightStore(raster, resolution)


def village_cell_weights(codes: pd.Series | np.ndarray | list[str], *, resolution: int,
                         population_raster: str | Path | None = None) -> pd.DataFrame:
    """Return the dasymetric weights of villages on H3 cells.

    Parameters
    ----------
    codes
        BPS village codes (as :func:`kantong.engine.inputs.boundaries.normalise_village_codes`
        returns them); duplicates allowed.
    resolution
        H3 resolution of the cells.
    population_raster
        Population raster (persons per pixel, any CRS); default the bundled GHS-POP 1 km grid.

    Returns
    -------
    pandas.DataFrame
        ``village_code`` (string), ``cell`` (``uint64``), ``weight`` (share of the village's
        persons in the cell; the weights of each village sum to 1), ``lon``, ``lat``
        (EPSG:4326, the person-weighted centre of the village's part of the cell), sorted
        by village code then cell.

    Raises
    ------
    InputError
        A code names no village of the shipped boundaries.

    Examples
    --------
    >>> w = village_cell_weights(["6103010001"], resolution=8)  # doctest: +SKIP
    >>> float(w["weight"].sum())  # doctest: +SKIP
    1.0
    """
    values = np.unique(np.asarray(pd.Series(codes, dtype="string").dropna(), dtype=object))
    known, _, _ = _village_layer()
    unknown = values[known.get_indexer(values) < 0]
    if unknown.size:
        raise InputError(f"village code {unknown[0]!r} names no village of the boundaries")
    raster = str(population_raster or datapaths.data_file(datapaths.POPULATION_TIF))
    return _store(raster, int(resolution)).get(values)


def place_by_village(frame: pd.DataFrame, *,
                     study_area: gpd.GeoDataFrame | StudyArea | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Return the nominal point of village-located households: their village's point.

    The point is the village's representative point (always inside the polygon). It is not
    where the household lives: cell sums spread village-located households over the village
    with :func:`village_cell_weights`; the point serves the study-area test and fills the
    ``lon``/``lat`` columns.

    Parameters
    ----------
    frame
        ``village_code`` (BPS code as returned by
        :func:`kantong.engine.inputs.boundaries.normalise_village_codes`).
    study_area
        Accepted for symmetry with the ingest; callers test the result against it.

    Returns
    -------
    tuple of numpy.ndarray
        ``lon``, ``lat`` in EPSG:4326, aligned with ``frame``; NaN for a code that names
        no village.

    Examples
    --------
    >>> frame = pd.DataFrame({"village_code": ["6101010001", "6101010001"]})
    >>> lon, lat = place_by_village(frame)  # doctest: +SKIP
    """
    del study_area  # the caller tests its points against the study area
    codes, _, points = _village_layer()
    pos = codes.get_indexer(frame["village_code"].astype("string").fillna("").to_numpy(
        dtype=object))
    lon = np.where(pos >= 0, points[np.maximum(pos, 0), 0], np.nan)
    lat = np.where(pos >= 0, points[np.maximum(pos, 0), 1], np.nan)
    if (pos < 0).any():
        logger.warning("%d households name no known village; left unplaced", (pos < 0).sum())
    return lon, lat


__all__ = ["StudyArea", "WEIGHT_COLUMNS", "known_village_codes", "place_by_village",
           "subsample_factor", "village_attributes", "village_cell_weights",
           "villages_of_points"]
