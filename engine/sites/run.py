"""Site planning on a run directory: demand, candidates, coverage, selection and outputs.

``plan_sites`` answers "where should the next K facilities of a type go so that the most
extreme-poor households not yet served come within ``max_minutes`` of one?":

1. **Demand**: the run's H3 cells (optionally one regency), weighted by extreme-poor
   households (``extreme``) or by all desil 1-4 households with ``DEMAND_WEIGHTS``
   (``weighted``).
2. **Already served**: cells within ``max_minutes`` of an existing facility of the type
   (``facilities.parquet``) are removed - only new coverage counts.
3. **Candidates**: a points file, or by default the populated cell centres (of the regency).
   Above ``DEFAULT_CANDIDATE_LIMIT`` default candidates are shortlisted by repeated greedy
   passes over an approximate coverage (block-averaged friction), so the shortlist spreads
   over every area with unserved demand (see :func:`_default_candidates`); the shortlist
   is then scored exactly.
4. **Coverage** (:mod:`kantong.engine.sites.coverage`) and **selection**
   (:mod:`kantong.engine.sites.solvers`).
5. **Outputs**: GeoJSON + GeoParquet of the chosen sites in order, a JSON sidecar of the
   parameters and solver facts, a coverage-curve PNG, and ``RUNDIR/sites/sites_<type>.parquet``
   for the web map. Outputs are site points with aggregate counts - no household rows.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from kantong.engine import __version__
from kantong.engine.atomic import atomic_path, write_json
from kantong.engine.build.travel import type_slug
from kantong.engine.constants import (
    CELLS_FILE,
    FACILITIES_FILE,
    FRICTION_FILE,
    SITES_DIR,
    WGS84,
)
from kantong.engine.errors import (
    CRSError,
    EmptyInputError,
    InputError,
    MissingColumnError,
    NoOverlapError,
    RunError,
    first_line,
)
from kantong.engine.inputs import boundaries
from kantong.engine.rundir import read_manifest
from kantong.engine.sites.coverage import (
    STRAIGHT_LINE_SPEED_KMH,
    Coverage,
    FrictionSurface,
    straight_line_coverage,
    travel_coverage,
)
from kantong.engine.sites.solvers import DEFAULT_TIME_LIMIT, SitingResult, exact_cover, greedy_cover

logger = logging.getLogger(__name__)

#: Household weights of ``--demand weighted`` by welfare decile (desil 1 = extreme poor).
DEMAND_WEIGHTS: Final = {1: 1.0, 2: 0.5, 3: 0.25, 4: 0.125}
#: Default candidates (populated cells) beyond this number are thinned by reach.
DEFAULT_CANDIDATE_LIMIT: Final = 1000
#: Seconds given to the LP relaxation that bounds a greedy solution (gap "n/a" beyond).
GREEDY_LP_SECONDS: Final = 2.0
#: Candidate sites further than this (degrees, about 55 km) outside the bounding box of the
#: run's cells are "far"; a candidates file with no candidate nearer is a NoOverlapError.
CANDIDATE_MARGIN_DEG: Final = 0.5
#: Target reach of the coarse ranking surface, in coarse pixels (sets the coarsening factor).
_COARSE_REACH_PX: Final = 20
_CELL_COLUMNS: Final = ["h3", "lon", "lat", "households", "persons", "extreme_households",
                        "extreme_persons", "households_desil_1", "households_desil_2",
                        "households_desil_3", "households_desil_4", "regency_code",
                        "regency_name"]


@dataclass(frozen=True, eq=False)
class SitesPlan:
    """The outcome of :func:`plan_sites`.

    Attributes
    ----------
    sites
        Chosen sites in order (EPSG:4326 points with the output columns).
    result
        The selection (method, objective, bound, gap, status).
    metadata
        Everything written to the JSON sidecar.
    paths
        Written files: ``geojson``, ``parquet``, ``json``, ``plot``, ``web``.
    """

    sites: gpd.GeoDataFrame
    result: SitingResult
    metadata: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


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



def _check_out(out: str | Path | None) -> None:
    """Fail before any work when the output name cannot be used."""
    if out is not None and Path(out).suffix.lower() not in (".geojson", ".parquet"):
        raise InputError(f"{out}: output must end in .geojson (a .parquet is written beside)")


def _check_candidates_near(cand: gpd.GeoDataFrame, cells: pd.DataFrame,
                           source: str | Path) -> None:
    """Raise ``NoOverlapError`` when no candidate lies in or near the run's cells."""
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


def _load_run(run_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run directory not found")
    cells_path = run_dir / CELLS_FILE
    if not cells_path.exists():
        raise RunError(f"{run_dir}: not a run directory (no {CELLS_FILE})")
    manifest = read_manifest(run_dir)
    try:
        have = set(pq.read_schema(cells_path).names)
        missing = [c for c in _CELL_COLUMNS if c not in have]
        if missing:
            raise MissingColumnError(f"{cells_path}: missing columns {', '.join(missing)}")
        cells = pd.read_parquet(cells_path, columns=_CELL_COLUMNS)
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        if isinstance(exc, MissingColumnError):
            raise
        raise RunError(f"{cells_path}: not a readable Parquet file ({first_line(exc)})") from None
    cells["regency_code"] = cells["regency_code"].astype("string")
    cells["regency_name"] = cells["regency_name"].astype("string")
    return cells.reset_index(drop=True), manifest


def _select_regency(cells: pd.DataFrame, regency: str | None, cells_path: Path) -> pd.DataFrame:
    if regency is None:
        return cells
    code = str(regency).strip()
    if (cells["regency_code"] == code).any():
        return cells[cells["regency_code"] == code].reset_index(drop=True)
    known = boundaries.regencies()
    if code in set(known["regency_code"]):
        name = known.loc[known["regency_code"] == code, "regency_name"].iat[0]
        raise InputError(f"{cells_path}: regency {code} ({name}) has no households in this run")
    raise InputError(f"unknown regency code {code!r}: expected a BPS 4-digit Kalimantan "
                     "regency code such as 6111 (Kayong Utara)")


def demand_weights(cells: pd.DataFrame, demand: str) -> np.ndarray:
    """Return the demand weight of each cell.

    Parameters
    ----------
    cells
        Cells with ``extreme_households`` and ``households_desil_1`` .. ``_4``.
    demand
        ``"extreme"`` (extreme-poor households) or ``"weighted"`` (desil 1-4 households
        weighted by ``DEMAND_WEIGHTS``: 1, 0.5, 0.25, 0.125).

    Returns
    -------
    numpy.ndarray
        float64 weights, one per cell.
    """
    if demand == "extreme":
        return cells["extreme_households"].to_numpy(dtype=np.float64)
    if demand == "weighted":
        return sum(wt * cells[f"households_desil_{d}"].to_numpy(dtype=np.float64)
                   for d, wt in DEMAND_WEIGHTS.items())
    raise InputError(f"unknown demand {demand!r}: use extreme or weighted")


class _CoverageModel:
    """The run's travel model: least-cost over friction.tif, else straight line."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any]) -> None:
        path = run_dir / FRICTION_FILE
        self.surface = FrictionSurface.from_file(path) if path.exists() else None
        self.method = "least-cost" if self.surface is not None else "straight-line"
        speed = (manifest.get("travel_time") or {}).get("speed_kmh")
        self.speed_kmh = float(speed) if speed else STRAIGHT_LINE_SPEED_KMH
        if self.surface is None:
            logger.warning("%s has no %s: coverage uses straight-line distance at %.0f km/h",
                           run_dir, FRICTION_FILE, self.speed_kmh)

    def coverage(self, src: pd.DataFrame, dst: pd.DataFrame, max_minutes: float, *,
                 surface: FrictionSurface | None = None) -> Coverage:
        args = (src["lon"].to_numpy(float), src["lat"].to_numpy(float),
                dst["lon"].to_numpy(float), dst["lat"].to_numpy(float))
        if self.surface is None:
            return straight_line_coverage(*args, max_minutes=max_minutes,
                                          speed_kmh=self.speed_kmh)
        return travel_coverage(surface or self.surface, *args, max_minutes=max_minutes)


def _existing(run_dir: Path, facility_type: str) -> pd.DataFrame:
    path = run_dir / FACILITIES_FILE
    if not path.exists():
        logger.warning("%s not found: no existing facilities", path)
        return pd.DataFrame({"lon": [], "lat": []})
    fac = gpd.read_parquet(path)
    if fac.crs is None:
        raise CRSError(f"{path}: facilities have no CRS")
    slug = type_slug(facility_type)
    slugs = fac["type"].astype(str).map(type_slug)
    if not (slugs == slug).any():
        logger.warning("%s has no %s facilities (types: %s): nothing counts as already served",
                       path, slug, ", ".join(sorted(slugs.unique())) or "none")
    fac = fac[slugs == slug]
    fac = fac[fac.geometry.notna() & ~fac.geometry.is_empty]
    if fac.crs.to_epsg() != 4326:
        fac = fac.to_crs(WGS84)
    pts = fac.geometry.representative_point()
    return pd.DataFrame({"lon": pts.x.to_numpy(), "lat": pts.y.to_numpy()})


def _default_candidates(cells: pd.DataFrame, weights: np.ndarray, demand: pd.DataFrame,
                        demand_w: np.ndarray, travel: _CoverageModel, max_minutes: float,
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


def _site_limit(count: int | None, budget: float | None, cost: float | None,
                file_costs: np.ndarray, candidates: str | Path | None,
                ) -> tuple[int | None, float | None]:
    """Return ``(k, budget)`` for the selection: a site count, or a cost budget."""
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


def plan_sites(run_dir: str | Path, *, facility_type: str, max_minutes: float,
               count: int | None = None, budget: float | None = None,
               cost: float | None = None, candidates: str | Path | None = None,
               method: str = "greedy", time_limit: float = DEFAULT_TIME_LIMIT,
               regency: str | None = None, demand: str = "extreme",
               out: str | Path | None = None, plot: str | Path | None = None,
               candidate_limit: int = DEFAULT_CANDIDATE_LIMIT) -> SitesPlan:
    """Choose sites for new facilities of a type and write the outputs.

    Parameters
    ----------
    run_dir
        A run directory (``cells.parquet``, ``facilities.parquet``, ``friction.tif`` when
        the build had one, ``manifest.json``).
    facility_type
        Facility type (``puskesmas``, ``posyandu``, ``school``, ``water_point`` or any type
        of ``facilities.parquet``); existing ones already cover what they reach.
    max_minutes
        A cell is covered when a site is at most this many minutes away.
    count
        Number of sites to choose. Exclusive with ``budget``.
    budget, cost
        Budget and cost of one site in Rupiah: ``count = floor(budget / cost)``. With a
        candidates file holding a ``cost`` column, the budget constrains the sum of the
        chosen sites' costs (``cost`` fills candidates without one).
    candidates
        Points file of candidate sites (see :func:`read_candidates`); default the populated
        cell centres of the run (of ``regency``), thinned to ``candidate_limit`` by reach.
    method
        ``"greedy"`` (lazy greedy with an upper bound) or ``"exact"`` (HiGHS MILP).
    time_limit
        Seconds for the exact solver.
    regency
        BPS 4-digit regency code restricting demand and default candidates.
    demand
        ``"extreme"`` or ``"weighted"`` (see :func:`demand_weights`).
    out
        GeoJSON output (default ``RUNDIR/sites/sites_<type>.geojson``); the GeoParquet
        (``.parquet``) and JSON sidecar (``.json``) are written beside it.
    plot
        Coverage-curve PNG (default ``<out stem>_coverage.png`` beside ``out``).
    candidate_limit
        Most default candidates scored exactly.

    Returns
    -------
    SitesPlan
        The sites, the selection result, the metadata and the written paths.

    Examples
    --------
    >>> plan = plan_sites("run", facility_type="puskesmas", count=10,
    ...                   max_minutes=60)                                # doctest: +SKIP
    >>> plan.sites[["rank", "new_extreme_households"]]                   # doctest: +SKIP
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    run_dir = Path(run_dir)
    type_slug(facility_type)  # a type with no letters or digits is an error
    if method not in ("greedy", "exact"):
        raise InputError(f"unknown method {method!r}: use greedy or exact")
    if not max_minutes > 0:
        raise InputError(f"max_minutes must be > 0, got {max_minutes}")
    if (count is None) == (budget is None):
        raise InputError("give either a site count or a budget with a cost per site")
    if count is not None and count < 1:
        raise InputError(f"site count must be >= 1, got {count}")
    _check_out(out)
    cells, manifest = _load_run(run_dir)
    cand = read_candidates(candidates) if candidates is not None else None
    if cand is not None:
        _check_candidates_near(cand, cells, candidates)
    cells = _select_regency(cells, regency, run_dir / CELLS_FILE)
    weights_all = demand_weights(cells, demand)
    file_costs = cand["cost"].to_numpy(dtype=float) if cand is not None else np.zeros(0)
    k, use_budget = _site_limit(count, budget, cost, file_costs, candidates)
    travel = _CoverageModel(run_dir, manifest)
    timings["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    existing = _existing(run_dir, facility_type)
    served = travel.coverage(existing, cells, max_minutes).covered() if len(existing) else \
        np.zeros(len(cells), dtype=bool)
    open_cells = cells.loc[~served].reset_index(drop=True)
    w = weights_all[~served]
    timings["existing_coverage"] = time.perf_counter() - t

    t = time.perf_counter()
    if cand is not None:
        n_considered = len(cand)
    else:
        cand, n_considered = _default_candidates(cells, weights_all, open_cells, w, travel,
                                                 max_minutes, candidate_limit)
        cand = cand.rename(columns={"h3": "candidate_id"})
        cand["name"] = pd.Series(pd.NA, index=cand.index, dtype="string")
        cand["cost"] = np.nan
    costs = cand["cost"].to_numpy(dtype=float)
    if cost is not None:
        costs = np.where(np.isfinite(costs), costs, float(cost))
    timings["candidates"] = time.perf_counter() - t

    t = time.perf_counter()
    cov = travel.coverage(cand, open_cells, max_minutes)
    timings["coverage"] = time.perf_counter() - t

    t = time.perf_counter()
    select_costs = costs if use_budget is not None else None
    if method == "exact":
        result = exact_cover(cov.matrix, w, k=k, costs=select_costs, budget=use_budget,
                             time_limit=time_limit)
    else:
        result = greedy_cover(cov.matrix, w, k=k, costs=select_costs, budget=use_budget,
                              lp_time_limit=min(GREEDY_LP_SECONDS, time_limit))
    timings["selection"] = time.perf_counter() - t

    sites = _site_table(cand, cov, open_cells, w, result, costs=costs,
                        facility_type=facility_type, max_minutes=max_minutes,
                        method=method, travel_method=travel.method, demand=demand,
                        remaining=float(open_cells["extreme_households"].sum()))
    totals = {
        "extreme_households": int(cells["extreme_households"].sum()),
        "extreme_households_served_by_existing": int(cells.loc[served,
                                                               "extreme_households"].sum()),
        "extreme_households_remaining": int(open_cells["extreme_households"].sum()),
        "extreme_households_newly_covered": int(sites["new_extreme_households"].sum()),
        "persons_newly_covered": int(sites["new_persons_covered"].sum()),
        "demand_cells": len(cells), "demand_cells_served_by_existing": int(served.sum()),
        "existing_facilities": len(existing),
    }
    metadata = {
        "run_id": manifest.get("run_id"), "run_dir": str(run_dir),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine_version": __version__,
        "parameters": {
            "facility_type": facility_type, "max_minutes": max_minutes, "count": count,
            "budget_rp": budget, "cost_rp": cost, "sites_allowed": k,
            "per_candidate_costs": use_budget is not None, "method": method,
            "time_limit_s": time_limit if method == "exact" else None, "regency": regency,
            "demand": demand,
            "demand_weights": ({str(d): v for d, v in DEMAND_WEIGHTS.items()}
                               if demand == "weighted" else {"1": 1.0}),
            "candidates": str(candidates) if candidates is not None else "populated cells",
            "candidates_considered": n_considered, "candidates_scored": len(cand),
        },
        "travel": {"method": travel.method,
                   "friction": str(run_dir / FRICTION_FILE) if travel.surface else None,
                   "speed_kmh": travel.speed_kmh if travel.surface is None else None},
        "result": {"method": result.method, "status": result.status,
                   "objective": result.objective, "bound": _finite(result.bound),
                   "gap": _finite(result.gap), "sites": len(result.order),
                   "details": {k2: _finite(v) if isinstance(v, float) else v
                               for k2, v in result.details.items()}},
        "totals": totals,
    }
    paths = _write_outputs(run_dir, facility_type, sites, metadata, out=out, plot=plot,
                           timings=timings, t0=t0)
    return SitesPlan(sites=sites, result=result, metadata=metadata, paths=paths)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _site_table(cand: pd.DataFrame, cov: Coverage, cells: pd.DataFrame, w: np.ndarray,
                result: SitingResult, *, costs: np.ndarray, facility_type: str,
                max_minutes: float, method: str, travel_method: str, demand: str,
                remaining: float) -> gpd.GeoDataFrame:
    """One row per chosen site with what it newly covers (cells no earlier site covers)."""
    taken = np.zeros(cov.shape[1], dtype=bool)
    ext = cells["extreme_households"].to_numpy()
    cols: dict[str, list[float]] = {k: [] for k in (
        "new_extreme_households", "new_extreme_persons", "new_households",
        "new_persons_covered", "new_demand", "new_cells")}
    ext_p, hh, persons = (cells[c].to_numpy() for c in ("extreme_persons", "households",
                                                       "persons"))
    m = cov.matrix
    for j in result.order:  # one step per chosen site
        reach = m.indices[m.indptr[j]:m.indptr[j + 1]]
        newly = reach[~taken[reach]]
        taken[newly] = True
        cols["new_extreme_households"].append(int(ext[newly].sum()))
        cols["new_extreme_persons"].append(int(ext_p[newly].sum()))
        cols["new_households"].append(int(hh[newly].sum()))
        cols["new_persons_covered"].append(int(persons[newly].sum()))
        cols["new_demand"].append(float(w[newly].sum()))
        cols["new_cells"].append(len(newly))
    c = cand.iloc[result.order].reset_index(drop=True)
    out = pd.DataFrame({"rank": np.arange(1, len(c) + 1), "candidate_id": c["candidate_id"],
                        "name": c["name"], "regency_code": c["regency_code"],
                        "regency_name": c["regency_name"], "lon": c["lon"], "lat": c["lat"]})
    for key, vals in cols.items():
        out[key] = np.asarray(vals, dtype=float if key == "new_demand" else np.int64)
    out["cumulative_extreme_households"] = out["new_extreme_households"].cumsum()
    out["covered_persons"] = out["new_persons_covered"].cumsum()
    out["pct_remaining_covered"] = (100.0 * out["cumulative_extreme_households"] / remaining
                                    if remaining > 0 else 0.0)
    if demand == "weighted":
        out["cumulative_demand"] = out["new_demand"].cumsum()
    else:
        out = out.drop(columns="new_demand")
    site_costs = costs[result.order]
    if np.isfinite(site_costs).all() and len(site_costs):
        out["cost"] = site_costs
        out["cumulative_cost"] = np.cumsum(site_costs)
    out["facility_type"] = facility_type
    out["method"] = method
    out["max_minutes"] = float(max_minutes)
    out["travel_method"] = travel_method
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(out["lon"], out["lat"]), crs=WGS84)


def _write_outputs(run_dir: Path, facility_type: str, sites: gpd.GeoDataFrame,
                   metadata: dict[str, Any], *, out: str | Path | None,
                   plot: str | Path | None, timings: dict[str, float],
                   t0: float) -> dict[str, Path]:
    stem = f"sites_{type_slug(facility_type)}"
    web = run_dir / SITES_DIR / f"{stem}.parquet"
    out_p = Path(out) if out is not None else run_dir / SITES_DIR / f"{stem}.geojson"
    if out_p.suffix.lower() not in (".geojson", ".parquet"):
        raise InputError(f"{out_p}: output must end in .geojson (a .parquet is written beside)")
    paths = {"geojson": out_p.with_suffix(".geojson"), "parquet": out_p.with_suffix(".parquet"),
             "json": out_p.with_suffix(".json"),
             "plot": Path(plot) if plot is not None else
             out_p.with_name(f"{out_p.stem}_coverage.png"), "web": web}
    t = time.perf_counter()
    with atomic_path(paths["geojson"]) as tmp:
        sites.to_file(tmp, driver="GeoJSON", engine="pyogrio")
    for target in {paths["parquet"], web}:
        with atomic_path(target) as tmp:
            sites.to_parquet(tmp)
    _plot_curve(sites, metadata, paths["plot"])
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    metadata["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
    metadata["outputs"] = {k: str(v) for k, v in paths.items()}
    write_json(paths["json"], metadata)
    if web != paths["parquet"]:
        write_json(web.with_suffix(".json"), metadata)
    logger.info("wrote %d sites to %s", len(sites), paths["geojson"])
    return paths


def _plot_curve(sites: gpd.GeoDataFrame, metadata: dict[str, Any], path: Path) -> None:
    """Write the coverage curve: extreme-poor households newly covered vs number of sites."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, tot = metadata["parameters"], metadata["totals"]
    x = np.arange(len(sites) + 1)
    y = np.concatenate([[0], sites["cumulative_extreme_households"].to_numpy()])
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(x, y, marker="o", ms=3, color="#b2182b")
    ax.axhline(tot["extreme_households_remaining"], color="grey", ls="--", lw=1,
               label=f"not yet served: {tot['extreme_households_remaining']:,}")
    ax.set_xlabel("number of new sites")
    ax.set_ylabel("extreme-poor households newly covered")
    ax.set_title(f"{p['facility_type']}: within {p['max_minutes']:g} min "
                 f"({metadata['travel']['method']}, {metadata['result']['method']})", fontsize=10)
    ax.set_xlim(0, max(len(sites), 1))
    ax.set_ylim(0, max(tot["extreme_households_remaining"], 1) * 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


__all__ = ["SitesPlan", "plan_sites", "read_candidates", "demand_weights", "count_from_budget",
           "DEMAND_WEIGHTS", "DEFAULT_CANDIDATE_LIMIT"]
