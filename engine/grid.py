"""H3 fusion: households to per-cell aggregates, cell geometry and exact rollups.

Households are indexed with h3ronpy (vectorised, in parallel chunks) and aggregated with
``pandas.factorize`` + ``numpy.bincount``: one hash pass and one ``bincount`` per column,
no per-household Python and no ``groupby``. A register larger than memory is processed in
batches with :class:`CellAccumulator`: each batch becomes a small table of per-cell partial
sums (a few ten thousand rows) and the partial tables are summed at the end, so the whole
household table never needs to be in memory at once.

Cell ids are ``uint64`` inside the engine and hex strings (``"8868b6550dfffff"``) in every
file written. Rates and shares are always recomputed from summed counts, never averaged.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import h3ronpy
import h3ronpy.vector as h3v
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from pyproj import Transformer

from engine import boundaries
from engine.constants import (
    DEPRIVATIONS,
    DESIL_VALUES,
    EQUAL_AREA,
    EXTREME_DESIL,
    PRECISION_VILLAGE,
    WGS84,
)
from engine.errors import InputError

logger = logging.getLogger(__name__)

#: Integer count columns of a cell, in the order of docs/architecture.md.
DESIL_COLUMNS = tuple(f"households_desil_{d}" for d in DESIL_VALUES)
DEPRIVATION_COUNT_COLUMNS = tuple(count for _, count, _ in DEPRIVATIONS.values())
DEPRIVATION_SHARE_COLUMNS = tuple(share for _, _, share in DEPRIVATIONS.values())
COUNT_COLUMNS = (
    "households", "persons", *DESIL_COLUMNS, "extreme_households", "extreme_persons",
    "households_village_located", *DEPRIVATION_COUNT_COLUMNS, "assistance_gap",
)
#: Administrative columns (BPS codes of the polygon holding the cell centre).
ADMIN_COLUMNS = (
    "province_code", "province_name", "regency_code", "regency_name", "regency_kemendagri_code",
    "district_code", "district_name",
)
#: Suffixes of the internal accumulator columns of household-sampled values.
_SUM, _N = "__sum", "__n"
#: Below this many points indexing runs in one call (thread start-up is not worth it).
_PARALLEL_MIN_POINTS = 200_000


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
    >>> points_to_cells(np.array([0.05]), np.array([110.75]), 8)[0] == 0x8868B6550DFFFFF
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
        return np.asarray(h3v.coordinates_to_cells(lat, lon, resolution), dtype=np.uint64)
    bounds = np.linspace(0, n, 2 * threads + 1).astype(np.int64)
    out = np.empty(n, dtype=np.uint64)

    def _run(i: int) -> None:
        a, b = bounds[i], bounds[i + 1]
        out[a:b] = np.asarray(h3v.coordinates_to_cells(lat[a:b], lon[a:b], resolution))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(_run, range(len(bounds) - 1)))
    return out


def cells_to_strings(cells: np.ndarray) -> np.ndarray:
    """Return hex-string ids (object array) for ``uint64`` cells."""
    arr = pa.array(h3ronpy.cells_to_string(np.asarray(cells, dtype=np.uint64)))
    return arr.to_numpy(zero_copy_only=False)


def strings_to_cells(ids: pd.Series | np.ndarray) -> np.ndarray:
    """Return ``uint64`` cells for hex-string ids; raise ``InputError`` on an invalid id."""
    values = pa.array(np.asarray(ids, dtype=object), type=pa.string())
    try:
        return np.asarray(h3ronpy.cells_parse(values), dtype=np.uint64)
    except ValueError as exc:
        raise InputError(f"invalid H3 cell id: {exc}") from None


def cell_centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(lon, lat)`` arrays of the centres of ``uint64`` cells (WGS84 degrees)."""
    rb = h3v.cells_to_coordinates(np.asarray(cells, dtype=np.uint64))
    return np.asarray(rb["lng"], dtype=np.float64), np.asarray(rb["lat"], dtype=np.float64)


def cell_polygons(cells: np.ndarray) -> np.ndarray:
    """Return the hexagon (or pentagon) of each cell as shapely Polygons in EPSG:4326."""
    wkb = pa.array(h3v.cells_to_wkb_polygons(np.asarray(cells, dtype=np.uint64)))
    return shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))


def cell_areas_m2(cells: np.ndarray) -> np.ndarray:
    """Return the exact area of each cell in square metres (H3's authalic sphere)."""
    return np.asarray(h3ronpy.cells_area_m2(np.asarray(cells, dtype=np.uint64)), dtype=np.float64)


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
        ``ADMIN_COLUMNS`` as string columns, one row per point (``<NA>`` only when there
        are no district polygons at all).
    """
    attrs, polygons = _districts()
    n = len(lon)
    match = np.full(n, -1, dtype=np.int64)
    if n:
        points = shapely.points(np.asarray(lon, float), np.asarray(lat, float))
        # a tree over the points queried with each (prepared) polygon: ~5x faster than the
        # reverse for a few hundred detailed polygons and many points
        poly_idx, point_idx = shapely.STRtree(points).query(polygons, predicate="contains")
        order = np.lexsort((poly_idx, point_idx))
        point_idx, poly_idx = point_idx[order], poly_idx[order]
        first = np.r_[True, point_idx[1:] != point_idx[:-1]][: len(point_idx)]
        match[point_idx[first]] = poly_idx[first]
        if provinces is not None:
            allowed = attrs["province_code"].isin(provinces).to_numpy()
            match[(match >= 0) & ~allowed[np.maximum(match, 0)]] = -1
        missing = np.flatnonzero(match < 0)
        if missing.size:
            to_ea = Transformer.from_crs(WGS84, EQUAL_AREA, always_xy=True)
            x, y = to_ea.transform(np.asarray(lon)[missing], np.asarray(lat)[missing])
            tree, rows = _districts_projected_tree(provinces)
            src, near = tree.query_nearest(shapely.points(x, y), all_matches=False)
            match[missing[src]] = rows[near]
            logger.debug("%d of %d points outside every district: nearest district used",
                         missing.size, n)
    out = attrs.iloc[np.where(match >= 0, match, 0)].reset_index(drop=True)
    out.loc[match < 0, :] = pd.NA
    return out


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


def _bool_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    col = frame[name]
    if col.dtype == bool:
        return col.to_numpy()
    return col.to_numpy(dtype=bool, na_value=False)


def households_to_cell_sums(households: pd.DataFrame, *, resolution: int,
                            values: Mapping[str, np.ndarray] | None = None,
                            cells: np.ndarray | None = None) -> pd.DataFrame:
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
        The cell of each household when already known (skips indexing).

    Returns
    -------
    pandas.DataFrame
        One row per cell holding households, indexed by ``uint64`` cell id (``cell``),
        with the ``COUNT_COLUMNS`` as int64 (plus the value accumulators).

    Examples
    --------
    >>> sums = households_to_cell_sums(frame, resolution=8)  # doctest: +SKIP
    >>> int(sums["households"].sum()) == len(frame)  # doctest: +SKIP
    True
    """
    if cells is None:
        cells = points_to_cells(households["lat"].to_numpy(), households["lon"].to_numpy(),
                                resolution)
    codes, uniq = pd.factorize(cells, sort=False)
    n = len(uniq)
    desil = households["desil"].to_numpy(dtype=np.int64)
    if desil.size and (desil.min() < DESIL_VALUES[0] or desil.max() > DESIL_VALUES[-1]):
        raise InputError(f"desil values must be in {DESIL_VALUES}")
    members = households["members"].to_numpy(dtype=np.float64)
    extreme = desil == EXTREME_DESIL
    out: dict[str, np.ndarray] = {}
    out["households"] = np.bincount(codes, minlength=n)
    out["persons"] = np.bincount(codes, weights=members, minlength=n)
    nd = len(DESIL_VALUES)
    by_desil = np.bincount(codes * nd + (desil - DESIL_VALUES[0]), minlength=n * nd)
    by_desil = by_desil.reshape(n, nd)
    for k, col in enumerate(DESIL_COLUMNS):
        out[col] = by_desil[:, k]
    out["extreme_households"] = by_desil[:, DESIL_VALUES.index(EXTREME_DESIL)]
    out["extreme_persons"] = np.bincount(codes, weights=np.where(extreme, members, 0.0),
                                         minlength=n)
    village = households["location_precision"].eq(PRECISION_VILLAGE).to_numpy(dtype=bool,
                                                                          na_value=False)
    out["households_village_located"] = np.bincount(codes[village], minlength=n)
    for field, (deprived_value, count_col, _) in DEPRIVATIONS.items():
        flag = _bool_column(households, field)
        deprived = flag if deprived_value else ~flag
        out[count_col] = np.bincount(codes[deprived], minlength=n)
    gap = extreme & ~_bool_column(households, "receives_assistance")
    out["assistance_gap"] = np.bincount(codes[gap], minlength=n)
    frame = pd.DataFrame({c: np.rint(out[c]).astype(np.int64) for c in COUNT_COLUMNS},
                         index=pd.Index(uniq.astype(np.uint64), name="cell"))
    for name, vals in (values or {}).items():
        vals = np.asarray(vals, dtype=np.float64)
        ok = np.isfinite(vals)
        frame[name + _SUM] = np.bincount(codes[ok], weights=vals[ok], minlength=n)
        frame[name + _N] = np.bincount(codes[ok], minlength=n).astype(np.int64)
    return frame


class CellAccumulator:
    """Sum per-cell partial aggregates over household batches.

    Examples
    --------
    >>> acc = CellAccumulator(resolution=8)  # doctest: +SKIP
    >>> for batch in batches:  # doctest: +SKIP
    ...     acc.add(batch)
    >>> sums = acc.result()  # doctest: +SKIP
    """

    def __init__(self, *, resolution: int) -> None:
        self.resolution = resolution
        self._parts: list[pd.DataFrame] = []
        self.households = 0

    def add(self, households: pd.DataFrame, *,
            values: Mapping[str, np.ndarray] | None = None) -> None:
        """Aggregate one batch of accepted households and keep its per-cell sums."""
        if len(households) == 0:
            return
        part = households_to_cell_sums(households, resolution=self.resolution, values=values)
        self._parts.append(part)
        self.households += len(households)
        if len(self._parts) >= 8:  # keep the number of partial tables small
            self._parts = [self._combine()]

    def _combine(self) -> pd.DataFrame:
        if len(self._parts) == 1:
            return self._parts[0]
        both = pd.concat(self._parts)
        return both.groupby(level=0, sort=False).sum()

    def result(self) -> pd.DataFrame:
        """Return the per-cell sums of every batch added (empty frame when none)."""
        if not self._parts:
            return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in COUNT_COLUMNS},
                                index=pd.Index(np.empty(0, np.uint64), name="cell"))
        combined = self._combine()
        self._parts = [combined]
        return combined


def _add_rates(frame: pd.DataFrame) -> None:
    persons = frame["persons"].to_numpy(dtype=np.float64)
    hh = frame["households"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["extreme_rate"] = np.where(persons > 0, frame["extreme_persons"] / persons, np.nan)
        for count_col, share_col in zip(DEPRIVATION_COUNT_COLUMNS, DEPRIVATION_SHARE_COLUMNS,
                                        strict=True):
            frame[share_col] = np.where(hh > 0, frame[count_col] / hh, np.nan)


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
    cells = sums.index.to_numpy(dtype=np.uint64)
    lon, lat = cell_centres(cells)
    frame = pd.DataFrame({"h3": pd.array(cells_to_strings(cells), dtype="string"),
                          "resolution": np.full(len(cells), resolution, dtype=np.int8),
                          "lon": lon, "lat": lat})
    for col in COUNT_COLUMNS:
        frame[col] = sums[col].to_numpy(dtype=np.int64)
    _add_rates(frame)
    for col in sums.columns:
        if col.endswith(_SUM):
            name = col[: -len(_SUM)]
            n = sums[name + _N].to_numpy(dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                frame[name] = np.where(n > 0, sums[col].to_numpy() / n, np.nan)
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
    ids = strings_to_cells(cells["h3"])
    current = int(cells["resolution"].iloc[0]) if len(cells) else resolution
    if resolution > current:
        raise InputError(f"cannot roll up resolution {current} cells to finer {resolution}")
    parents = np.asarray(h3ronpy.change_resolution(ids, resolution), dtype=np.uint64)
    codes, uniq = pd.factorize(parents, sort=False)
    n = len(uniq)
    out = pd.DataFrame(index=pd.Index(uniq.astype(np.uint64), name="cell"))
    for col in COUNT_COLUMNS:
        summed = np.bincount(codes, weights=cells[col].to_numpy(dtype=np.float64), minlength=n)
        out[col] = np.rint(summed).astype(np.int64)
    weight = cells["households"].to_numpy(dtype=np.float64)
    extra: dict[str, np.ndarray] = {}
    for col in mean_columns(cells):
        x = cells[col].to_numpy(dtype=np.float64)
        ok = np.isfinite(x)
        num = np.bincount(codes[ok], weights=x[ok] * weight[ok], minlength=n)
        den = np.bincount(codes[ok], weights=weight[ok], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            extra[col] = np.where(den > 0, num / den, np.nan)
    if "population" in cells.columns:
        x = cells["population"].to_numpy(dtype=np.float64)
        ok = np.isfinite(x)
        total = np.bincount(codes[ok], weights=x[ok], minlength=n)
        has = np.bincount(codes[ok], minlength=n) > 0
        extra["population"] = np.where(has, total, np.nan)
    order = np.argsort(uniq)
    out = out.iloc[order]
    gdf = cells_frame(out, resolution=resolution, admin=admin, provinces=provinces)
    for col, vals in extra.items():
        gdf[col] = vals[order]
    return order_columns(gdf)


__all__ = [
    "COUNT_COLUMNS", "ADMIN_COLUMNS", "CellAccumulator", "admin_of_points", "attach_admin",
    "cell_areas_m2", "cell_centres",
    "cell_polygons", "cells_frame", "cells_to_strings", "households_to_cell_sums",
    "mean_columns", "order_columns", "points_to_cells", "rollup_cells", "strings_to_cells",
]
