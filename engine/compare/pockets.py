"""Pocket changes between two runs: matching by shared H3 cells, groups and statuses.

Pocket ids are not stable across runs, so pockets are matched by the overlap of their H3
cells (:func:`match_pockets`), matched pairs are joined into groups (one-to-many and
many-to-one matches are splits and merges) and each group gets a status
(:func:`pocket_changes`): persisting, shrinking, growing, new or resolved. The thresholds are
documented in docs/compare.md; :func:`kantong.engine.compare.run.compare_runs` feeds these
functions with
the published pockets of each run.
"""

from __future__ import annotations

from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from kantong.engine.build.sums import nullable_counts
from kantong.engine.constants import WGS84
from kantong.engine.errors import InputError

#: Relative change of a matched pocket group's extreme-poor households beyond which it is
#: ``growing`` (>= +10 %) or ``shrinking`` (<= -10 %); in between it is ``persisting``.
CHANGE_THRESHOLD: Final = 0.10
#: Two pockets match when their shared cells are at least this share of the smaller one.
MIN_OVERLAP: Final = 0.10
#: Pocket statuses, in reporting order.
STATUSES: Final = ("persisting", "shrinking", "growing", "new", "resolved")
#: Display colour of each pocket status (static maps and the web map): Okabe-Ito colours
#: chosen so that every pair stays >= 20 CIELAB units apart for normal, protan, deutan and
#: tritan vision (Machado 2009 simulation; the former red/green set fell to 16), without
#: red/green and with a black "resolved" that stays visible on the blue cells of a decrease.
STATUS_COLORS: Final = {"persisting": "#0072b2", "shrinking": "#56b4e9", "growing": "#d55e00",
                        "new": "#cc79a7", "resolved": "#000000"}


def match_pockets(old: pd.DataFrame, new: pd.DataFrame, *, min_overlap: float = MIN_OVERLAP
                  ) -> pd.DataFrame:
    """Pair the pockets of two runs by the overlap of their H3 cells.

    Parameters
    ----------
    old, new
        Cells with ``h3`` and ``pocket_id`` (rows without a pocket are ignored), at one
        common H3 resolution. Within one run a cell belongs to at most one pocket.
    min_overlap
        A pair *matches* when the shared cells are at least this share of the smaller
        pocket's cells (the overlap coefficient); ``0`` matches any shared cell.

    Returns
    -------
    pandas.DataFrame
        One row per (old, new) pair sharing at least one cell: ``pocket_id_old``,
        ``pocket_id_new``, ``overlap_cells``, ``cells_old``, ``cells_new``, ``iou``
        (intersection over union of the cell sets), ``overlap_share`` and ``matched``.
        Sorted by the pocket ids.

    Examples
    --------
    >>> old = pd.DataFrame({"h3": ["a", "b", "c"], "pocket_id": [1, 1, 2]})
    >>> new = pd.DataFrame({"h3": ["b", "c", "d"], "pocket_id": [7, 7, 7]})
    >>> match_pockets(old, new)[["pocket_id_old", "pocket_id_new", "overlap_cells", "iou"]]
       pocket_id_old  pocket_id_new  overlap_cells       iou
    0              1              7              1  0.250000
    1              2              7              1  0.333333
    """
    if not 0.0 <= min_overlap <= 1.0:
        raise InputError(f"min_overlap must be in [0, 1], got {min_overlap}")
    o, n = pocket_members(old), pocket_members(new)
    size_o = o.groupby("pocket_id").size()
    size_n = n.groupby("pocket_id").size()
    pairs = o.merge(n, on="h3", suffixes=("_old", "_new"))
    pairs = (pairs.groupby(["pocket_id_old", "pocket_id_new"]).size()
             .rename("overlap_cells").reset_index())
    pairs["cells_old"] = size_o.reindex(pairs["pocket_id_old"]).to_numpy(dtype="int64")
    pairs["cells_new"] = size_n.reindex(pairs["pocket_id_new"]).to_numpy(dtype="int64")
    inter = pairs["overlap_cells"].astype("float64")
    pairs["iou"] = inter / (pairs["cells_old"] + pairs["cells_new"] - inter)
    pairs["overlap_share"] = inter / np.minimum(pairs["cells_old"], pairs["cells_new"])
    pairs["matched"] = (pairs["overlap_share"] >= min_overlap).to_numpy()
    return pairs.sort_values(["pocket_id_old", "pocket_id_new"]).reset_index(drop=True)


def pocket_changes(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, matches: pd.DataFrame, *,
                   threshold: float = CHANGE_THRESHOLD) -> gpd.GeoDataFrame:
    """Group matched pockets (one-to-many, many-to-one) and classify each group.

    Matched pairs link pockets into groups (connected components of the bipartite match
    graph: a split is one old pocket with several new ones, a merge the reverse). Each
    group's ``status``, from its extreme-poor households ``E_old`` and ``E_new``:

    * ``new``: no old pocket; ``resolved``: no new pocket;
    * ``growing``: ``E_new >= E_old * (1 + threshold)``;
    * ``shrinking``: ``E_new <= E_old * (1 - threshold)``;
    * ``persisting``: otherwise.

    Parameters
    ----------
    old, new
        Pocket tables (``pocket_id``, ``households``, ``extreme_households``, geometry;
        optional ``cells``, ``regency_code``, ``regency_name``), normally published pockets.
    matches
        Output of :func:`match_pockets`; only rows with ``matched`` link pockets.
    threshold
        Relative change of extreme-poor households that counts as growth or shrinkage.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per group, sorted by status then size: ``change_id``, ``status``, ``kind``
        (``"n_old:n_new"``), ``pocket_ids_old``/``pocket_ids_new`` (``;``-separated),
        ``households_old``/``_new``, ``extreme_households_old``/``_new``/``_change``,
        ``extreme_change_pct``, ``cells_old``/``_new``, ``overlap_cells``, ``iou``,
        ``regency_code``, ``regency_name``, ``lon``, ``lat`` and the outline (the new
        pockets', or the old pockets' for a resolved group), EPSG:4326.
    """
    if not 0.0 <= threshold < 1.0:
        raise InputError(f"threshold must be in [0, 1), got {threshold}")
    o = _pocket_frame(old, "old")
    n = _pocket_frame(new, "new")
    nodes = pd.concat([o, n], ignore_index=True)
    if nodes.empty:
        return _empty_pockets()
    key = pd.Series(np.arange(len(nodes)), index=pd.MultiIndex.from_arrays(
        [nodes["side"], nodes["pocket_id"]]))
    m = matches[matches["matched"]] if len(matches) else matches
    m = m[m["pocket_id_old"].isin(o["pocket_id"]) & m["pocket_id_new"].isin(n["pocket_id"])]
    src = key.reindex(pd.MultiIndex.from_arrays([["old"] * len(m), m["pocket_id_old"]])).to_numpy()
    dst = key.reindex(pd.MultiIndex.from_arrays([["new"] * len(m), m["pocket_id_new"]])).to_numpy()
    graph = sp.coo_matrix((np.ones(len(m)), (src, dst)), shape=(len(nodes), len(nodes)))
    _, label = connected_components(graph, directed=False)
    nodes["group"] = label
    groups = []
    for _, members in nodes.groupby("group", sort=False):  # one iteration per pocket group
        groups.append(_group_row(members, m, threshold))
    table = pd.DataFrame(groups)
    order = {s: i for i, s in enumerate(STATUSES)}
    table["_order"] = table["status"].map(order)
    table["_size"] = table[["extreme_households_old", "extreme_households_new"]].max(axis=1)
    table = table.sort_values(["_order", "_size", "pocket_ids_old", "pocket_ids_new"],
                              ascending=[True, False, True, True]).drop(columns=["_order",
                                                                                 "_size"])
    table.insert(0, "change_id", np.arange(1, len(table) + 1, dtype="int64"))
    geom = table.pop("geometry").to_numpy()
    gdf = gpd.GeoDataFrame(table.reset_index(drop=True), geometry=gpd.GeoSeries(geom, crs=WGS84),
                           crs=WGS84)
    rep = gdf.geometry.representative_point()
    gdf["lon"], gdf["lat"] = rep.x.to_numpy(), rep.y.to_numpy()
    for col in ("households_old", "households_new", "extreme_households_old",
                "extreme_households_new", "extreme_households_change", "cells_old", "cells_new"):
        gdf[col] = nullable_counts(gdf[col])  # Float64 for expected (fractional) counts
    gdf["status"] = pd.Categorical(gdf["status"], categories=list(STATUSES))
    return gdf


def pocket_members(cells: pd.DataFrame) -> pd.DataFrame:
    """Return the distinct ``(h3, pocket_id)`` rows of cells that lie in a pocket."""
    if not {"h3", "pocket_id"} <= set(cells.columns):
        return pd.DataFrame({"h3": pd.Series(dtype=str), "pocket_id": pd.Series(dtype="int64")})
    frame = cells.loc[cells["pocket_id"].notna(), ["h3", "pocket_id"]]
    frame = frame.astype({"h3": str, "pocket_id": "int64"})
    return frame.drop_duplicates()


def _pocket_frame(pockets: gpd.GeoDataFrame, side: str) -> pd.DataFrame:
    if len(pockets) and (pockets.crs is None or pockets.crs.to_epsg() != 4326):
        raise InputError(f"{side} pockets must be EPSG:4326, got {pockets.crs}")
    cols = ["pocket_id", "households", "extreme_households", "cells", "regency_code",
            "regency_name"]
    frame = pd.DataFrame({c: pockets[c] if c in pockets.columns else pd.NA for c in cols})
    frame["geometry"] = pockets.geometry.to_numpy() if len(pockets) else []
    frame["side"] = side
    return frame.astype({"pocket_id": "int64"}).reset_index(drop=True)


def _group_row(members: pd.DataFrame, matches: pd.DataFrame, threshold: float) -> dict[str, Any]:
    o = members[members["side"] == "old"]
    n = members[members["side"] == "new"]
    e_old = round(float(o["extreme_households"].sum())) if len(o) else 0
    e_new = round(float(n["extreme_households"].sum())) if len(n) else 0
    inside = matches[matches["pocket_id_old"].isin(o["pocket_id"])
                     & matches["pocket_id_new"].isin(n["pocket_id"])]
    overlap = int(inside["overlap_cells"].sum())
    if not len(n):
        status = "resolved"
    elif not len(o):
        status = "new"
    elif e_new >= e_old * (1 + threshold):
        status = "growing"
    elif e_new <= e_old * (1 - threshold):
        status = "shrinking"
    else:
        status = "persisting"
    # cell counts of the matching: from the pairs (match resolution); else the pocket tables
    c_old = _cells_at_match(o, inside, "old")
    c_new = _cells_at_match(n, inside, "new")
    union = c_old + c_new - overlap
    lead = (n if len(n) else o).sort_values(["households", "pocket_id"], ascending=[False, True])
    shape = gpd.GeoSeries((n if len(n) else o)["geometry"].to_numpy(), crs=WGS84).union_all()
    return {
        "status": status, "kind": f"{len(o)}:{len(n)}",
        "pocket_ids_old": ";".join(map(str, sorted(o["pocket_id"]))),
        "pocket_ids_new": ";".join(map(str, sorted(n["pocket_id"]))),
        "households_old": round(float(o["households"].sum())) if len(o) else pd.NA,
        "households_new": round(float(n["households"].sum())) if len(n) else pd.NA,
        "extreme_households_old": e_old if len(o) else pd.NA,
        "extreme_households_new": e_new if len(n) else pd.NA,
        "extreme_households_change": e_new - e_old,
        "extreme_change_pct": (100.0 * (e_new - e_old) / e_old) if e_old else np.nan,
        "cells_old": c_old if len(o) else pd.NA, "cells_new": c_new if len(n) else pd.NA,
        "overlap_cells": overlap, "iou": overlap / union if union else np.nan,
        "regency_code": lead["regency_code"].iloc[0], "regency_name": lead["regency_name"].iloc[0],
        "geometry": shape,
    }


def _cells_at_match(pockets: pd.DataFrame, pairs: pd.DataFrame, side: str) -> int:
    """Cells of ``pockets`` at the match resolution (from the pairs when known)."""
    sizes = pairs.drop_duplicates(f"pocket_id_{side}").set_index(f"pocket_id_{side}")[
        f"cells_{side}"]
    total = 0
    for pid, cells in zip(pockets["pocket_id"], pockets["cells"], strict=True):
        total += int(sizes[pid]) if pid in sizes.index else int(0 if pd.isna(cells) else cells)
    return total


def _empty_pockets() -> gpd.GeoDataFrame:
    cols = ["change_id", "status", "kind", "pocket_ids_old", "pocket_ids_new", "households_old",
            "households_new", "extreme_households_old", "extreme_households_new",
            "extreme_households_change", "extreme_change_pct", "cells_old", "cells_new",
            "overlap_cells", "iou", "regency_code", "regency_name", "lon", "lat"]
    data = {c: pd.Series(dtype="object") for c in cols}
    data["status"] = pd.Categorical([], categories=list(STATUSES))
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs=WGS84), crs=WGS84)


__all__ = ["CHANGE_THRESHOLD", "MIN_OVERLAP", "STATUSES", "STATUS_COLORS", "match_pockets",
           "pocket_changes", "pocket_members"]
