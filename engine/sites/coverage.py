"""Travel-time coverage between sites and demand points, as a scipy.sparse CSR matrix.

A demand point (an H3 cell centre) is *covered* by a site when the least-cost travel time
from the site to the point over the friction surface (minutes per metre) is at most
``max_minutes``. Travel time is the accumulated cost of an 8-connected pixel path where a
step between two pixels costs ``(f_a + f_b) / 2 * step length`` - the cost model of
``skimage.graph.MCP_Geometric`` used by the build (:mod:`kantong.engine.build.travel`), with the
same
geodesic pixel sizes (:func:`kantong.engine.build.travel.pixel_size_m`), the same point-to-pixel
rule
(:func:`kantong.engine.build.travel.lonlat_to_pixels`) and the same snapping of points on nodata
pixels.
Coverage of existing facilities therefore agrees with the build's ``travel_min_<type>``.

Each search is bounded: a path costing at most ``max_minutes`` is at most
``max_minutes / min(friction)`` metres long, so sources are grouped into square blocks of
pixels and each block searches only its window (the block plus that reach on every side),
with ``scipy.sparse.csgraph.dijkstra(..., limit=max_minutes)`` stopping at the time limit.
The result does not depend on the block size (tested).

Points on impassable pixels (nodata, NaN, friction <= 0) are moved to the nearest passable
pixel within ``SNAP_PIXELS`` pixels; points outside the raster or farther from land reach
nothing and are reached by nothing (logged).

Without a friction surface, :func:`straight_line_coverage` uses the great-circle
(haversine) distance at the build's fallback speed
(``kantong.engine.build.travel.STRAIGHT_LINE_SPEED_KMH``,
walking, no detour factor).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import affine
import numpy as np
import rasterio.crs
from scipy import ndimage, sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from kantong.engine.build.travel import (
    EARTH_RADIUS_M,
    SNAP_PIXELS,
    STRAIGHT_LINE_SPEED_KMH,
    lonlat_to_pixels,
    pixel_size_m,
)
from kantong.engine.errors import CRSError, InputError
from kantong.engine.inputs.rasters import open_raster

logger = logging.getLogger(__name__)

#: Largest distance matrix (sources x window pixels, float64) held at once.
_MAX_DIST_ENTRIES: Final = 20_000_000

# 8-connected neighbourhood: (row, col) offsets
_OFFSETS: Final = ((0, 1), (1, -1), (1, 0), (1, 1), (0, -1), (-1, 1), (-1, 0), (-1, -1))


@dataclass(frozen=True, eq=False)
class Coverage:
    """Which sources (rows) reach which demand points (columns), and in how many minutes.

    Attributes
    ----------
    matrix
        ``scipy.sparse.csr_matrix`` of bool, shape ``(n_sources, n_points)``: True where the
        travel time is at most ``max_minutes``.
    minutes
        Travel times (float32 minutes) on the same sparsity pattern as ``matrix``
        (times of 0 - the same pixel - are stored explicitly).
    max_minutes
        The time limit.
    method
        ``"least-cost"`` or ``"straight-line"``.
    """

    matrix: sparse.csr_matrix
    minutes: sparse.csr_matrix
    max_minutes: float
    method: str

    @classmethod
    def from_triplets(cls, rows: np.ndarray, cols: np.ndarray, minutes: np.ndarray,
                      shape: tuple[int, int], *, max_minutes: float,
                      method: str) -> Coverage:
        """Build a coverage from (source, point, minutes) triplets (duplicates keep the min).

        Parameters
        ----------
        rows, cols, minutes
            Source index, point index and travel time of every covered pair.
        shape
            ``(n_sources, n_points)``.
        max_minutes
            The time limit (stored).
        method
            ``"least-cost"`` or ``"straight-line"``.

        Returns
        -------
        Coverage
        """
        rows, cols = np.asarray(rows), np.asarray(cols)
        mins = np.asarray(minutes, dtype=np.float32)
        order = np.lexsort((mins, cols, rows))
        rows, cols, mins = rows[order], cols[order], mins[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        rows, cols, mins = rows[first], cols[first], mins[first]
        # scipy stores the indices as int32 when they fit
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
        minutes_m = sparse.csr_matrix((mins, cols, indptr), shape=shape)
        matrix = sparse.csr_matrix((np.ones(len(rows), dtype=bool), cols, indptr),
                                   shape=shape)
        return cls(matrix=matrix, minutes=minutes_m, max_minutes=float(max_minutes),
                   method=method)

    @property
    def shape(self) -> tuple[int, int]:
        """Return ``(n_sources, n_points)``."""
        return self.matrix.shape  # type: ignore[return-value]

    def covered(self) -> np.ndarray:
        """Return a bool array over points: reached by at least one source."""
        out = np.zeros(self.shape[1], dtype=bool)
        out[self.matrix.indices] = True
        return out


@dataclass(frozen=True, eq=False)
class FrictionSurface:
    """A friction raster (minutes per metre) ready for least-cost searches.

    Attributes
    ----------
    friction
        float64 array; NaN where impassable (nodata, non-finite or <= 0).
    transform
        Affine transform (north-up, not rotated).
    crs
        The raster's CRS: geographic (degrees) or projected in metres.
    path
        Where it was read from (for messages).
    """

    friction: np.ndarray
    transform: affine.Affine
    crs: rasterio.crs.CRS
    path: str = "<memory>"

    def __post_init__(self) -> None:
        if self.crs is None:
            raise CRSError(f"{self.path}: friction raster has no CRS")
        t = self.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise CRSError(f"{self.path}: friction raster must be north-up without rotation")

    @classmethod
    def from_file(cls, path: str | Path) -> FrictionSurface:
        """Read band 1 of a friction GeoTIFF; nodata, non-finite and <= 0 become NaN.

        Parameters
        ----------
        path
            The raster (minutes per metre), in any CRS with a defined unit.

        Returns
        -------
        FrictionSurface
        """
        # the name only labels open_raster's log line: its mutants are equivalent
        layer = open_raster(path, name="friction")  # pragma: no mutate
        data = np.asarray(layer.data, dtype=np.float64)
        f = np.where(np.isfinite(data) & (data > 0), data, np.nan)
        if not np.isfinite(f).any():
            raise InputError(f"{path}: friction raster has no passable pixel")
        return cls(friction=f, transform=layer.transform, crs=layer.crs, path=str(path))

    @property
    def shape(self) -> tuple[int, int]:
        """Return ``(rows, cols)``."""
        return self.friction.shape  # type: ignore[return-value]

    def step_lengths(self) -> tuple[float, float]:
        """Return the vertical and horizontal step lengths in metres.

        They are the build's pixel height and width (``pixel_size_m``): like the build's MCP,
        the search uses one pixel size for the whole raster.

        Returns
        -------
        dy, dx : float
            Distance between the centres of vertically and of horizontally adjacent pixels.
        """
        return self._step_lengths

    @functools.cached_property
    def _step_lengths(self) -> tuple[float, float]:
        pixel = pixel_size_m(self.transform, self.crs, self.shape)
        return pixel.dy, pixel.dx

    def reach_pixels(self, max_minutes: float) -> int:
        """Return how many pixels a path of at most ``max_minutes`` can span (upper bound).

        Every step costs at least ``min(friction) * min(step length)``, so a path within the
        limit is at most ``max_minutes / min(friction)`` metres long.
        """
        return int(math.ceil(max_minutes / self._cheapest_step)) + 1

    @functools.cached_property
    def _cheapest_step(self) -> float:
        """Lowest cost of any step (minutes): the least friction over the shortest step."""
        return float(np.nanmin(self.friction)) * min(self.step_lengths())

    def coarsen(self, factor: int) -> FrictionSurface:
        """Return a surface of ``factor x factor`` blocks holding their mean friction.

        Each block averages its passable pixels (NaN when it has none). The coarse surface is
        an approximation used only to shortlist default candidates before the exact
        coverage is computed.
        """
        if factor <= 1:
            return self
        h, w = self.shape
        hh, ww = -(-h // factor), -(-w // factor)
        padded = np.zeros((hh * factor, ww * factor))
        count = np.zeros_like(padded)
        ok = np.isfinite(self.friction)
        padded[:h, :w] = np.where(ok, self.friction, 0.0)
        count[:h, :w] = ok
        total = padded.reshape(hh, factor, ww, factor).sum(axis=(1, 3))
        n = count.reshape(hh, factor, ww, factor).sum(axis=(1, 3))
        blocks = np.divide(total, n, out=np.full(total.shape, np.nan), where=n > 0)
        t = self.transform
        coarse_t = affine.Affine(t.a * factor, 0.0, t.c, 0.0, t.e * factor, t.f)
        return FrictionSurface(friction=blocks, transform=coarse_t, crs=self.crs,
                               path=f"{self.path} (coarsened x{factor})")

    def pixels_of(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return the flat pixel index of each WGS84 point, snapped to passable pixels.

        Parameters
        ----------
        lon, lat
            Points in degrees (EPSG:4326).

        Returns
        -------
        numpy.ndarray
            int64 flat index ``row * cols + col``; -1 for points outside the raster or
            more than ``SNAP_PIXELS`` pixels from a passable pixel.
        """
        h, w = self.shape
        row, col = lonlat_to_pixels(lon, lat, transform=self.transform, crs=self.crs,
                                    shape=self.shape)
        inside = row >= 0
        row, col = np.maximum(row, 0), np.maximum(col, 0)
        impassable = ~np.isfinite(self.friction)
        dist, near_r, near_c = self._snap_table
        ok = inside & (dist[row, col] <= SNAP_PIXELS)
        flat = near_r[row, col].astype(np.int64) * w + near_c[row, col]
        moved = int((inside & impassable[row, col] & ok).sum())
        if moved:
            logger.info("%d points on impassable pixels moved to the nearest passable pixel",
                        moved)
        lost = int((~ok).sum())
        if lost:
            logger.warning("%d of %d points are outside the friction raster or off land; "
                           "they reach nothing", lost, len(lon))
        return np.where(ok, flat, -1)

    @functools.cached_property
    def _snap_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distance (pixels) to, and row/col of, the nearest passable pixel (cached)."""
        dist, idx = ndimage.distance_transform_edt(~np.isfinite(self.friction),
                                                   return_indices=True)
        return dist, idx[0], idx[1]


def _pixel_graph(friction: np.ndarray, dy: float, dx: float) -> sparse.csr_matrix:
    """Return the 8-connected travel-cost graph (minutes) of a friction window.

    ``dy`` and ``dx`` are the vertical and horizontal step lengths (m); a diagonal step is
    their hypotenuse. A step costs the mean friction of its two pixels times its length;
    impassable (NaN) pixels have no edges.
    """
    h, w = friction.shape
    n = h * w
    # int32 ids halve the neighbour table; scipy takes either (int64 only past 2**31 pixels)
    ids = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)  # pragma: no mutate
    nbr = np.repeat(ids, len(_OFFSETS)).reshape(h, w, len(_OFFSETS))
    cost = np.full((h, w, len(_OFFSETS)), np.nan)  # NaN: no neighbour or not passable
    diagonal = math.hypot(dy, dx)
    for k, (dr, dc) in enumerate(_OFFSETS):
        src = (slice(max(0, -dr), h - max(0, dr)), slice(max(0, -dc), w - max(0, dc)))
        dst = (slice(max(0, dr), h - max(0, -dr)), slice(max(0, dc), w - max(0, -dc)))
        length = dx if dr == 0 else dy if dc == 0 else diagonal
        nbr[src + (k,)] = ids.reshape(h, w)[dst]
        cost[src + (k,)] = 0.5 * (friction[src] + friction[dst]) * length
    cost, nbr = cost.reshape(n, len(_OFFSETS)), nbr.reshape(n, len(_OFFSETS))
    edge = np.isfinite(cost)
    indptr = np.concatenate([[0], np.cumsum(edge.sum(axis=1))])
    return sparse.csr_matrix((cost[edge], nbr[edge], indptr), shape=(n, n))


def _window(block_row: int, block_col: int, block: int, reach: int,
            shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Return ``(r0, r1, c0, c1)``: a block of sources plus ``reach`` pixels on every side.

    The block is the ``block x block`` square at ``(block_row, block_col)`` in block units;
    the window is clipped to the raster (half-open bounds).
    """
    h, w = shape
    return (max(block_row * block - reach, 0), min((block_row + 1) * block + reach, h),
            max(block_col * block - reach, 0), min((block_col + 1) * block + reach, w))


def travel_coverage(surface: FrictionSurface, src_lon: np.ndarray, src_lat: np.ndarray,
                    dst_lon: np.ndarray, dst_lat: np.ndarray, *, max_minutes: float,
                    block_px: int | None = None,
                    point_limits: np.ndarray | None = None) -> Coverage:
    """Return which sources reach which points within ``max_minutes`` over the friction.

    Parameters
    ----------
    surface
        The friction surface (minutes per metre).
    src_lon, src_lat
        Sources (candidate sites or existing facilities), degrees EPSG:4326.
    dst_lon, dst_lat
        Demand points (cell centres), degrees EPSG:4326.
    max_minutes
        Coverage limit in minutes (> 0).
    block_px
        Side of the source blocks in pixels (>= 1); default: the search reach (a trade-off
        between graph building per block and search size per source).
    point_limits
        Optional per-point limits (minutes): a pair is wanted only when its time is below
        the point's limit (e.g. the point's travel time to an existing facility). Each
        block of sources then searches only as far as the largest limit of the points in
        its window, which makes searches short where facilities are already near. Pairs
        are still returned up to the block's limit, so callers filter ``t < limit``.

    Returns
    -------
    Coverage
        ``(n_sources, n_points)`` boolean matrix and travel minutes (least-cost).

    Examples
    --------
    >>> surface = FrictionSurface.from_file("run/friction.tif")          # doctest: +SKIP
    >>> cov = travel_coverage(surface, lon, lat, cells.lon, cells.lat,
    ...                       max_minutes=60)                            # doctest: +SKIP
    >>> cov.matrix @ weights        # demand within an hour of each site   # doctest: +SKIP
    """
    if not max_minutes > 0:
        raise InputError(f"max_minutes must be > 0, got {max_minutes}")
    if block_px is not None and not block_px >= 1:
        raise InputError(f"block_px must be >= 1, got {block_px}")
    n_src, n_dst = len(src_lon), len(dst_lon)
    w = surface.shape[1]
    dy, dx = surface.step_lengths()
    reach = surface.reach_pixels(max_minutes)
    block = reach if block_px is None else int(block_px)
    src_pix = surface.pixels_of(src_lon, src_lat)
    dst_pix = surface.pixels_of(dst_lon, dst_lat)
    # one search per distinct source pixel; targets sorted by row for window look-ups
    usrc, inverse = np.unique(src_pix, return_inverse=True)
    u_ids = np.flatnonzero(usrc >= 0)
    u_pix = usrc[u_ids]
    d_ok = np.flatnonzero(dst_pix >= 0)
    d_ok = d_ok[np.argsort(dst_pix[d_ok])]
    d_row, d_col = np.divmod(dst_pix[d_ok], w)

    def targets(win: tuple[int, int, int, int]) -> np.ndarray:
        """Positions (in ``d_ok``) of the points inside a window."""
        r0, r1, c0, c1 = win
        lo, hi = np.searchsorted(d_row, [r0, r1])
        return lo + np.flatnonzero((d_col[lo:hi] >= c0) & (d_col[lo:hi] < c1))

    # sources grouped by the block (block row, block col) of their pixel
    blocks, block_of = np.unique(np.column_stack(np.divmod(u_pix, w)) // block, axis=0,
                                 return_inverse=True)
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    mins_out: list[np.ndarray] = []
    for k, (br, bc) in enumerate(blocks.tolist()):
        win = _window(br, bc, block, reach, surface.shape)
        sel = targets(win)
        if len(sel) == 0:
            continue
        limit = max_minutes
        if point_limits is not None:
            limit = min(max_minutes, float(np.max(point_limits[d_ok[sel]])))
            if not limit > 0:
                continue
            # a shorter search: a smaller window
            win = _window(br, bc, block, surface.reach_pixels(limit), surface.shape)
            sel = targets(win)
        r0, r1, c0, c1 = win
        t_loc = (d_row[sel] - r0) * (c1 - c0) + (d_col[sel] - c0)
        graph = _pixel_graph(surface.friction[r0:r1, c0:c1], dy, dx)
        members = np.flatnonzero(block_of.ravel() == k)
        s_row, s_col = np.divmod(u_pix[members], w)
        s_loc = (s_row - r0) * (c1 - c0) + (s_col - c0)
        chunk = max(1, _MAX_DIST_ENTRIES // graph.shape[0])
        for i in range(0, len(members), chunk):
            # the graph is symmetric: directed (scipy's default) or not gives the same times
            dist = dijkstra(graph, indices=s_loc[i:i + chunk], limit=limit)
            sub = dist[:, t_loc]
            ii, jj = np.nonzero(sub <= limit)
            rows_out.append(u_ids[members[i:i + chunk]][ii])
            cols_out.append(d_ok[sel][jj])
            mins_out.append(sub[ii, jj])
    logger.info("least-cost coverage: %d sources (%d distinct pixels) x %d points, "
                "%d blocks of %d px, reach %d px", n_src, len(u_pix), n_dst, len(blocks),
                block, reach)
    none = np.zeros(0, dtype=np.int64)
    u_cov = Coverage.from_triplets(
        np.concatenate(rows_out) if rows_out else none,
        np.concatenate(cols_out) if cols_out else none,
        np.concatenate(mins_out) if mins_out else np.zeros(0),
        (len(usrc), n_dst), max_minutes=max_minutes, method="least-cost")
    return _expand_rows(u_cov, inverse.ravel())


def _expand_rows(cov: Coverage, rows: np.ndarray) -> Coverage:
    """Return a coverage whose row ``i`` is row ``rows[i]`` of ``cov``."""
    matrix = cov.matrix[rows]
    minutes = cov.minutes[rows]
    if matrix.nnz != minutes.nnz:  # pragma: no cover - explicit zeros must survive indexing
        raise AssertionError("coverage structure lost in row indexing")
    return Coverage(matrix=matrix.tocsr(), minutes=minutes.tocsr(),
                    max_minutes=cov.max_minutes, method=cov.method)


def _unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lo, la = np.radians(np.asarray(lon)), np.radians(np.asarray(lat))
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _search_chord(max_minutes: float, speed_kmh: float) -> float:
    """Return the chord (unit sphere) of the distance covered in ``max_minutes``.

    The great-circle distance ``speed * time`` (at most half the circumference) as the
    straight-line distance between unit vectors, ``2 sin(angle / 2)``, a hair longer so that
    no pair exactly at the limit is lost to rounding.
    """
    radius_m = speed_kmh * 1000.0 * max_minutes / 60.0
    angle = min(radius_m / EARTH_RADIUS_M, math.pi)
    return 2.0 * math.sin(angle / 2.0) * (1 + 1e-12)


def straight_line_coverage(src_lon: np.ndarray, src_lat: np.ndarray, dst_lon: np.ndarray,
                           dst_lat: np.ndarray, *, max_minutes: float,
                           speed_kmh: float = STRAIGHT_LINE_SPEED_KMH) -> Coverage:
    """Return coverage by great-circle distance at a constant speed (no friction surface).

    Parameters
    ----------
    src_lon, src_lat, dst_lon, dst_lat
        Sources and demand points, degrees EPSG:4326.
    max_minutes
        Coverage limit in minutes (> 0).
    speed_kmh
        Travel speed along the straight line (default ``STRAIGHT_LINE_SPEED_KMH``).

    Returns
    -------
    Coverage
        Travel minutes = haversine distance / speed, for pairs within the limit.
    """
    if not max_minutes > 0:
        raise InputError(f"max_minutes must be > 0, got {max_minutes}")
    if not speed_kmh > 0:
        raise InputError(f"speed_kmh must be > 0, got {speed_kmh}")
    n_src, n_dst = len(src_lon), len(dst_lon)
    a = cKDTree(_unit_vectors(src_lon, src_lat))
    b = cKDTree(_unit_vectors(dst_lon, dst_lat))
    pairs = a.sparse_distance_matrix(b, _search_chord(max_minutes, speed_kmh),
                                     output_type="ndarray")
    # chords of antipodal points can round past 2 (the unit sphere's diameter)
    dist_m = 2.0 * EARTH_RADIUS_M * np.arcsin(np.minimum(pairs["v"] / 2.0, 1.0))
    minutes = dist_m / (speed_kmh * 1000.0) * 60.0
    keep = minutes <= max_minutes
    logger.info("straight-line coverage at %.1f km/h: %d sources x %d points, %d pairs",
                speed_kmh, n_src, n_dst, int(keep.sum()))
    return Coverage.from_triplets(pairs["i"][keep], pairs["j"][keep], minutes[keep],
                                  (n_src, n_dst), max_minutes=max_minutes,
                                  method="straight-line")


__all__ = ["Coverage", "FrictionSurface", "travel_coverage", "straight_line_coverage",
           "STRAIGHT_LINE_SPEED_KMH", "SNAP_PIXELS"]
