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
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        mins = np.asarray(minutes, dtype=np.float32)
        order = np.lexsort((mins, cols, rows))
        rows, cols, mins = rows[order], cols[order], mins[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        rows, cols, mins = rows[first], cols[first], mins[first]
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
        indices = cols.astype(np.int32 if shape[1] < 2**31 else np.int64)
        minutes_m = sparse.csr_matrix((mins, indices, indptr), shape=shape)
        matrix = sparse.csr_matrix((np.ones(len(rows), dtype=bool), indices, indptr),
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
        layer = open_raster(path, name="friction")
        f = layer.data.astype(np.float64)
        f[~(np.isfinite(f) & (f > 0))] = np.nan
        if not np.isfinite(f).any():
            raise InputError(f"{path}: friction raster has no passable pixel")
        return cls(friction=f, transform=layer.transform, crs=layer.crs, path=str(path))

    @property
    def shape(self) -> tuple[int, int]:
        """Return ``(rows, cols)``."""
        return self.friction.shape  # type: ignore[return-value]

    def step_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Return step lengths in metres (the build's pixel sizes, ``pixel_size_m``).

        Returns
        -------
        dy : numpy.ndarray
            ``rows - 1`` lengths between the centres of row ``r`` and ``r + 1``.
        dx : numpy.ndarray
            ``rows`` lengths between horizontally adjacent pixel centres of each row.
        """
        rows = self.shape[0]
        pixel = pixel_size_m(self.transform, self.crs, self.shape)
        return np.full(max(rows - 1, 0), pixel.dy), np.full(rows, pixel.dx)

    def reach_pixels(self, max_minutes: float) -> int:
        """Return how many pixels a path of at most ``max_minutes`` can span (upper bound).

        Every step costs at least ``min(friction) * step length``, so a path within the limit
        is at most ``max_minutes / min(friction)`` metres long.
        """
        dy, dx = self.step_lengths()
        step = float(min(dy.min(), dx.min())) if len(dy) else float(dx.min())
        fmin = float(np.nanmin(self.friction))
        return int(math.ceil(max_minutes / (fmin * step))) + 1

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
        blocks = np.full_like(total, np.nan)
        np.divide(total, n, out=blocks, where=n > 0)
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
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
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


def _pixel_graph(friction: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> sparse.csr_matrix:
    """Return the 8-connected travel-cost graph (minutes) of a friction window.

    ``dy`` holds ``rows - 1`` vertical step lengths and ``dx`` ``rows`` horizontal ones (m).
    A step costs the mean friction of its two pixels times its length; impassable (NaN)
    pixels have no edges.
    """
    h, w = friction.shape
    n = h * w
    ok = np.isfinite(friction)
    ids = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64).reshape(h, w)
    nbr = np.full((h, w, len(_OFFSETS)), -1, dtype=ids.dtype)
    wt = np.zeros((h, w, len(_OFFSETS)), dtype=np.float64)
    for k, (dr, dc) in enumerate(_OFFSETS):
        src = (slice(max(0, -dr), h - max(0, dr)), slice(max(0, -dc), w - max(0, dc)))
        dst = (slice(max(0, dr), h - max(0, -dr)), slice(max(0, dc), w - max(0, -dc)))
        rows = np.arange(h)[src[0]]
        if dr == 0:
            length = dx[rows][:, None]
        else:
            pair = rows if dr > 0 else rows - 1          # index of the upper row of the pair
            vert = dy[pair]
            if dc == 0:
                length = vert[:, None]
            else:
                horiz = 0.5 * (dx[rows] + dx[rows + dr])
                length = np.sqrt(vert**2 + horiz**2)[:, None]
        valid = ok[src] & ok[dst]
        nbr[src + (k,)] = np.where(valid, ids[dst], -1)
        wt[src + (k,)] = np.where(valid, 0.5 * (friction[src] + friction[dst]) * length, 0.0)
    nbr = nbr.reshape(n, len(_OFFSETS))
    wt = wt.reshape(n, len(_OFFSETS))
    mask = nbr >= 0
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1), out=indptr[1:])
    return sparse.csr_matrix((wt[mask], nbr[mask], indptr), shape=(n, n))


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
        Side of the source blocks in pixels; default: the search reach (a trade-off
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
    n_src, n_dst = len(src_lon), len(dst_lon)
    h, w = surface.shape
    dy, dx = surface.step_lengths()
    reach = surface.reach_pixels(max_minutes)
    block = max(int(block_px or reach), 1)
    src_pix = surface.pixels_of(src_lon, src_lat)
    dst_pix = surface.pixels_of(dst_lon, dst_lat)
    # one search per distinct source pixel; targets sorted by row for window look-ups
    usrc, inverse = np.unique(src_pix, return_inverse=True)
    keep_u = usrc >= 0
    u_pix = usrc[keep_u]
    u_ids = np.flatnonzero(keep_u)
    d_ok = np.flatnonzero(dst_pix >= 0)
    d_row = dst_pix[d_ok] // w
    order = np.argsort(d_row, kind="stable")
    d_ok, d_row = d_ok[order], d_row[order]
    d_col = dst_pix[d_ok] % w
    blocks = (u_pix // w // block) * (w // block + 1) + (u_pix % w) // block
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    mins_out: list[np.ndarray] = []
    n_blocks = 0
    for b in np.unique(blocks):
        members = np.flatnonzero(blocks == b)
        br, bc = divmod(int(b), w // block + 1)
        r0, r1 = max(br * block - reach, 0), min((br + 1) * block + reach, h)
        c0, c1 = max(bc * block - reach, 0), min((bc + 1) * block + reach, w)
        lo, hi = np.searchsorted(d_row, [r0, r1])
        in_win = (d_col[lo:hi] >= c0) & (d_col[lo:hi] < c1)
        t_idx = d_ok[lo:hi][in_win]
        if len(t_idx) == 0:
            continue
        limit = max_minutes
        if point_limits is not None:
            limit = min(max_minutes, float(np.max(point_limits[t_idx])))
            if not limit > 0:
                continue
            if limit < max_minutes:  # a shorter search: a smaller window
                rl = surface.reach_pixels(limit)
                r0, r1 = max(br * block - rl, 0), min((br + 1) * block + rl, h)
                c0, c1 = max(bc * block - rl, 0), min((bc + 1) * block + rl, w)
                lo, hi = np.searchsorted(d_row, [r0, r1])
                in_win = (d_col[lo:hi] >= c0) & (d_col[lo:hi] < c1)
                t_idx = d_ok[lo:hi][in_win]
        ww = c1 - c0
        t_loc = (d_row[lo:hi][in_win] - r0) * ww + (d_col[lo:hi][in_win] - c0)
        graph = _pixel_graph(surface.friction[r0:r1, c0:c1], dy[r0:max(r1 - 1, r0)],
                             dx[r0:r1])
        s_pix = u_pix[members]
        s_loc = (s_pix // w - r0) * ww + (s_pix % w - c0)
        chunk = max(1, _MAX_DIST_ENTRIES // graph.shape[0])
        for i in range(0, len(members), chunk):
            dist = dijkstra(graph, directed=True, indices=s_loc[i:i + chunk],
                            limit=limit)
            sub = dist[:, t_loc]
            ii, jj = np.nonzero(sub <= limit)
            rows_out.append(u_ids[members[i:i + chunk]][ii])
            cols_out.append(t_idx[jj])
            mins_out.append(sub[ii, jj])
        n_blocks += 1
    logger.info("least-cost coverage: %d sources (%d distinct pixels) x %d points, "
                "%d blocks of %d px, reach %d px", n_src, len(u_pix), n_dst, n_blocks, block,
                reach)
    u_cov = Coverage.from_triplets(
        np.concatenate(rows_out) if rows_out else np.zeros(0, np.int64),
        np.concatenate(cols_out) if cols_out else np.zeros(0, np.int64),
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
    lo, la = np.radians(np.asarray(lon, dtype=np.float64)), np.radians(
        np.asarray(lat, dtype=np.float64))
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
