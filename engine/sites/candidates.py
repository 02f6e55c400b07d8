"""Candidate sites: a points file, or the populated cell centres shortlisted by reach.

* :func:`read_candidates` reads a points file (any vector format with a CRS, or a CSV with
  ``lon``/``lat`` in EPSG:4326) with optional ``candidate_id``, ``name`` and ``cost``.
* :func:`default_candidates` takes the populated cells (of the regency); above the limit it
  shortlists them by repeated greedy passes over an approximate coverage, so the shortlist
  spreads over every area with unserved demand.
* :func:`canonical_order` sorts candidates by ``candidate_id``: every solver breaks ties
  by the lowest index, so ties go to the smallest id whatever the order of the input.
* :func:`site_limit` and :func:`count_from_budget` turn ``--count`` / ``--budget`` /
  ``--cost`` into a site count or a cost budget.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd

from kantong.engine.constants import WGS84
from kantong.engine.errors import (
    CRSError,
    EmptyInputError,
    InputError,
    MissingColumnError,
    NoOverlapError,
    first_line,
)
from kantong.engine.inputs import boundaries
from kantong.engine.sites.demand import CoverageModel
from kantong.engine.sites.solvers import greedy_cover

logger = logging.getLogger(__name__)

#: Default candidates (populated cells) beyond this number are thinned by reach.
DEFAULT_CANDIDATE_LIMIT: Final = 1000
#: Candidate sites further than this (degrees, about 55 km) outside the bounding box of the
#: run's cells are "far"; a candidates file with no candidate nearer is a NoOverlapError.
CANDIDATE_MARGIN_DEG: Final = 0.5
#: Target reach of the coarse ranking surface, in coarse pixels (sets the coarsening factor).
_COARSE_REACH_PX: Final = 20


def count_from_budget(budget: float, cost: float) -> int:
    """Return how many sites of one cost a budget buys: ``floor(budget / cost)``.

    Parameters
    ----------
    budget, cost
        Total budget and cost of one site, in Rupiah.

    Raises
    ------
    InputError
        ``cost <= 0``, ``budget <= 0`` or ``budget < cost``.

    Examples
    --------
    >>> count_from_budget(17e9, 2.5e9)
    6
    """
    if not cost > 0 or not budget > 0:
        raise InputError(f"budget and cost must be > 0 (got Rp {budget:,.0f}, Rp {cost:,.0f})")
    if budget < cost:
        raise InputError(f"budget Rp {budget:,.0f} is below the cost of one site Rp {cost:,.0f}")
    return int(math.floor(budget / cost + 1e-9))


def read_candidates(path: str | Path) -> gpd.GeoDataFrame:
    """Read candidate sites from a points file.

    Parameters
    ----------
    path
        Any vector format GDAL reads (GeoPackage, GeoJSON, shapefile, GeoParquet) with a
        CRS and point geometries, or a CSV with ``lon``/``lat`` columns in EPSG:4326
        degrees. Optional columns: ``candidate_id`` (else ``C1, C2, ...``), ``name`` and
        ``cost`` (Rupiah).

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326 points with ``candidate_id``, ``name``, ``cost`` (NaN when absent).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: candidates file not found")
    if p.suffix.lower() in (".csv", ".txt"):
        frame = _read(p, pd.read_csv)
        cols = {c.lower(): c for c in frame.columns}
        if "lon" not in cols or "lat" not in cols:
            raise MissingColumnError(f"{p}: a candidates CSV needs lon and lat columns (EPSG:4326)")
        lon = pd.to_numeric(frame[cols["lon"]], errors="coerce")
        lat = pd.to_numeric(frame[cols["lat"]], errors="coerce")
        if lon.isna().any() or lat.isna().any():
            raise InputError(f"{p}: {int((lon.isna() | lat.isna()).sum())} rows have no lon/lat")
        if (lon.abs() > 180).any() or (lat.abs() > 90).any():
            raise CRSError(f"{p}: lon/lat must be EPSG:4326 degrees (values out of range)")
        gdf = gpd.GeoDataFrame(frame.drop(columns=[cols["lon"], cols["lat"]]),
                               geometry=gpd.points_from_xy(lon, lat), crs=WGS84)
    else:
        gdf = _read(p, gpd.read_parquet if p.suffix.lower() == ".parquet" else gpd.read_file)
        if gdf.crs is None:
            raise CRSError(f"{p}: candidates layer has no CRS")
        if gdf.geometry.isna().any() or gdf.geometry.is_empty.any():
            raise InputError(f"{p}: some candidates have no geometry")
        if not (gdf.geom_type == "Point").all():
            raise InputError(f"{p}: candidates must be points, found "
                             f"{', '.join(sorted(set(gdf.geom_type) - {'Point'}))}")
        if gdf.crs.to_epsg() != 4326:
            logger.info("reprojecting candidates from %s to %s", gdf.crs, WGS84)
            gdf = gdf.to_crs(WGS84)
    if len(gdf) == 0:
        raise EmptyInputError(f"{p}: no candidate sites")
    lower = {c.lower(): c for c in gdf.columns}
    ids = gdf[lower["candidate_id"]].astype(str) if "candidate_id" in lower else \
        pd.Series([f"C{i + 1}" for i in range(len(gdf))], index=gdf.index)
    if ids.duplicated().any():
        raise InputError(f"{p}: candidate_id values must be unique")
    cost = pd.to_numeric(gdf[lower["cost"]], errors="coerce") if "cost" in lower else \
        pd.Series(np.nan, index=gdf.index)
    if (cost.dropna() <= 0).any():
        raise InputError(f"{p}: candidate costs must be > 0 Rupiah")
    name = gdf[lower["name"]].astype("string") if "name" in lower else \
        pd.Series(pd.NA, index=gdf.index, dtype="string")
    out = gpd.GeoDataFrame({"candidate_id": ids.to_numpy(), "name": name.to_numpy(),
                            "cost": cost.to_numpy(dtype=float)},
                           geometry=gdf.geometry.to_numpy(), crs=WGS84)
    out["lon"], out["lat"] = out.geometry.x, out.geometry.y
    reg = boundaries.regencies()[["regency_code", "regency_name", "geometry"]]
    joined = gpd.sjoin(out[["geometry"]], reg, how="left", predicate="within")
    joined = joined[~joined.index.duplicated()]
    out["regency_code"] = joined["regency_code"].astype("string").to_numpy()
    out["regency_name"] = joined["regency_name"].astype("string").to_numpy()
    logger.info("read %d candidate sites from %s", len(out), p)
    return out



def check_candidates_near(cand: gpd.GeoDataFrame, cells: pd.DataFrame,
                           source: str | Path) -> None:
    """Raise ``NoOverlapError`` when no candidate lies in or near the run's cells.

    Parameters
    ----------
    cand
        Candidates with ``lon``/``lat``.
    cells
        The run's cells with ``lon``/``lat``.
    source
        The candidates file (for messages).
    """
    margin = CANDIDATE_MARGIN_DEG
    lon0, lon1 = cells["lon"].min() - margin, cells["lon"].max() + margin
    lat0, lat1 = cells["lat"].min() - margin, cells["lat"].max() + margin
    near = cand["lon"].between(lon0, lon1) & cand["lat"].between(lat0, lat1)
    if not near.any():
        raise NoOverlapError(
            f"{source}: no candidate site lies in or near the run's area (candidates span lon "
            f"{cand['lon'].min():.4g}..{cand['lon'].max():.4g}, lat {cand['lat'].min():.4g}.."
            f"{cand['lat'].max():.4g}; the run's cells span lon {lon0 + margin:.4g}.."
            f"{lon1 - margin:.4g}, lat {lat0 + margin:.4g}..{lat1 - margin:.4g})")
    if not near.all():
        logger.warning("%s: %d of %d candidate sites are far outside the run's area",
                       source, int((~near).sum()), len(cand))


def _read(path: Path, reader: Any) -> Any:
    """Call ``reader(path)``; any failure becomes a one-line InputError naming the file."""
    try:
        return reader(path)
    except Exception as exc:  # pandas and GDAL raise many types: report them all
        first = first_line(exc)
        raise InputError(f"{path}: cannot read candidates ({first})") from None


def default_candidates(cells: pd.DataFrame, weights: np.ndarray, demand: pd.DataFrame,
                        demand_w: np.ndarray, travel: CoverageModel, max_minutes: float,
                        limit: int) -> tuple[pd.DataFrame, int]:
    """Return populated cells as candidates, shortlisted to ``limit`` when there are more.

    The shortlist is built on an approximate coverage - least-cost over the friction
    averaged in blocks of ``f x f`` pixels (``f`` sized so a search spans about
    ``_COARSE_REACH_PX`` blocks), one representative cell per block (its largest demand),
    or the exact straight-line coverage - by repeated greedy passes: each pass picks the
    representatives that add the most unserved demand until all reachable demand is
    covered, and the next pass starts again from the full demand among those not yet
    picked. Candidates are thus spread over every area with demand, with alternatives in
    each, rather than piled where the reach is largest.
    """
    populated = np.flatnonzero(cells["households"].to_numpy() > 0)
    cand = cells.iloc[populated][["h3", "lon", "lat", "regency_code", "regency_name"]]
    cand = cand.reset_index(drop=True)
    n_all = len(cand)
    if n_all <= limit:
        return cand, n_all
    reps = np.arange(n_all)
    surface = None
    if travel.surface is not None:
        factor = int(np.clip(travel.surface.reach_pixels(max_minutes) // _COARSE_REACH_PX, 1, 8))
        surface = travel.surface.coarsen(factor)
        block = surface.pixels_of(cand["lon"].to_numpy(float), cand["lat"].to_numpy(float))
        ranked = pd.DataFrame({"block": block, "own": weights[populated],
                               "hh": cells["households"].to_numpy()[populated]})
        ranked = ranked[ranked["block"] >= 0].sort_values(["own", "hh"], ascending=False,
                                                          kind="stable")
        reps = np.sort(ranked.drop_duplicates("block").index.to_numpy())
        logger.info("shortlisting %d default candidates: %d blocks of %dx%d friction pixels",
                    n_all, len(reps), factor, factor)
    cov = travel.coverage(cand.iloc[reps], demand, max_minutes, surface=surface)
    picked: list[int] = []
    avail = np.arange(len(reps))
    while len(picked) < limit and len(avail):  # one greedy pass per round
        res = greedy_cover(cov.matrix[avail], demand_w, k=limit - len(picked), bound=False)
        if len(res.order) == 0:
            break
        picked.extend(avail[res.order].tolist())
        avail = np.setdiff1d(avail, avail[res.order])
    keep = np.sort(reps[np.asarray(picked, dtype=np.int64)])
    logger.info("shortlisted %d of %d default candidates", len(keep), n_all)
    return cand.iloc[keep].reset_index(drop=True), n_all


def canonical_order(cand: pd.DataFrame) -> pd.DataFrame:
    """Return candidates sorted by ``candidate_id`` (a deterministic tie-break order).

    Parameters
    ----------
    cand
        Candidates with a ``candidate_id`` column.

    Returns
    -------
    pandas.DataFrame
        The same rows sorted by id, index reset.

    Examples
    --------
    >>> canonical_order(pd.DataFrame({"candidate_id": ["b", "a"]}))["candidate_id"].tolist()
    ['a', 'b']
    """
    key = cand["candidate_id"].astype(str)
    return cand.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def site_limit(count: int | None, budget: float | None, cost: float | None,
                file_costs: np.ndarray, candidates: str | Path | None,
                ) -> tuple[int | None, float | None]:
    """Return ``(k, budget)`` for the selection: a site count, or a cost budget.

    Parameters
    ----------
    count, budget, cost
        Site count, budget and cost of one site (None when not given).
    file_costs
        Per-candidate costs from a candidates file (NaN where absent).
    candidates
        The candidates file (for messages).

    Returns
    -------
    tuple
        ``(count, None)``, or ``(None, budget)`` when per-candidate costs constrain a budget.
    """
    if budget is None:
        return count, None
    if not np.isfinite(file_costs).any():
        if cost is None:
            raise InputError("--budget needs --cost (Rupiah per site) or a candidates file "
                             "with a cost column")
        return count_from_budget(budget, cost), None
    costs = np.where(np.isfinite(file_costs), file_costs, np.nan if cost is None else cost)
    if not np.isfinite(costs).all():
        raise InputError(f"{candidates}: {int((~np.isfinite(costs)).sum())} candidates have no "
                         "cost; add --cost for them")
    if budget < costs.min():
        raise InputError(f"budget Rp {budget:,.0f} is below the cheapest candidate site "
                         f"Rp {costs.min():,.0f}")
    return None, float(budget)


__all__ = ["CANDIDATE_MARGIN_DEG", "DEFAULT_CANDIDATE_LIMIT", "canonical_order",
           "check_candidates_near", "count_from_budget", "default_candidates",
           "read_candidates", "site_limit"]
