"""Household counts summed per cell or per village, and village sums spread over cells.

Households located by coordinates are summed per H3 cell. Households located by their
village code only are summed per *village* (exact integers) and spread over the village's
cells once, at the end, as expected shares (:func:`allocate_village_sums`, dasymetric
weights from :func:`kantong.engine.build.placement.village_cell_weights`). Counts of a
register with village-located households are therefore fractional (float64 *expected*
households); registers located by coordinates only keep integer (int64) counts. Because
the village totals are integers and the allocation runs once in a fixed order, the result
depends neither on the order of the rows nor on how they were batched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import h3ronpy.vector as h3v
import numpy as np
import pandas as pd

from kantong.engine.build.placement import (
    known_village_codes,
    village_attributes,
    village_cell_weights,
    villages_of_points,
)
from kantong.engine.constants import DEPRIVATIONS, DESIL_VALUES, EXTREME_DESIL, PRECISION_VILLAGE
from kantong.engine.errors import InputError

logger = logging.getLogger(__name__)

#: Integer count columns of a cell, in the order of docs/architecture.md.
DESIL_COLUMNS = tuple(f"households_desil_{d}" for d in DESIL_VALUES)
DEPRIVATION_COUNT_COLUMNS = tuple(count for _, count, _ in DEPRIVATIONS.values())
DEPRIVATION_SHARE_COLUMNS = tuple(share for _, _, share in DEPRIVATIONS.values())
COUNT_COLUMNS = (
    "households", "persons", *DESIL_COLUMNS, "extreme_households", "extreme_persons",
    "households_village_located", *DEPRIVATION_COUNT_COLUMNS, "assistance_gap",
)
#: Suffixes of the internal accumulator columns of household-sampled values.
_SUM, _N = "__sum", "__n"

def _bool_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    col = frame[name]
    if col.dtype == bool:
        return col.to_numpy()
    return col.to_numpy(dtype=bool, na_value=False)


def _count_sums(households: pd.DataFrame, codes: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Sum the ``COUNT_COLUMNS`` of households per group code ``0..n-1``."""
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
    village = _village_flag(households)
    out["households_village_located"] = np.bincount(codes[village], minlength=n)
    for field, (deprived_value, count_col, _) in DEPRIVATIONS.items():
        flag = _bool_column(households, field)
        deprived = flag if deprived_value else ~flag
        out[count_col] = np.bincount(codes[deprived], minlength=n)
    gap = extreme & ~_bool_column(households, "receives_assistance")
    out["assistance_gap"] = np.bincount(codes[gap], minlength=n)
    return out


def _village_flag(households: pd.DataFrame) -> np.ndarray:
    return households["location_precision"].eq(PRECISION_VILLAGE).to_numpy(dtype=bool,
                                                                          na_value=False)


def village_located_rows(households: pd.DataFrame) -> np.ndarray:
    """Return the rows flagged village-located whose code names a known village.

    These rows are allocated by weights; a row flagged ``village`` without a usable code
    keeps its point (its ``lon``/``lat``).
    """
    flag = _village_flag(households)
    if not flag.any() or "village_code" not in households.columns:
        return np.zeros(len(households), dtype=bool)
    codes = households["village_code"].astype("string").fillna("").to_numpy(dtype=object)
    return flag & (known_village_codes().get_indexer(codes) >= 0)


@dataclass(frozen=True, eq=False)
class PartialSums:
    """Per-cell sums of point-located households and per-village sums of the others.

    Attributes
    ----------
    cells
        Indexed by ``uint64`` cell: ``COUNT_COLUMNS`` (int64) of the households located by
        coordinates, plus ``<name>__sum``/``<name>__n`` value accumulators.
    villages
        Indexed by BPS village code (string): ``COUNT_COLUMNS`` (int64) of the households
        located by village code only (not yet allocated to cells).
    resolution
        H3 resolution of ``cells`` and of the allocation.
    """

    cells: pd.DataFrame
    villages: pd.DataFrame
    resolution: int

    def __add__(self, other: PartialSums) -> PartialSums:
        """Return the sums of both (integer counts: exact, order-independent)."""
        return PartialSums(cells=_sum_frames([self.cells, other.cells]),
                           villages=_sum_frames([self.villages, other.villages]),
                           resolution=self.resolution)

    def combine(self, *, population_raster: str | Path | None = None,
                sampler: Callable[[pd.DataFrame], Mapping[str, np.ndarray]] | None = None
                ) -> pd.DataFrame:
        """Return the final per-cell sums: point sums plus the allocated village sums.

        Parameters
        ----------
        population_raster
            Raster of the dasymetric weights (default: the bundled GHS-POP grid).
        sampler
            Per-household values (e.g. :class:`kantong.engine.build.travel.HouseholdValues`)
            sampled at each (village, cell) piece for the village-located households.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``uint64`` cell, sorted; counts int64 when no household is
            village-located, else float64 expected counts.
        """
        if len(self.villages) == 0:
            return self.cells.sort_index()
        allocated = allocate_village_sums(self.villages, resolution=self.resolution,
                                          population_raster=population_raster,
                                          sampler=sampler)
        if len(self.cells) == 0:
            return allocated
        points = self.cells.astype({c: np.float64 for c in COUNT_COLUMNS})
        both = pd.concat([points, allocated]).fillna(0.0)  # absent accumulators add 0
        return both.groupby(level=0, sort=True).sum()


def _sum_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_sums()
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames).groupby(level=0, sort=True).sum()


def empty_sums(index_name: str = "cell") -> pd.DataFrame:
    """Return sums without rows, indexed by ``cell`` (uint64) or ``village_code``."""
    index = (pd.Index(np.empty(0, np.uint64), name="cell") if index_name == "cell"
             else pd.Index(pd.array([], dtype="string"), name=index_name))
    return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in COUNT_COLUMNS}, index=index)


def sum_households(households: pd.DataFrame, *, cells: np.ndarray, resolution: int,
                   values: Mapping[str, np.ndarray] | None = None) -> PartialSums:
    """Sum households located by coordinates per cell and the others per village.

    Parameters
    ----------
    households
        Accepted households (``desil``, ``members``, ``location_precision``,
        ``village_code`` and the ``DEPRIVATIONS`` boolean fields).
    cells
        ``uint64`` cell of each household (read for the rows located by coordinates only,
        see :func:`village_located_rows`).
    resolution
        H3 resolution of ``cells``.
    values
        Per-household float values: summed per cell for households located by coordinates
        (``<name>__sum``, ``<name>__n``); village-located households get theirs per
        allocated piece (:meth:`PartialSums.combine`).

    Returns
    -------
    PartialSums
        Exact integer sums; add batches with ``+``.
    """
    by_village = village_located_rows(households)
    point = ~by_village
    pts = households[point] if by_village.any() else households
    codes, uniq = pd.factorize(np.asarray(cells)[point], sort=False)
    n = len(uniq)
    out = _count_sums(pts, codes, n)
    frame = pd.DataFrame({c: np.rint(out[c]).astype(np.int64) for c in COUNT_COLUMNS},
                         index=pd.Index(uniq.astype(np.uint64), name="cell"))
    for name, vals in (values or {}).items():
        vals = np.asarray(vals, dtype=np.float64)[point]
        ok = np.isfinite(vals)
        frame[name + _SUM] = np.bincount(codes[ok], weights=vals[ok], minlength=n)
        frame[name + _N] = np.bincount(codes[ok], minlength=n).astype(np.int64)
    villages = empty_sums("village_code")
    if by_village.any():
        vh = households[by_village]
        vcodes, vuniq = pd.factorize(vh["village_code"].astype("string"), sort=True)
        vout = _count_sums(vh, vcodes, len(vuniq))
        villages = pd.DataFrame({c: np.rint(vout[c]).astype(np.int64) for c in COUNT_COLUMNS},
                                index=pd.Index(pd.array(np.asarray(vuniq, dtype=object),
                                                        dtype="string"), name="village_code"))
    return PartialSums(cells=frame, villages=villages, resolution=resolution)


def allocate_village_sums(villages: pd.DataFrame, *, resolution: int,
                          population_raster: str | Path | None = None,
                          sampler: Callable[[pd.DataFrame], Mapping[str, np.ndarray]] | None
                          = None) -> pd.DataFrame:
    """Spread per-village counts over cells as expected shares (dasymetric allocation).

    Each village's counts are multiplied by its weights
    (:func:`kantong.engine.build.placement.village_cell_weights`) and summed per cell. With a
    ``sampler``, each (village, cell) piece is valued at its person-weighted centre and
    enters ``<name>__sum`` / ``<name>__n`` with its expected households as weight.

    Parameters
    ----------
    villages
        Indexed by BPS village code: the ``COUNT_COLUMNS`` of village-located households.
    resolution
        H3 resolution of the cells.
    population_raster
        Raster of the weights (default: the bundled GHS-POP grid).
    sampler
        Callable taking a frame with ``lon``/``lat`` and returning ``{name: values}``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``uint64`` cell (sorted): float64 expected counts (and accumulators).

    Examples
    --------
    >>> sums = allocate_village_sums(village_sums, resolution=8)  # doctest: +SKIP
    >>> total = village_sums["households"].sum()  # doctest: +SKIP
    >>> bool(np.isclose(sums["households"].sum(), total))  # doctest: +SKIP
    True
    """
    codes = villages.index.astype("string")
    weights = village_cell_weights(codes, resolution=resolution,
                                   population_raster=population_raster)
    pos = pd.Index(codes).get_indexer(weights["village_code"])
    w = weights["weight"].to_numpy(dtype=np.float64)
    cell_codes, uniq = pd.factorize(weights["cell"].to_numpy(dtype=np.uint64), sort=True)
    n = len(uniq)
    out = pd.DataFrame(index=pd.Index(uniq.astype(np.uint64), name="cell"))
    for col in COUNT_COLUMNS:
        share = villages[col].to_numpy(dtype=np.float64)[pos] * w
        out[col] = np.bincount(cell_codes, weights=share, minlength=n)
    if sampler is not None:
        expected = villages["households"].to_numpy(dtype=np.float64)[pos] * w
        for name, vals in sampler(weights[["lon", "lat"]]).items():
            vals = np.asarray(vals, dtype=np.float64)
            ok = np.isfinite(vals)
            out[name + _SUM] = np.bincount(cell_codes[ok], weights=vals[ok] * expected[ok],
                                           minlength=n)
            out[name + _N] = np.bincount(cell_codes[ok], weights=expected[ok], minlength=n)
    logger.debug("allocated %d village-located households of %d villages to %d cells",
                 int(villages["households"].sum()), len(villages), n)
    return out


def village_totals(partial: PartialSums) -> pd.DataFrame:
    """Return exact per-village counts: the units of the village pocket path.

    A village's counts are those of its village-located households plus those of the
    households located by coordinates in the cells whose centre lies in the village (the
    polygon covering the centre; the lowest code on a shared edge; centres in no village
    are left out of this table, not of the cells).

    Parameters
    ----------
    partial
        The exact sums of a whole register (:meth:`CellAccumulator.partial`).

    Returns
    -------
    pandas.DataFrame
        ``village_code``, ``village_name``, ``district_code``, ``regency_code``,
        ``province_code`` and the ``COUNT_COLUMNS`` (int64), one row per village holding
        households, sorted by code.
    """
    frames = [partial.villages]
    if len(partial.cells):
        cells = partial.cells.index.to_numpy(dtype=np.uint64)
        xy = h3v.cells_to_coordinates(cells)
        lon = np.asarray(xy["lng"], dtype=np.float64)
        lat = np.asarray(xy["lat"], dtype=np.float64)
        holder = villages_of_points(lon, lat)
        ok = holder != None  # noqa: E711 (element-wise)
        point = partial.cells.loc[ok, list(COUNT_COLUMNS)].copy()
        point.index = pd.Index(pd.array(holder[ok], dtype="string"), name="village_code")
        frames.append(point.groupby(level=0).sum())
    total = pd.concat(frames).groupby(level=0, sort=True).sum().astype(np.int64)
    names = village_attributes().reindex(total.index.astype(str))
    out = pd.concat([names.reset_index(drop=True), total.reset_index(drop=True)], axis=1)
    out.insert(0, "village_code", total.index.astype("string").to_numpy())
    return out


#: How village-located households enter the cells (recorded in the manifest).
ALLOCATION_METHOD = ("households located by village code only are spread over the H3 cells of "
                     "their village in proportion to the population raster inside the village "
                     "(dasymetric expected shares); their cell counts are expected values")


def location_precision(households: int, village_located: int) -> dict[str, object]:
    """Return the ``location_precision`` record of a run (manifest, API, exports).

    Parameters
    ----------
    households
        Accepted households.
    village_located
        Of those, the households located by village code only.

    Returns
    -------
    dict
        ``households``, ``by_coordinates``, ``by_village``, ``share_by_coordinates``,
        ``share_by_village`` (0-1, 4 decimals), ``counts`` (``"exact"`` or ``"expected"``:
        fractional cell counts), ``method`` and a one-line ``statement``.

    Examples
    --------
    >>> location_precision(200, 150)["share_by_village"]
    0.75
    """
    households, village_located = int(households), int(village_located)
    share = village_located / households if households else 0.0
    statement = (f"{round(100 * (1 - share))}% of households located by coordinates, "
                 f"{round(100 * share)}% by village code only")
    if village_located:
        statement += " (their cell counts are expected shares)"
    return {"households": households, "by_coordinates": households - village_located,
            "by_village": village_located, "share_by_coordinates": round(1.0 - share, 4),
            "share_by_village": round(share, 4),
            "counts": "expected" if village_located else "exact",
            "method": ALLOCATION_METHOD if village_located else None, "statement": statement}


def precision_of_manifest(manifest: Mapping[str, object]) -> dict[str, object] | None:
    """Return a run's ``location_precision`` record (derived for runs made before it existed).

    Parameters
    ----------
    manifest
        A run manifest (``manifest.json`` as a dict).

    Returns
    -------
    dict or None
        The record of :func:`location_precision`; ``None`` when the manifest has no
        household counts.
    """
    record = manifest.get("location_precision")
    if isinstance(record, Mapping):
        return dict(record)
    counts = manifest.get("counts", {})
    households = counts.get("households") if isinstance(counts, Mapping) else None
    if not isinstance(households, Mapping) or "accepted" not in households:
        return None
    return location_precision(int(households["accepted"]),
                              int(households.get("village_located", 0)))


def nullable_counts(values: pd.Series) -> pd.Series:
    """Return counts as nullable ``Int64``, or ``Float64`` when some are expected fractions.

    Parameters
    ----------
    values
        Counts (missing values allowed).

    Returns
    -------
    pandas.Series
        ``Int64`` when every present value is whole, else ``Float64``.

    Examples
    --------
    >>> nullable_counts(pd.Series([1.0, None])).dtype, nullable_counts(pd.Series([0.5])).dtype
    (Int64Dtype(), Float64Dtype())
    """
    x = pd.to_numeric(values, errors="coerce").astype("Float64")
    whole = (x.dropna() == x.dropna().round()).all()
    return x.astype("Int64") if whole else x


def has_fractional_counts(cells: pd.DataFrame) -> bool:
    """Tell whether a cell table holds expected (fractional, float64) counts.

    True when some households were located by village code only and spread over cells
    (``households_village_located`` is float); such tables keep float64 counts at every
    resolution, even where a value happens to be whole.

    Parameters
    ----------
    cells
        Cell sums or a cell table with the ``COUNT_COLUMNS``.

    Returns
    -------
    bool
    """
    col = cells["households_village_located"] if "households_village_located" in cells \
        else cells["households"]
    return bool(pd.api.types.is_float_dtype(col.dtype))


__all__ = ["COUNT_COLUMNS", "DEPRIVATION_COUNT_COLUMNS", "DEPRIVATION_SHARE_COLUMNS",
           "DESIL_COLUMNS", "PartialSums", "allocate_village_sums", "empty_sums",
           "location_precision", "nullable_counts", "precision_of_manifest",
           "has_fractional_counts", "sum_households", "village_located_rows",
           "village_totals"]
