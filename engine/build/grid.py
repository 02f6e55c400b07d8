"""H3 fusion: households to per-cell aggregates, cell geometry and exact rollups.

Households are indexed with h3ronpy (vectorised, in parallel chunks) and aggregated with
``pandas.factorize`` + ``numpy.bincount``: one hash pass and one ``bincount`` per column,
no per-household Python and no ``groupby``. A register larger than memory is processed in
batches with :class:`CellAccumulator`: each batch becomes a small table of per-cell partial
sums (a few ten thousand rows) and the partial tables are summed at the end, so the whole
household table never needs to be in memory at once.

Cell ids are ``uint64`` inside the engine and hex strings (``"8868b6550dfffff"``) in every
file written. Rates and shares are always recomputed from summed counts, never averaged.

Households located by village code only are summed per village and spread over cells as
expected shares (:mod:`kantong.engine.build.sums`): their cell counts are fractional.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import h3ronpy
import h3ronpy.vector as h3v
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from pyproj import Transformer

from kantong.engine.build.sums import (
    _N,
    _SUM,
    COUNT_COLUMNS,
    DEPRIVATION_COUNT_COLUMNS,
    DEPRIVATION_SHARE_COLUMNS,
    DESIL_COLUMNS,
    PartialSums,
    allocate_village_sums,
    empty_sums,
    has_fractional_counts,
    sum_households,
    village_located_rows,
)
from kantong.engine.constants import DEPRIVATIONS, EQUAL_AREA, WGS84
from kantong.engine.errors import InputError
from kantong.engine.h3ids import cells_to_uint64, parent_cells, uint64_to_cells
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

#: Administrative columns (BPS codes of the polygon holding the cell centre).
ADMIN_COLUMNS = (
    "province_code", "province_name", "regency_code", "regency_name", "regency_kemendagri_code",
    "district_code", "district_name",
)
#: Below this many points indexing runs in one call (thread start-up is not worth it).
_PARALLEL_MIN_POINTS = 200_000
#: District row of a point in no (allowed) district polygon yet.
_NO_DISTRICT = -1


def points_to_cells(lat: np.ndarray, lon: np.ndarray, resolution: int, *,
                    threads: int | None = None) -> np.ndarray:
    """Return the H3 cell (``uint64``) of each point, computed in parallel chunks.

    Parameters
    ----------
    lat, lon
        WGS84 degrees, finite.
    resolution
        H3 resolution 0-15.
    threads
        Worker threads (default: the number of CPUs). h3ronpy releases the GIL for the
        indexing itself, so chunks run concurrently.

    Returns
    -------
    numpy.ndarray
        ``uint64`` cell ids, one per point.

    Examples
    --------
    >>> bool(points_to_cells(np.array([0.05]), np.array([110.75]), 8)[0] == 0x8868B6550DFFFFF)
    True
    """
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    if lat.shape != lon.shape:
        raise InputError("lat and lon must have the same length")
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise InputError("cannot index points with missing or infinite coordinates")
    n = lat.size
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    threads = threads or os.cpu_count() or 1
    if threads <= 1 or n < _PARALLEL_MIN_POINTS:
        return np.asarray(h3v.coordinates_to_cells(lat, lon, resolution))
    bounds = np.linspace(0, n, 2 * threads + 1).astype(np.int64)
    out = np.empty(n, dtype=np.uint64)

    def _run(i: int) -> None:
        a, b = bounds[i], bounds[i + 1]
        out[a:b] = np.asarray(h3v.coordinates_to_cells(lat[a:b], lon[a:b], resolution))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(_run, range(len(bounds) - 1)))
    return out


def cell_centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(lon, lat)`` arrays of the centres of ``uint64`` cells (WGS84 degrees)."""
    rb = h3v.cells_to_coordinates(cells)
    return np.asarray(rb["lng"]), np.asarray(rb["lat"])


def cell_polygons(cells: np.ndarray) -> np.ndarray:
    """Return the hexagon (or pentagon) of each cell as shapely Polygons in EPSG:4326."""
    return shapely.from_wkb(np.asarray(pa.array(h3v.cells_to_wkb_polygons(cells))))


def cell_areas_m2(cells: np.ndarray) -> np.ndarray:
    """Return the exact area of each cell in square metres (H3's authalic sphere)."""
    return np.asarray(h3ronpy.cells_area_m2(cells))


@functools.cache
def _districts() -> tuple[pd.DataFrame, np.ndarray]:
    d = boundaries.districts()
    attrs = pd.DataFrame({c: d[c].astype("string").to_numpy() for c in ADMIN_COLUMNS})
    return attrs, d.geometry.to_numpy()


@functools.cache
def _districts_projected_tree(provinces: tuple[str, ...] | None = None,
                              ) -> tuple[shapely.STRtree, np.ndarray]:
    """Tree over the districts (of ``provinces`` only, if given) and their row numbers."""
    d = boundaries.districts()
    rows = np.arange(len(d)) if provinces is None else np.flatnonzero(
        d["province_code"].astype(str).isin(provinces).to_numpy())
    return shapely.STRtree(d.geometry.iloc[rows].to_crs(EQUAL_AREA).to_numpy()), rows


def admin_of_points(lon: np.ndarray, lat: np.ndarray, *,
                    provinces: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Return the province/regency/district codes and names of each point.

    The district (kecamatan, BPS 2020) polygon that contains the point gives its codes,
    names and the Kemendagri regency code. Points in no polygon (coastal slivers, cell
    centres in the sea) take the nearest district, measured in EPSG:6933.

    Parameters
    ----------
    lon, lat
        WGS84 degrees.
    provinces
        Restrict attribution to the districts of these province codes (the study area of a
        ``--province`` build): a point whose holding district lies in another province (a
        border cell whose centre falls across the line, although its households are inside)
        takes the nearest district of these provinces instead.

    Returns
    -------
    pandas.DataFrame
        ``ADMIN_COLUMNS`` as string columns, one row per point (missing only when
        ``provinces`` hold no district).
    """
    attrs, polygons = _districts()
    n = len(lon)
    match = np.full(n, _NO_DISTRICT)
    if n:
        points = shapely.points(lon, lat)
        # a tree over the points queried with each (prepared) polygon: ~5x faster than the
        # reverse for a few hundred detailed polygons and many points
        poly_idx, point_idx = shapely.STRtree(points).query(polygons, predicate="contains")
        # a point in several polygons (overlapping slivers) takes the first of them
        order = np.lexsort((poly_idx, point_idx))
        hit, first = np.unique(point_idx[order], return_index=True)
        match[hit] = poly_idx[order][first]
        if provinces is not None:
            allowed = attrs["province_code"].isin(provinces).to_numpy()
            match[(match != _NO_DISTRICT) & ~allowed[match]] = _NO_DISTRICT
        missing = np.flatnonzero(match == _NO_DISTRICT)
        if missing.size:
            to_ea = Transformer.from_crs(WGS84, EQUAL_AREA, always_xy=True)
            x, y = to_ea.transform(np.asarray(lon)[missing], np.asarray(lat)[missing])
            tree, rows = _districts_projected_tree(provinces)
            far = shapely.points(x, y)
            # equivalent mutants: all_matches changes only ties, where either district is right
            src, near = tree.query_nearest(far, all_matches=False)  # pragma: no mutate
            match[missing[src]] = rows[near]
            logger.debug("%d of %d points outside every district: nearest district used",
                         missing.size, n)
    return attrs.reindex(match).reset_index(drop=True)  # no district: a row of <NA>


def attach_admin(frame: pd.DataFrame, *,
                 provinces: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Return ``frame`` with the ``ADMIN_COLUMNS`` of its ``lon``/``lat`` cell centres.

    ``provinces`` restricts attribution to those provinces (see :func:`admin_of_points`).
    """
    codes = admin_of_points(frame["lon"].to_numpy(), frame["lat"].to_numpy(),
                            provinces=provinces)
    frame = frame.copy()
    for col in ADMIN_COLUMNS:
        frame[col] = codes[col].to_numpy()
        frame[col] = frame[col].astype("string")
    return frame


def households_to_cell_sums(households: pd.DataFrame, *, resolution: int,
                            values: Mapping[str, np.ndarray] | None = None,
                            cells: np.ndarray | None = None,
                            population_raster: str | Path | None = None,
                            sampler: Callable[[pd.DataFrame], Mapping[str, np.ndarray]]
                            | None = None) -> pd.DataFrame:
    """Aggregate accepted households into per-cell count columns.

    Parameters
    ----------
    households
        Accepted households (``lon``, ``lat``, ``desil``, ``members``,
        ``location_precision`` and the ``DEPRIVATIONS`` boolean fields).
    resolution
        H3 resolution of the cells.
    values
        Optional per-household float values (e.g. travel minutes) to average per cell:
        for each name the result holds ``<name>__sum`` and ``<name>__n`` (households with a
        finite value), combined later into a household mean.
    cells
        The cell of each household when already known (skips indexing; ignored for
        village-located households).
    population_raster
        Raster of the village weights (default: the bundled GHS-POP grid).
    sampler
        Values of village-located households, sampled per allocated piece (see
        :meth:`PartialSums.combine`).

    Returns
    -------
    pandas.DataFrame
        One row per cell holding households, indexed by ``uint64`` cell id (``cell``),
        with the ``COUNT_COLUMNS`` (int64; float64 expected counts when some households
        are located by village code only) plus the value accumulators.

    Examples
    --------
    >>> sums = households_to_cell_sums(frame, resolution=8)  # doctest: +SKIP
    >>> int(sums["households"].sum()) == len(frame)  # doctest: +SKIP
    True
    """
    parts = households_to_partial_sums(households, resolution=resolution, values=values,
                                       cells=cells)
    return parts.combine(population_raster=population_raster, sampler=sampler)


def households_to_partial_sums(households: pd.DataFrame, *, resolution: int,
                               values: Mapping[str, np.ndarray] | None = None,
                               cells: np.ndarray | None = None) -> PartialSums:
    """Index the households located by coordinates and sum them per cell, the others per village.

    Parameters
    ----------
    households, resolution, values, cells
        As in :func:`households_to_cell_sums`.

    Returns
    -------
    PartialSums
        See :func:`kantong.engine.build.sums.sum_households`.
    """
    if cells is None:
        point = ~village_located_rows(households)
        cells = np.zeros(len(households), dtype=np.uint64)
        if point.any():
            cells[point] = points_to_cells(households["lat"].to_numpy()[point],
                                           households["lon"].to_numpy()[point], resolution)
    return sum_households(households, cells=cells, resolution=resolution, values=values)


class CellAccumulator:
    """Sum per-cell (and per-village) partial aggregates over household batches.

    Households located by coordinates are summed per cell, village-located households per
    village (exact integers); :meth:`result` allocates the village totals to cells once.

    Parameters
    ----------
    resolution
        H3 resolution of the cells.
    population_raster
        Raster of the village weights (default: the bundled GHS-POP grid).
    sampler
        Per-household values (travel minutes) sampled per allocated piece for the
        village-located households (see :meth:`PartialSums.combine`).

    Examples
    --------
    >>> acc = CellAccumulator(resolution=8)  # doctest: +SKIP
    >>> for batch in batches:  # doctest: +SKIP
    ...     acc.add(batch)
    >>> sums = acc.result()  # doctest: +SKIP
    """

    def __init__(self, *, resolution: int, population_raster: str | Path | None = None,
                 sampler: Callable[[pd.DataFrame], Mapping[str, np.ndarray]] | None = None
                 ) -> None:
        self.resolution = resolution
        self.population_raster = population_raster
        self.sampler = sampler
        self._parts: list[PartialSums] = []
        self.households = 0

    def add(self, households: pd.DataFrame, *,
            values: Mapping[str, np.ndarray] | None = None) -> None:
        """Aggregate one batch of accepted households and keep its partial sums."""
        if len(households) == 0:
            return
        self.add_partial(households_to_partial_sums(households, resolution=self.resolution,
                                                    values=values), len(households))

    def add_partial(self, part: PartialSums, households: int) -> None:
        """Keep partial sums computed elsewhere (a Dask task) holding ``households``."""
        self._parts.append(part)
        self.households += households
        # keep the number of partial tables small; equivalent mutants: counts are exact
        # integers and value sums agree to rounding at any threshold (only memory differs)
        if len(self._parts) >= 8:  # pragma: no mutate
            self._parts = [self.partial()]

    def partial(self) -> PartialSums:
        """Return the exact (integer) point and village sums of every batch so far."""
        if not self._parts:
            return PartialSums(cells=empty_sums(), villages=empty_sums("village_code"),
                               resolution=self.resolution)
        total = self._parts[0]
        for part in self._parts[1:]:
            total = total + part
        self._parts = [total]
        return total

    def result(self) -> pd.DataFrame:
        """Return the per-cell sums of every batch added (empty frame when none).

        Village totals are allocated here, once: the result depends neither on the order of
        the households nor on the batches.
        """
        return self.partial().combine(population_raster=self.population_raster,
                                      sampler=self.sampler)


def _add_rates(frame: pd.DataFrame) -> None:
    """Recompute the rate and shares from the counts (pandas: 0 / 0 is NaN, silently)."""
    frame["extreme_rate"] = frame["extreme_persons"] / frame["persons"]
    for _, count_col, share_col in DEPRIVATIONS.values():
        frame[share_col] = frame[count_col] / frame["households"]


def cells_frame(sums: pd.DataFrame, *, resolution: int, admin: bool = True,
                provinces: tuple[str, ...] | None = None) -> gpd.GeoDataFrame:
    """Turn per-cell sums into the cell table of docs/architecture.md (without raster columns).

    Parameters
    ----------
    sums
        Output of :func:`households_to_cell_sums` or :meth:`CellAccumulator.result`
        (index: ``uint64`` cells). ``<name>__sum``/``<name>__n`` accumulators become
        ``<name>`` household means.
    resolution
        H3 resolution of the cells.
    admin
        Attach province/regency/district codes and names of the polygon holding each centre.
    provinces
        Restrict that attribution to these provinces (the study area of a province build).

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, hexagon geometry, sorted by cell id.
    """
    sums = sums.sort_index()
    cells = sums.index.to_numpy()
    lon, lat = cell_centres(cells)
    frame = pd.DataFrame({"h3": pd.array(uint64_to_cells(cells), dtype="string"),
                          "resolution": np.full(len(cells), resolution, dtype=np.int8),
                          "lon": lon, "lat": lat})
    fractional = has_fractional_counts(sums)
    for col in COUNT_COLUMNS:
        frame[col] = sums[col].to_numpy(dtype=np.float64 if fractional else np.int64)
    _add_rates(frame)
    for col in sums.columns:
        if col.endswith(_SUM):
            name = col[: -len(_SUM)]
            # NaN where no household had a value (0 / 0)
            frame[name] = (sums[col] / sums[name + _N]).to_numpy()
    gdf = gpd.GeoDataFrame(frame, geometry=cell_polygons(cells), crs=WGS84)
    if admin:
        gdf = attach_admin(gdf, provinces=provinces)
    return order_columns(gdf)


def mean_columns(frame: pd.DataFrame) -> list[str]:
    """Return the household-weighted mean columns (``travel_min_*`` and ``*_mean``)."""
    return [c for c in frame.columns if c.startswith("travel_min_") or c.endswith("_mean")]


def order_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with its columns in the order of docs/architecture.md."""
    head = ["h3", "resolution", "geometry", "lon", "lat", "households", "persons",
            *DESIL_COLUMNS, "extreme_households", "extreme_persons", "extreme_rate",
            "households_village_located", *DEPRIVATION_COUNT_COLUMNS, *DEPRIVATION_SHARE_COLUMNS,
            "assistance_gap", "population"]
    travel = sorted(c for c in frame.columns if c.startswith("travel_min_"))
    means = sorted(c for c in frame.columns if c.endswith("_mean"))
    known = [c for c in (*head, *travel, *means, *ADMIN_COLUMNS) if c in frame.columns]
    rest = [c for c in frame.columns if c not in known]
    return frame[known + rest]


def rollup_cells(cells: pd.DataFrame, *, resolution: int, admin: bool = True,
                 provinces: tuple[str, ...] | None = None) -> gpd.GeoDataFrame:
    """Aggregate a cell table to a coarser resolution, exactly.

    Count columns are summed; rates and shares are recomputed from the summed counts;
    ``travel_min_*`` and ``*_mean`` columns become household-weighted means of the children
    that have a value (NaN when none has); ``population`` is summed over the children that
    have a value (NaN when none has). Geometry, centre and admin codes are those of the
    parent cell.

    Parameters
    ----------
    cells
        A cell table (``h3`` hex ids, the count columns, optional mean and population columns).
    resolution
        Target resolution, coarser than (or equal to) the cells'.
    admin, provinces
        As in :func:`cells_frame`, for the parent cells.

    Returns
    -------
    geopandas.GeoDataFrame
        The parent-cell table, same columns as ``cells``.
    """
    ids = cells_to_uint64(cells["h3"])
    current = int(cells["resolution"].iloc[0]) if len(cells) else resolution
    if resolution > current:
        raise InputError(f"cannot roll up resolution {current} cells to finer {resolution}")
    parents = parent_cells(ids, resolution)
    codes, uniq = pd.factorize(parents, sort=True)  # parents in cell-id order, as cells_frame
    n = len(uniq)
    out = pd.DataFrame(index=uniq)
    fractional = has_fractional_counts(cells)
    for col in COUNT_COLUMNS:
        summed = np.bincount(codes, weights=cells[col].to_numpy())  # every code 0..n-1 occurs
        out[col] = summed if fractional else np.rint(summed).astype(np.int64)
    weight = cells["households"].to_numpy()
    extra: dict[str, np.ndarray] = {}
    for col in mean_columns(cells):
        x = cells[col].to_numpy()
        ok = np.isfinite(x)
        num = np.bincount(codes[ok], weights=x[ok] * weight[ok], minlength=n)
        den = np.bincount(codes[ok], weights=weight[ok], minlength=n)
        with np.errstate(invalid="ignore"):  # NaN where no child has a value (0 / 0)
            extra[col] = num / den
    if "population" in cells.columns:
        x = cells["population"].to_numpy()
        ok = np.isfinite(x)
        total = np.bincount(codes[ok], weights=x[ok], minlength=n)
        has = np.bincount(codes[ok], minlength=n) > 0
        extra["population"] = np.where(has, total, np.nan)
    gdf = cells_frame(out, resolution=resolution, admin=admin, provinces=provinces)
    for col, vals in extra.items():
        gdf[col] = vals
    return order_columns(gdf)


__all__ = [
    "COUNT_COLUMNS", "ADMIN_COLUMNS", "CellAccumulator", "PartialSums", "admin_of_points",
    "allocate_village_sums", "attach_admin", "has_fractional_counts",
    "households_to_partial_sums",
    "cell_areas_m2", "cell_centres",
    "cell_polygons", "cells_frame", "households_to_cell_sums",
    "mean_columns", "order_columns", "points_to_cells", "rollup_cells",
]
