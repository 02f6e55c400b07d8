"""Poverty pockets on villages: the analysis unit of registers located by village code.

A register without coordinates (P3KE) knows each household's village, nothing finer. Its
cell counts are expected shares of village totals (:mod:`kantong.engine.build.sums`), so a
hot-spot test on cells would test the population grid as much as the register. When most
households are village-located, the pockets stage therefore tests *villages*:

1. **Units.** The run's ``villages.parquet`` (written by ``kantong build``) holds, for each
   village with households, the exact counts of its village-located households plus the
   households located by coordinates in the cells whose centre lies in the village.
2. **Neighbours.** Two villages are neighbours when their polygons touch (queen
   contiguity of the shipped BPS 2020 village coverage); ``k_ring`` > 1 takes neighbours of
   neighbours up to that order. Each village is its own neighbour (Gi*).
3. **Test.** The same statistic as on cells: Empirical-Bayes-smoothed share of extreme-poor
   households, Getis-Ord Gi* with binary weights, one-sided p, Benjamini-Hochberg q; a
   village is hot when ``q <= fdr`` and ``z > 0`` (villages below ``min_households`` are not
   tested).
4. **Pockets.** Connected groups of hot villages (polygon contiguity) holding at least
   ``min_extreme_households`` extreme-poor households; ids ordered as on cells (extreme-poor
   households, households, smallest village code). A pocket is reported as its villages
   (``villages``: ``code name; ...``, ``n_villages``) and as the run cells whose centre lies
   in them (its outline is the union of those cells, like every pocket's).

**Rule for mixed registers.** Villages are the unit when at least
``village_units_min_share`` (default 0.5) of the households are village-located
(``units = "auto"``); below that the cell path runs, with the village-located households as
expected counts. ``units = "cells"`` or ``"villages"`` forces one path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components

from kantong.engine.config import PocketConfig
from kantong.engine.constants import VILLAGES_FILE, WGS84
from kantong.engine.errors import RunError
from kantong.engine.inputs import boundaries
from kantong.engine.pockets.contiguity import number_groups
from kantong.engine.pockets.detect import Detection, confidence_label
from kantong.engine.pockets.hotspots import bh_adjust, eb_rate, gi_star
from kantong.engine.pockets.scan import ScanResult

logger = logging.getLogger(__name__)

#: Columns of the per-village table the analysis needs.
_REQUIRED = ("village_code", "households", "extreme_households", "households_village_located")
#: Unit choices of ``pockets.units``.
UNITS = ("auto", "cells", "villages")


@dataclass(frozen=True, eq=False)
class VillagePockets:
    """Result of the village path, ready for the pockets stage.

    Attributes
    ----------
    cells
        Aligned with the input cells: ``village_code`` (holding the cell centre),
        ``gi_z``, ``gi_p``, ``gi_q``, ``hot``, ``pocket_id`` (nullable Int64).
    villages
        One row per village: counts, ``extreme_rate_eb``, statistics, ``pocket_id``.
    outlines
        ``pocket_id`` and the polygon of each village in a pocket (EPSG:4326).
    members
        Indexed by ``pocket_id``: ``villages`` ("code name; ..."), ``n_villages``.
    """

    cells: pd.DataFrame
    villages: pd.DataFrame
    outlines: gpd.GeoDataFrame
    members: pd.DataFrame


def village_located_share(villages: pd.DataFrame) -> float:
    """Return the share of households located by village code only (0 when none).

    Parameters
    ----------
    villages
        Per-village table with ``households`` and ``households_village_located``.

    Returns
    -------
    float
    """
    total = float(villages["households"].sum())
    return float(villages["households_village_located"].sum()) / total if total > 0 else 0.0


def use_village_units(villages: pd.DataFrame | None, *, config: PocketConfig) -> bool:
    """Tell whether the pockets stage should test villages instead of cells.

    Parameters
    ----------
    villages
        The run's per-village table, or ``None`` when the run has none (older runs).
    config
        ``units`` and ``village_units_min_share``.

    Returns
    -------
    bool
        ``units == "villages"``; or ``"auto"`` and at least ``village_units_min_share`` of
        the households are village-located.

    Raises
    ------
    RunError
        ``units == "villages"`` on a run without a per-village table.
    """
    units = getattr(config, "units", "auto")
    if units == "cells":
        return False
    if villages is None or len(villages) == 0:
        if units == "villages":
            raise RunError(f"pockets.units = 'villages' needs {VILLAGES_FILE} in the run "
                           "(rebuild it with this version of kantong build)")
        return False
    if units == "villages":
        return True
    return village_located_share(villages) >= getattr(config, "village_units_min_share", 0.5)


def read_villages(run_dir: Path) -> pd.DataFrame | None:
    """Return the run's per-village table, or ``None`` when the run has none.

    Raises
    ------
    RunError
        The file exists but cannot be read or lacks a column.
    """
    path = Path(run_dir) / VILLAGES_FILE
    if not path.is_file():
        return None
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise RunError(f"{path}: lacks column(s) {missing}")
    return table


def village_neighbours(codes: np.ndarray, *, k_ring: int = 1) -> sp.csr_matrix:
    """Return binary contiguity weights (with the diagonal) between villages.

    Parameters
    ----------
    codes
        BPS village codes of the shipped boundaries, unique.
    k_ring
        Order of contiguity (1 = touching villages).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``n x n`` float64, 1 where village ``j`` is within ``k_ring`` contiguity steps of
        village ``i`` (including ``i`` itself).
    """
    geoms = _polygons(codes)
    n = len(codes)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    adjacency = sp.csr_matrix((np.ones(left.size), (left, right)), shape=(n, n))
    adjacency.data[:] = 1.0
    reach = adjacency.copy()
    for _ in range(k_ring - 1):
        reach = reach @ adjacency
        reach.data[:] = 1.0
    return sp.csr_matrix(reach + sp.identity(n, format="csr") > 0, dtype=np.float64)


def _polygons(codes: np.ndarray) -> np.ndarray:
    vil = boundaries.villages()
    pos = pd.Index(vil["village_code"].to_numpy(dtype=object)).get_indexer(
        np.asarray(codes, dtype=object))
    if (pos < 0).any():
        bad = np.asarray(codes, dtype=object)[pos < 0][0]
        raise RunError(f"{VILLAGES_FILE}: village code {bad!r} is not in the boundaries")
    return vil.geometry.to_numpy()[pos]


def hot_villages(villages: pd.DataFrame, *, config: PocketConfig) -> pd.DataFrame:
    """Test every village for being an extreme-poverty hot spot (Gi* on contiguity).

    Parameters
    ----------
    villages
        ``village_code``, ``households``, ``extreme_households``.
    config
        ``k_ring``, ``fdr``, ``min_households``.

    Returns
    -------
    pandas.DataFrame
        Same index: ``extreme_rate_eb``, ``gi_z``, ``gi_p``, ``gi_q``, ``hot``.
    """
    hh = villages["households"].to_numpy(dtype=np.float64)
    extreme = villages["extreme_households"].to_numpy(dtype=np.float64)
    rate = eb_rate(extreme, hh)
    tested = hh >= max(config.min_households, 1)
    z = np.full(len(villages), np.nan)
    p = np.full(len(villages), np.nan)
    if tested.sum() >= 2:
        codes = villages["village_code"].to_numpy(dtype=object)[tested]
        z[tested], p[tested] = gi_star(rate[tested],
                                       village_neighbours(codes, k_ring=config.k_ring))
    q = bh_adjust(p)
    out = pd.DataFrame({"extreme_rate_eb": rate, "gi_z": z, "gi_p": p, "gi_q": q},
                       index=villages.index)
    mean_rate = extreme.sum() / hh.sum() if hh.sum() > 0 else 0.0
    out["hot"] = ((np.nan_to_num(q, nan=1.0) <= config.fdr) & (np.nan_to_num(z) > 0)
                  & (rate > mean_rate))
    logger.info("Gi* on villages: %d of %d tested, %d hot at FDR %.3g", int(tested.sum()),
                len(villages), int(out["hot"].sum()), config.fdr)
    return out


def assign_village_pockets(villages: pd.DataFrame, hot: np.ndarray, *,
                           min_extreme_households: float) -> pd.Series:
    """Group touching hot villages into pockets.

    Parameters
    ----------
    villages
        ``village_code``, ``households``, ``extreme_households``.
    hot
        Boolean mask aligned with ``villages``.
    min_extreme_households
        Groups with fewer extreme-poor households are dropped.

    Returns
    -------
    pandas.Series
        Nullable Int64 ``pocket_id`` per village; ids 1..P by extreme-poor households,
        households (both descending), smallest village code.
    """
    hot = np.asarray(hot, dtype=bool)
    pocket = pd.Series(pd.NA, index=villages.index, dtype="Int64", name="pocket_id")
    if not hot.any():
        return pocket
    sub = villages.loc[hot, ["village_code", "households", "extreme_households"]]
    adjacency = village_neighbours(sub["village_code"].to_numpy(dtype=object), k_ring=1)
    _, labels = connected_components(adjacency, directed=False)
    ids = number_groups(sub, labels, key="village_code",
                        min_extreme_households=min_extreme_households)
    pocket.loc[sub.index] = ids
    logger.info("village pockets: %d groups of hot villages, %d kept", len(np.unique(labels)),
                pd.Series(ids).nunique())
    return pocket


def cells_in_villages(cells: pd.DataFrame, codes: np.ndarray) -> np.ndarray:
    """Return the village (among ``codes``) holding each cell centre (``None`` if none).

    Parameters
    ----------
    cells
        Cells with ``lon`` and ``lat`` (cell centres, EPSG:4326).
    codes
        Candidate village codes.

    Returns
    -------
    numpy.ndarray
        Object array of village codes aligned with ``cells``.
    """
    codes = np.asarray(codes, dtype=object)
    out = np.full(len(cells), None, dtype=object)
    if len(cells) == 0 or codes.size == 0:
        return out
    points = shapely.points(cells["lon"].to_numpy(dtype=np.float64),
                            cells["lat"].to_numpy(dtype=np.float64))
    poly_idx, point_idx = shapely.STRtree(points).query(_polygons(codes), predicate="covers")
    order = np.lexsort((codes[poly_idx], point_idx))  # a centre on a shared edge: lowest code
    point_idx, poly_idx = point_idx[order], poly_idx[order]
    first = np.r_[True, point_idx[1:] != point_idx[:-1]] if point_idx.size else point_idx
    out[point_idx[first]] = codes[poly_idx[first]]
    return out


def find_village_pockets(cells: pd.DataFrame, villages: pd.DataFrame, *,
                         config: PocketConfig) -> VillagePockets:
    """Run the village path: hot villages, pockets, and what each cell inherits.

    Parameters
    ----------
    cells
        The run's cells (``h3``, ``lon``, ``lat``).
    villages
        The run's per-village table (:data:`VILLAGES_FILE`).
    config
        The pockets configuration.

    Returns
    -------
    VillagePockets
    """
    table = villages[villages["households"] > 0].sort_values("village_code").reset_index(
        drop=True)
    table["village_code"] = table["village_code"].astype(str)
    stats = hot_villages(table, config=config)
    table = pd.concat([table, stats], axis=1)
    table["pocket_id"] = assign_village_pockets(table, table["hot"].to_numpy(),
                                                min_extreme_households=config.min_extreme_households)
    holder = cells_in_villages(cells, table["village_code"].to_numpy(dtype=object))
    pos = pd.Index(table["village_code"]).get_indexer(holder)
    has = pos >= 0
    cell_out = pd.DataFrame({"village_code": pd.array(holder, dtype="string")}, index=cells.index)
    for col in ("gi_z", "gi_p", "gi_q"):
        cell_out[col] = np.where(has, table[col].to_numpy()[np.maximum(pos, 0)], np.nan)
    cell_out["hot"] = has & table["hot"].to_numpy()[np.maximum(pos, 0)]
    pid = table["pocket_id"].to_numpy(dtype="float64", na_value=np.nan)[np.maximum(pos, 0)]
    cell_out["pocket_id"] = pd.array(np.where(has, pid, np.nan), dtype="Float64").astype("Int64")
    inside = table[table["pocket_id"].notna()]
    outlines = gpd.GeoDataFrame({"pocket_id": inside["pocket_id"].astype("int64").to_numpy()},
                                geometry=_polygons(inside["village_code"].to_numpy()), crs=WGS84)
    members = _members(pd.DataFrame({"pocket_id": inside["pocket_id"].astype("int64").to_numpy(),
                                     "village_code": inside["village_code"].to_numpy()}))
    return VillagePockets(cells=cell_out, villages=table, outlines=outlines, members=members)


def village_detection(cells: pd.DataFrame, villages: pd.DataFrame, *,
                      config: PocketConfig) -> tuple[Detection, pd.DataFrame]:
    """Run the village path and express it as the pockets stage's :class:`Detection`.

    Every run cell takes the statistics and pocket of the village holding its centre;
    ``scan_p`` is NaN (the scan works on H3 windows, not villages). A pocket's
    ``pocket_p`` is the smallest Benjamini-Hochberg q-value among its villages, and its
    ``confidence`` label follows from that.

    Parameters
    ----------
    cells
        The run's cells (``h3``, ``lon``, ``lat``, ``households``, ``extreme_households``).
    villages
        The run's per-village table.
    config
        The pockets configuration.

    Returns
    -------
    tuple
        ``(Detection aligned with cells, members)``; ``members`` as
        :func:`pocket_members`.
    """
    found = find_village_pockets(cells, villages, config=config)
    n = len(cells)
    out = pd.DataFrame(index=cells.index)
    out["extreme_rate_eb"] = eb_rate(cells["extreme_households"].to_numpy(dtype=np.float64),
                                     cells["households"].to_numpy(dtype=np.float64))
    for col in ("gi_z", "gi_p", "gi_q"):
        out[col] = found.cells[col].to_numpy()
    out["scan_p"] = np.nan
    out["hot"] = found.cells["hot"].to_numpy(dtype=bool)
    inside = found.villages[found.villages["pocket_id"].notna()]
    p = inside.groupby(inside["pocket_id"].astype("int64"))["gi_q"].min()
    significance = pd.DataFrame({"pocket_llr": np.nan, "pocket_p": p.to_numpy(),
                                 "confidence": confidence_label(p.to_numpy())},
                                index=pd.Index(p.index.to_numpy(dtype="int64"),
                                               name="pocket_id"))
    no_scan = ScanResult(hot=np.zeros(n, dtype=bool), window_of_cell=np.full(n, -1),
                         windows=pd.DataFrame(columns=["centre", "k", "households", "extreme",
                                                       "llr", "p"]),
                         null_max=np.zeros(0), capped=np.zeros(n))
    detection = Detection(cells=out, pocket_id=found.cells["pocket_id"],
                          significance=significance, scan=no_scan)
    return detection, found.members


def pocket_members(cells: pd.DataFrame, *, found: VillagePockets | None = None,
                   villages: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return the villages of each pocket: ``villages`` ("code name; ...") and ``n_villages``.

    Parameters
    ----------
    cells
        Cells with ``pocket_id``, ``lon``, ``lat``.
    found
        The village path's result (its pockets are village sets already).
    villages
        The run's per-village table: on the cell path a pocket's villages are those holding
        the centres of its cells. ``None`` (and no ``found``): an empty table.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``pocket_id`` (int64).
    """
    if found is not None:
        return found.members
    empty = pd.DataFrame({"villages": pd.Series(dtype="string"),
                          "n_villages": pd.Series(dtype="int64")},
                         index=pd.Index([], dtype="int64", name="pocket_id"))
    if villages is None or "pocket_id" not in cells.columns:
        return empty
    inside = cells[cells["pocket_id"].notna()]
    if inside.empty:
        return empty
    holder = cells_in_villages(inside, villages["village_code"].astype(str).to_numpy())
    table = pd.DataFrame({"pocket_id": inside["pocket_id"].astype("int64").to_numpy(),
                          "village_code": holder}).dropna().drop_duplicates()
    return _members(table)


def _members(table: pd.DataFrame) -> pd.DataFrame:
    """``villages`` / ``n_villages`` per pocket from ``pocket_id, village_code`` pairs."""
    table = table.sort_values(["pocket_id", "village_code"], kind="stable")
    names = boundaries.village_points().set_index("village_code")["village_name"]
    label = (table["village_code"].astype(str) + " "
             + names.reindex(table["village_code"]).fillna("").astype(str).to_numpy()).str.strip()
    group = label.groupby(table["pocket_id"].to_numpy())
    out = pd.DataFrame({"villages": group.agg("; ".join).astype("string"),
                        "n_villages": group.size().astype("int64")})
    out.index = pd.Index(out.index.astype("int64"), name="pocket_id")
    return out


__all__ = ["UNITS", "VILLAGES_FILE", "VillagePockets", "assign_village_pockets",
           "cells_in_villages", "find_village_pockets", "hot_villages", "pocket_members",
           "read_villages", "village_detection",
           "use_village_units", "village_located_share", "village_neighbours"]
