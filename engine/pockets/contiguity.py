"""Poverty pockets: contiguous groups of hot cells, and their aggregates.

Hot cells are grouped with scikit-learn's DBSCAN on a *precomputed sparse* distance
graph whose only entries are pairs of hot cells that share an H3 edge (their centre
distance in metres). With ``min_samples=1`` every hot cell is a core point and ``eps``
admits every edge, so each pocket is exactly one edge-connected group of hot cells: two
pockets never touch and no cell is in two pockets. Optionally, a group larger than
``max_pocket_cells`` is split into compact parts with Ward agglomerative clustering
constrained to the same adjacency (each part stays connected).

Pocket ids are 1, 2, ... in order of extreme-poor households (descending), then
households (descending), then the smallest H3 id of the pocket, so they are stable for
the same input and do not change when the score weights change.
"""

from __future__ import annotations

import logging
import math

import geopandas as gpd
import h3ronpy.vector as h3v
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from sklearn.cluster import DBSCAN, AgglomerativeClustering

from kantong.engine.constants import EQUAL_AREA, WGS84
from kantong.engine.errors import InputError
from kantong.engine.h3ids import cells_to_uint64
from kantong.engine.pockets.hotspots import neighbour_weights
from kantong.engine.pockets.score import DEPRIVATION_NAMES, deprivation_shares, travel_columns

logger = logging.getLogger(__name__)

_EARTH_RADIUS_M = 6_371_008.8
#: Snap grid (degrees) for dissolving hexagons: removes float slivers between neighbours.
_UNION_GRID = 1e-9


def _centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coords = h3v.cells_to_coordinates(cells_to_uint64(cells))
    return (np.asarray(coords.column("lat")).astype("float64"),
            np.asarray(coords.column("lng")).astype("float64"))


def _haversine(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray,
               lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def pocket_labels(cells: np.ndarray | pd.Series, *, max_cells: int = 0) -> np.ndarray:
    """Group H3 cells into edge-connected pockets.

    Parameters
    ----------
    cells
        Unique H3 ids (hex strings) of the hot cells, one resolution.
    max_cells
        Split groups with more cells into ``ceil(size / max_cells)`` compact connected
        parts (Ward linkage under the adjacency constraint); 0 disables splitting.

    Returns
    -------
    numpy.ndarray
        ``int64`` label per cell, ``0..n_pockets-1``, numbered by the order of each
        pocket's smallest H3 id (independent of the input order).

    Examples
    --------
    >>> import h3
    >>> a = sorted(h3.grid_disk("8868b00105fffff", 1))
    >>> far = h3.latlng_to_cell(0.5, 111.5, 8)
    >>> len(set(pocket_labels(a + [far]).tolist()))
    2
    """
    cells = np.asarray(cells, dtype=object)
    n = len(cells)
    if n == 0:
        return np.zeros(0, dtype="int64")
    adjacency = neighbour_weights(cells, k_ring=1, include_self=False).tocoo()
    lat, lon = _centres(cells)
    dist = _haversine(lat[adjacency.row], lon[adjacency.row], lat[adjacency.col],
                      lon[adjacency.col])
    graph = sp.csr_matrix((dist, (adjacency.row, adjacency.col)), shape=(n, n))
    eps = float(dist.max()) * 1.001 if len(dist) else 1.0
    labels = DBSCAN(eps=eps, min_samples=1, metric="precomputed").fit(graph).labels_
    if max_cells:
        labels = _split_large(labels, adjacency.tocsr(), lat, lon, max_cells)
    # renumber by the smallest H3 id of each group: independent of input order
    first = pd.Series(cells).groupby(labels).min().sort_values()
    remap = pd.Series(np.arange(len(first)), index=first.index)
    return remap.loc[labels].to_numpy().astype("int64")


def _split_large(labels: np.ndarray, adjacency: sp.csr_matrix, lat: np.ndarray, lon: np.ndarray,
                 max_cells: int) -> np.ndarray:
    """Split groups larger than ``max_cells`` with connectivity-constrained Ward clustering."""
    out = labels.copy()
    next_label = int(labels.max()) + 1
    sizes = np.bincount(labels)
    for label in np.flatnonzero(sizes > max_cells):  # loop over oversized pockets only
        idx = np.flatnonzero(labels == label)
        parts = math.ceil(len(idx) / max_cells)
        lat0 = np.radians(lat[idx].mean())
        xy = np.column_stack([np.radians(lon[idx]) * np.cos(lat0), np.radians(lat[idx])])
        xy *= _EARTH_RADIUS_M  # local equirectangular metres
        sub = AgglomerativeClustering(n_clusters=parts, linkage="ward",
                                      connectivity=adjacency[idx][:, idx]).fit(xy).labels_
        out[idx[sub > 0]] = next_label + sub[sub > 0] - 1
        next_label += parts - 1
        logger.info("split a pocket of %d cells into %d parts", len(idx), parts)
    return out


def assign_pockets(cells: pd.DataFrame, hot: np.ndarray | pd.Series, *,
                   min_extreme_households: int = 1, max_cells: int = 0) -> pd.Series:
    """Label the hot cells of ``cells`` with pocket ids.

    Parameters
    ----------
    cells
        Cells with ``h3``, ``households`` and ``extreme_households``.
    hot
        Boolean mask (aligned with ``cells``) of significant hot cells.
    min_extreme_households
        Groups with fewer extreme-poor households are dropped (their cells stay hot).
    max_cells
        See :func:`pocket_labels`.

    Returns
    -------
    pandas.Series
        Nullable ``Int64`` ``pocket_id`` per cell (``<NA>`` outside pockets); ids are 1..P
        ordered by extreme-poor households, households (both descending), smallest H3 id.
    """
    hot = np.asarray(hot, dtype=bool)
    if len(hot) != len(cells):
        raise InputError("assign_pockets: the hot mask does not match the cells")
    pocket = pd.Series(pd.NA, index=cells.index, dtype="Int64", name="pocket_id")
    if not hot.any():
        return pocket
    sub = cells.loc[hot, ["h3", "households", "extreme_households"]]
    labels = pocket_labels(sub["h3"].to_numpy(), max_cells=max_cells)
    pocket.loc[sub.index] = number_groups(sub, labels, key="h3",
                                          min_extreme_households=min_extreme_households)
    logger.info("pockets: %d contiguous groups of hot cells, %d with >= %d extreme-poor "
                "households", len(np.unique(labels)), pocket.nunique(), min_extreme_households)
    return pocket


def number_groups(units: pd.DataFrame, labels: np.ndarray, *, key: str,
                  min_extreme_households: float) -> np.ndarray:
    """Give labelled groups of units pocket ids 1..P, dropping the small groups.

    Parameters
    ----------
    units
        One row per unit (cell or village) with ``households``, ``extreme_households`` and
        the ``key`` column (its id).
    labels
        Group label of each unit.
    key
        Column whose smallest value breaks ties (``h3``, ``village_code``).
    min_extreme_households
        Groups with fewer extreme-poor households get no id.

    Returns
    -------
    numpy.ndarray
        Float pocket id per unit (NaN for dropped groups): 1..P by extreme-poor
        households, households (both descending), smallest ``key``.
    """
    sub = pd.DataFrame({"label": labels, "extreme": units["extreme_households"].to_numpy(),
                        "households": units["households"].to_numpy(),
                        "first": units[key].to_numpy()})
    agg = sub.groupby("label").agg(extreme=("extreme", "sum"),
                                   households=("households", "sum"), first=("first", "min"))
    agg = agg[agg["extreme"] >= min_extreme_households]
    agg = agg.sort_values(["extreme", "households", "first"], ascending=[False, False, True],
                          kind="stable")
    ids = pd.Series(np.arange(1, len(agg) + 1, dtype="float64"), index=agg.index)
    return sub["label"].map(ids).to_numpy(dtype="float64")


def dissolve_pockets(cells: gpd.GeoDataFrame, *, hexagons: gpd.GeoDataFrame | None = None,
                     top_deprivations: int = 3) -> gpd.GeoDataFrame:
    """Aggregate the cells of each pocket into one row with a dissolved polygon.

    Parameters
    ----------
    cells
        Cells (EPSG:4326) with ``pocket_id`` and the count columns of the run contract.
    hexagons
        The cells the pockets were found on (EPSG:4326, ``pocket_id`` and geometry) when
        that is a coarser resolution than ``cells``; their union is the pocket polygon.
        ``None`` dissolves the hexagons of ``cells``.
    top_deprivations
        How many deprivations to name in ``dominant_deprivations``.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per pocket (EPSG:4326), sorted by ``pocket_id``: counts (sums), ``cells``,
        ``extreme_rate`` (extreme persons / persons), household-weighted
        ``travel_min_<type>``, deprivation counts and shares, ``dominant_deprivations``,
        ``regencies`` ("code name; ..." by households), the main ``province_*`` and
        ``regency_*`` (most households), ``area_km2``, ``lon``/``lat`` (a point inside).
    """
    if cells.crs is None or cells.crs.to_epsg() != 4326:
        raise InputError(f"dissolve_pockets: cells must be in {WGS84}, got {cells.crs}")
    inside = cells[cells["pocket_id"].notna()].copy()
    inside["pocket_id"] = inside["pocket_id"].astype("int64")
    count_cols = [c for c in inside.columns if c in (
        "households", "persons", "extreme_households", "extreme_persons", "assistance_gap",
        "households_village_located") or c.startswith("households_desil_") or
        (c.startswith("n_") and pd.api.types.is_numeric_dtype(inside[c]))]
    group = inside.groupby("pocket_id", sort=True)
    out = group[count_cols].sum()
    out.insert(0, "cells", group.size())
    with np.errstate(divide="ignore", invalid="ignore"):
        out["extreme_rate"] = np.where(out["persons"] > 0,
                                       out["extreme_persons"] / out["persons"], 0.0)
    for col in travel_columns(inside):
        t = inside[col].astype("float64").replace([np.inf, -np.inf], np.nan)
        w = inside["households"].astype("float64").where(t.notna(), 0.0)
        num = (t.fillna(0.0) * w).groupby(inside["pocket_id"]).sum()
        den = w.groupby(inside["pocket_id"]).sum()
        out[col] = (num / den.replace(0.0, np.nan)).to_numpy()
    shares = deprivation_shares(out)
    for col in shares.columns:
        out[col] = shares[col]
    named = [c for c in shares.columns if c != "share_no_assistance"]
    top = shares[named].apply(
        lambda r: ", ".join(DEPRIVATION_NAMES[c] for c, v in
                            r.sort_values(ascending=False, kind="stable").head(top_deprivations)
                            .items() if v > 0), axis=1) if named else pd.Series("", index=out.index)
    out["dominant_deprivations"] = top.astype("string")
    for level, cols in (("province", ("province_code", "province_name")),
                        ("regency", ("regency_code", "regency_name"))):
        if not set(cols) <= set(inside.columns):
            continue
        by = inside.groupby(["pocket_id", *cols], dropna=False)["households"].sum().reset_index()
        by = by.sort_values(["pocket_id", "households", cols[0]],
                            ascending=[True, False, True], kind="stable")
        main = by.drop_duplicates("pocket_id").set_index("pocket_id")
        for col in cols:
            out[col] = main.loc[out.index, col].astype("string").to_numpy()
        if level == "regency":
            by["label"] = (by[cols[0]].astype("string").fillna("?") + " "
                           + by[cols[1]].astype("string").fillna("")).str.strip()
            out["regencies"] = by.groupby("pocket_id", sort=True)["label"].agg("; ".join).astype(
                "string")
    shapes = inside if hexagons is None else hexagons[hexagons["pocket_id"].notna()]
    if shapes.crs is None or shapes.crs.to_epsg() != 4326:
        raise InputError(f"dissolve_pockets: hexagons must be in {WGS84}, got {shapes.crs}")
    by_pocket = shapes.geometry.groupby(shapes["pocket_id"].astype("int64"), sort=True)
    union = {pid: shapely.union_all(g.to_numpy(), grid_size=_UNION_GRID)
             for pid, g in by_pocket}  # one union per pocket
    geoms = [union[pid] for pid in out.index]
    pockets = gpd.GeoDataFrame(out.reset_index(), geometry=geoms, crs=WGS84)
    pockets["geometry"] = shapely.make_valid(pockets.geometry.to_numpy())
    pockets["area_km2"] = pockets.geometry.to_crs(EQUAL_AREA).area.to_numpy() / 1e6
    rep = pockets.geometry.representative_point()
    pockets["lon"], pockets["lat"] = rep.x.to_numpy(), rep.y.to_numpy()
    return pockets
