"""Per-cell raster statistics with exact coverage fractions (exactextract's definition).

Every pixel contributes to a cell in proportion to the share of the pixel that lies inside
the cell polygon (its *coverage fraction*, measured in the raster's own CRS):

* ``mean``: ``sum(value * fraction) / sum(fraction)`` over the valid (non-NaN) pixels,
  exactly exactextract's ``mean``;
* ``count`` (population): ``sum(value * fraction)``, exactextract's ``sum``; nodata
  pixels count as zero people. Summed over cells that tile a region this is the raster's
  own total in that region (each pixel's people are split among the cells covering it).

This holds for any ratio of pixel to cell size (cells smaller than pixels get the
area-weighted mix of the few pixels they overlap) and in any raster CRS.

Method. H3 cell edges are great-circle arcs; the boundary vertices come from H3 and each
edge is split into great-circle pieces of at most :data:`MAX_EDGE_PIECE_M` before being
projected into the raster's CRS and drawn as straight lines in pixel coordinates (a 1 km
piece departs from the arc by under 2 mm). The integral of the raster over each polygon
is then computed exactly by Green's theorem (:mod:`kantong.engine.build.coverage_kernel`):
one compiled sweep over the raster rows that the cell boundaries cross, a few operations
per (cell edge, pixel row) pair, and no per-pixel polygon clipping. Cost grows with the
total boundary length in pixels, not with the cell area; it is 10-100x faster than
exactextract on the same inputs (``benchmarks/bench_zonal.py``, ``docs/performance.md``).

A cell that does not overlap the raster is NaN; so is a mean over a cell whose pixels are
all nodata. A cell partly outside the raster counts only its covered part (exactextract
does the same).
"""

from __future__ import annotations

import logging
import math
from typing import Literal, Protocol

import h3
import h3ronpy
import h3ronpy.vector as h3v
import numpy as np
import pyarrow as pa
import shapely
from affine import Affine
from pyproj import CRS, Transformer

from kantong.engine.build.coverage_kernel import polygon_sums
from kantong.engine.constants import WGS84
from kantong.engine.errors import InputError

logger = logging.getLogger(__name__)

#: Longest straight piece of a cell edge drawn on the raster grid (metres).
MAX_EDGE_PIECE_M = 1_000.0
Kind = Literal["mean", "count"]


class RasterLike(Protocol):
    """What the zonal functions need from a raster (``inputs.rasters.RasterLayer`` fits)."""

    data: np.ndarray
    transform: Affine
    crs: object


def _crs(crs: object) -> CRS:
    if crs is None:
        raise InputError("raster has no CRS")
    return CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)


def _is_wgs84(crs: CRS) -> bool:
    return crs.to_epsg() == 4326


def _cells_resolution(cells: np.ndarray) -> int:
    res = np.unique(np.asarray(h3ronpy.cells_resolution(cells)))
    if res.size != 1:
        raise InputError(f"cells must share one H3 resolution, got {res.tolist()}")
    return int(res[0])


def cell_boundaries(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the closed boundary rings of ``cells`` as flat ``(lon, lat, cell_position)``.

    The vertices come from h3ronpy's WKB polygons, read in bulk with numpy when every ring
    has the same number of vertices (the usual case), else through shapely. Each ring is
    closed: its first vertex is repeated at the end.
    """
    wkb = pa.array(h3v.cells_to_wkb_polygons(np.asarray(cells, dtype=np.uint64)))
    offsets = np.frombuffer(wkb.buffers()[1], dtype=np.int64)[wkb.offset:wkb.offset + len(wkb) + 1]
    raw = np.frombuffer(wkb.buffers()[2], dtype=np.uint8)
    start = offsets[:-1]
    header = raw[start[:, None] + np.arange(13)]
    n_rings = header[:, 5:9].copy().view("<u4").ravel()
    if not ((header[:, 0] == 1).all() and (n_rings == 1).all()):
        raise InputError("unexpected WKB from h3ronpy: little-endian single-ring polygons only")
    n_points = header[:, 9:13].copy().view("<u4").ravel().astype(np.int64)
    size = 13 + 16 * n_points
    if (np.diff(start) == size[:-1]).all() and (n_points == n_points[0]).all():
        # the usual case: every ring has the same vertex count, records are back to back
        records = np.lib.stride_tricks.as_strided(raw[start[0]:], shape=(cells.size, size[0]),
                                                  strides=(size[0], 1))
        coords = records[:, 13:].copy().view("<f8").reshape(-1, 2)
        which = np.repeat(np.arange(cells.size), n_points)
        return coords[:, 0], coords[:, 1], which
    polys = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
    xy, idx = shapely.get_coordinates(shapely.get_exterior_ring(polys), return_index=True)
    return xy[:, 0], xy[:, 1], idx


def _densify(lon: np.ndarray, lat: np.ndarray, which: np.ndarray,
             pieces: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Insert ``pieces - 1`` great-circle points into every edge of the closed rings."""
    if pieces <= 1:
        return lon, lat, which
    lam, phi = np.radians(lon), np.radians(lat)
    xyz = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=1)
    same = which[1:] == which[:-1]
    edge = np.flatnonzero(same)  # edge e runs from vertex e to vertex e + 1 of one ring
    t = np.arange(pieces) / pieces
    pts = xyz[edge][:, None, :] * (1 - t)[None, :, None] + xyz[edge + 1][:, None, :] * t[
        None, :, None]
    pts /= np.linalg.norm(pts, axis=2, keepdims=True)
    # output layout: each ring's edges (pieces points each) then its closing vertex
    first = np.flatnonzero(np.r_[True, ~same])  # first vertex of each ring
    ring_of_vertex = np.repeat(np.arange(first.size), np.diff(np.r_[first, which.size]))
    n_edges = np.diff(np.r_[first, which.size]) - 1
    out_start = np.r_[0, np.cumsum(n_edges * pieces + 1)[:-1]]
    ring = ring_of_vertex[edge]
    pos = out_start[ring] + (edge - first[ring]) * pieces
    out = np.empty((int((n_edges * pieces + 1).sum()), 3))
    out[(pos[:, None] + np.arange(pieces)).ravel()] = pts.reshape(-1, 3)
    out[out_start + n_edges * pieces] = xyz[first + n_edges]
    owner = np.repeat(which[first], n_edges * pieces + 1)
    new_lon = np.degrees(np.arctan2(out[:, 1], out[:, 0]))
    new_lat = np.degrees(np.arcsin(np.clip(out[:, 2], -1, 1)))
    return new_lon, new_lat, owner


def cell_rings(cells: np.ndarray, crs: object,
               transform: Affine | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the densified boundary rings of ``cells`` in a raster's CRS (or its pixels).

    Parameters
    ----------
    cells
        ``uint64`` H3 cells of one resolution.
    crs
        Target CRS (any pyproj input).
    transform
        When given, coordinates are fractional pixel ``(column, row)`` of this grid.

    Returns
    -------
    tuple of numpy.ndarray
        ``x``, ``y`` and the ring number of every vertex; rings are closed and each edge is
        split into great-circle pieces of at most :data:`MAX_EDGE_PIECE_M`.

    Examples
    --------
    >>> import h3
    >>> cell = np.array([h3.str_to_int(h3.latlng_to_cell(0.0, 110.0, 7))], np.uint64)
    >>> x, y, which = cell_rings(cell, "EPSG:4326")
    >>> bool(x[0] == x[-1] and y[0] == y[-1]), int(which.max())
    (True, 0)
    """
    crs_ = _crs(crs)
    lon, lat, which = cell_boundaries(cells)
    edge = h3.average_hexagon_edge_length(_cells_resolution(cells), "m")
    lon, lat, which = _densify(lon, lat, which, math.ceil(edge / MAX_EDGE_PIECE_M))
    first = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
    last = np.r_[first[1:] - 1, which.size - 1]
    lon[last], lat[last] = lon[first], lat[first]  # closed exactly, not to rounding
    if _is_wgs84(crs_):
        x, y = lon, lat
    else:
        x, y = Transformer.from_crs(WGS84, crs_, always_xy=True).transform(lon, lat)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if transform is not None:
        x, y = ~transform * (x, y)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return x, y, which


def zonal_stats(data: np.ndarray, *, transform: Affine, crs: object, cells: np.ndarray,
                kind: Kind = "mean") -> np.ndarray:
    """Return one coverage-weighted statistic of a raster per H3 cell.

    Parameters
    ----------
    data
        2-D float raster, nodata as NaN.
    transform, crs
        Its grid (any CRS; cell boundaries are projected onto it).
    cells
        ``uint64`` H3 cells of one resolution.
    kind
        ``"mean"``: ``sum(value * fraction) / sum(fraction)`` over valid pixels (NaN when
        the cell covers no valid pixel). ``"count"``: the raster holds counts per pixel
        (e.g. persons); returns ``sum(value * fraction)``, nodata as 0 (NaN when the cell
        does not overlap the raster).

    Returns
    -------
    numpy.ndarray
        float64, one value per cell, in the order of ``cells``.

    Examples
    --------
    >>> import h3
    >>> from affine import Affine
    >>> cell = np.array([h3.str_to_int(h3.latlng_to_cell(0.0, 110.0, 8))], np.uint64)
    >>> grid = Affine(0.01, 0, 109.95, 0, -0.01, 0.05)
    >>> zonal_stats(np.full((10, 10), 7.0), transform=grid, crs="EPSG:4326", cells=cell)
    array([7.])
    """
    cells = np.asarray(cells, dtype=np.uint64)
    if kind not in ("mean", "count"):
        raise InputError(f"unknown zonal statistic {kind!r}: expected 'mean' or 'count'")
    if cells.size == 0:
        return np.empty(0)
    crs_ = _crs(crs)
    data = np.asarray(data)
    if data.ndim != 2 or data.size == 0:
        raise InputError("zonal statistics need a non-empty 2-D raster")
    if transform.b or transform.d:
        raise InputError("rotated rasters are not supported: warp the raster north-up first")
    any_valid = bool(np.isfinite(data).any())
    if kind == "mean" and not any_valid:
        return np.full(cells.size, np.nan)
    u, v, which = cell_rings(cells, crs_, transform)
    sums, cover = polygon_sums(data, u, v, which, cells.size, nodata_as_zero=kind == "count")
    # a covered share below 1e-9 of a pixel is floating-point noise, not overlap; results
    # are kept inside the range the definition allows (rounding can step out by ~1e-15)
    with np.errstate(invalid="ignore", divide="ignore", all="ignore"):
        lo, hi = (np.nanmin(data), np.nanmax(data)) if any_valid else (0.0, 0.0)
        if kind == "mean":
            return np.where(cover > 1e-9, np.clip(sums / cover, lo, hi), np.nan)
        return np.where(cover > 1e-9, np.maximum(sums, 0.0) if lo >= 0 else sums, np.nan)


def cell_means(layer: RasterLike, cells: np.ndarray) -> np.ndarray:
    """Return the coverage-weighted mean of ``layer`` over each cell (``kind="mean"``)."""
    return zonal_stats(layer.data, transform=layer.transform, crs=layer.crs, cells=cells,
                       kind="mean")


def cell_population(layer: RasterLike, cells: np.ndarray) -> np.ndarray:
    """Return the persons of a count raster in each cell (``kind="count"``)."""
    return zonal_stats(layer.data, transform=layer.transform, crs=layer.crs, cells=cells,
                       kind="count")


__all__ = ["MAX_EDGE_PIECE_M", "cell_boundaries", "cell_means", "cell_population", "cell_rings",
           "zonal_stats"]
