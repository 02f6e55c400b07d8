"""Site planning on a run directory: ``kantong sites`` from settings to written outputs.

:func:`plan_sites` answers one of four questions for a facility type (``[sites]`` in
``kantong.toml``, :class:`~kantong.engine.config.SitesConfig`; CLI flags override it):

* ``max-coverage`` - where should the next K sites go so that the most extreme-poor
  households not yet served come within ``max_minutes``? (optionally with capacities)
* ``min-sites`` - how few sites bring every extreme-poor household (or a share) within
  ``max_minutes`` of an existing or new site?
* ``min-travel`` - which K sites minimise the household-weighted travel minutes to the
  nearest facility?
* ``min-max-travel`` - which K sites minimise the longest trip?

The stages: demand (:mod:`.demand`), candidates (:mod:`.candidates`), coverage
(:mod:`.coverage`), the objective (:mod:`.objectives` with the solvers :mod:`.solvers`,
:mod:`.lscp`, :mod:`.pmedian`, :mod:`.pcenter`, :mod:`.capacity`), and the outputs
(:mod:`.outputs`, site names from :mod:`.places`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np

from kantong.engine import __version__
from kantong.engine.build.travel import type_slug
from kantong.engine.config import SitesConfig
from kantong.engine.constants import CELLS_FILE, FRICTION_FILE
from kantong.engine.errors import InputError
from kantong.engine.rundir import Timer
from kantong.engine.sites.candidates import (
    DEFAULT_CANDIDATE_LIMIT,
    check_candidates_near,
    count_from_budget,
    read_candidates,
    site_limit,
)
from kantong.engine.sites.demand import (
    DEMAND_WEIGHTS,
    CoverageModel,
    demand_weights,
    existing_facilities,
    load_run,
    select_regency,
)
from kantong.engine.sites.objectives import (
    Inputs,
    capacity_objective,
    coverage_objective,
    travel_objective,
)
from kantong.engine.sites.outputs import check_out, site_frame, write_outputs
from kantong.engine.sites.solvers import SitingResult

logger = logging.getLogger(__name__)

#: Objectives whose count of sites is given (``min-sites`` finds it).
_COUNTED = ("max-coverage", "min-travel", "min-max-travel")


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


def resolve_settings(settings: SitesConfig | None = None, **changes: Any) -> SitesConfig:
    """Return ``settings`` (default ``SitesConfig()``) with keyword changes applied.

    ``None`` values are ignored; paths become strings. The method defaults to ``greedy``
    for ``max-coverage`` and ``exact`` for the other objectives.

    Examples
    --------
    >>> resolve_settings(objective="min-sites", max_minutes=30).method
    'exact'
    """
    cfg = settings or SitesConfig()
    names = {f.name for f in dataclasses.fields(SitesConfig)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise InputError(f"unknown site planning setting(s) {', '.join(unknown)}")
    clean = {k: str(v) if isinstance(v, Path) else v for k, v in changes.items()
             if v is not None}
    cfg = dataclasses.replace(cfg, **clean)
    if not cfg.method:
        cfg = dataclasses.replace(cfg, method="greedy" if cfg.objective == "max-coverage"
                                  else "exact")
    return cfg


def _validate(cfg: SitesConfig) -> None:
    """Raise ``InputError`` for settings that do not fit together."""
    type_slug(cfg.facility_type)  # a type with no letters or digits is an error
    obj = cfg.objective
    if obj in ("max-coverage", "min-sites") and not cfg.max_minutes > 0:
        raise InputError(f"--objective {obj} needs --max-minutes M > 0")
    if obj == "min-sites":
        if cfg.count or cfg.budget:
            raise InputError("--objective min-sites finds the number of sites: "
                             "drop --count / --budget")
    elif (cfg.count > 0) == (cfg.budget > 0):
        raise InputError("give either a site count or a budget with a cost per site")
    if cfg.target_share != 1.0 and obj != "min-sites":
        raise InputError("--target-share applies to --objective min-sites only")
    capacity = cfg.capacity > 0 or bool(cfg.capacity_table)
    if capacity and obj != "max-coverage":
        raise InputError("--capacity works with --objective max-coverage only")


def plan_sites(run_dir: str | Path, settings: SitesConfig | None = None, *,
               out: str | Path | None = None, plot: str | Path | None = None,
               trust_run: bool = False, **changes: Any) -> SitesPlan:
    """Choose sites for new facilities of a type and write the outputs.

    Parameters
    ----------
    run_dir
        A run directory (``cells.parquet``, ``facilities.parquet``, ``friction.tif`` when
        the build had one, ``manifest.json``).
    settings
        The ``[sites]`` settings (:class:`~kantong.engine.config.SitesConfig`); default
        the defaults.
    out
        GeoJSON output (default ``RUNDIR/sites/sites_<type>.geojson``); the GeoParquet
        (``.parquet``) and JSON sidecar (``.json``) are written beside it.
    plot
        Curve PNG (default ``<out stem>_coverage.png``, ``_travel.png`` for the travel
        objectives).
    trust_run
        Use the run even if its files do not match their SHA-256 hashes (``--trust-run``).
    **changes
        Settings to change, by ``SitesConfig`` field name (``facility_type=``,
        ``count=``, ``max_minutes=``, ``objective=`` ...); ``None`` values are ignored.

    Returns
    -------
    SitesPlan
        The sites, the selection result, the metadata and the written paths.

    Examples
    --------
    >>> plan = plan_sites("run", facility_type="puskesmas", count=10,
    ...                   max_minutes=60)                                # doctest: +SKIP
    >>> plan.sites[["rank", "village_name", "new_extreme_households"]]    # doctest: +SKIP
    """
    timer = Timer()
    run_dir = Path(run_dir)
    cfg = resolve_settings(settings, **changes)
    _validate(cfg)
    check_out(out)
    with timer("load"):
        cells, manifest = load_run(run_dir, trust=trust_run)
    cand = read_candidates(cfg.candidates) if cfg.candidates else None
    if cand is not None:
        check_candidates_near(cand, cells, cfg.candidates)
    regency = cfg.regency.strip() or None
    cells = select_regency(cells, regency, run_dir / CELLS_FILE)
    weights = demand_weights(cells, cfg.demand)
    file_costs = cand["cost"].to_numpy(dtype=float) if cand is not None else None
    cost = cfg.cost or None
    k, budget = None, None
    if cfg.objective in _COUNTED:
        k, budget = site_limit(cfg.count or None, cfg.budget or None, cost,
                               file_costs if file_costs is not None else np.zeros(0),
                               cfg.candidates)
        capacity = cfg.capacity > 0 or bool(cfg.capacity_table)
        if budget is not None and (cfg.objective != "max-coverage" or capacity):
            raise InputError("per-candidate costs with --budget work with --objective "
                             "max-coverage (without capacity) only; give --count")
    with timer("load"):
        travel = CoverageModel(run_dir, manifest)
        existing = existing_facilities(run_dir, cfg.facility_type, regency)
    inp = Inputs(cfg=cfg, cells=cells, weights=weights, travel=travel, existing=existing,
                 cand=cand, k=k, budget=budget, cost=cost, timer=timer)
    if cfg.objective in ("min-travel", "min-max-travel"):
        choice = travel_objective(inp)
    elif cfg.capacity > 0 or cfg.capacity_table:
        choice = capacity_objective(inp)
    else:
        choice = coverage_objective(inp)
    result = choice.result
    common = {"facility_type": cfg.facility_type, "objective": cfg.objective,
              "method": cfg.method, "max_minutes": float(cfg.max_minutes),
              "travel_method": travel.method}
    sites = site_frame(choice.cand, result.order, choice.columns, costs=choice.extra["costs"],
                       common=common)
    totals = {**choice.totals, "existing_facilities": existing.in_scope,
              "existing_facilities_used": len(existing.points)}
    metadata = {
        "run_id": manifest.get("run_id"), "run_dir": str(run_dir),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine_version": __version__,
        "parameters": {
            **dataclasses.asdict(cfg), "regency": regency, "count": cfg.count or None,
            "budget_rp": cfg.budget or None, "cost_rp": cost, "sites_allowed": k,
            "per_candidate_costs": budget is not None,
            "time_limit_s": cfg.time_limit if cfg.method == "exact" else None,
            "demand_weights": ({str(d): v for d, v in DEMAND_WEIGHTS.items()}
                               if cfg.demand == "weighted" else {"1": 1.0}),
            "candidates": cfg.candidates or "populated cells",
            "candidates_considered": choice.candidates_considered,
            "candidates_scored": len(choice.cand),
        },
        "travel": {"method": travel.method,
                   "friction": str(run_dir / FRICTION_FILE) if travel.surface else None,
                   "speed_kmh": travel.speed_kmh if travel.surface is None else None},
        "result": {"method": result.method, "status": result.status,
                   "objective": result.objective, "bound": _finite(result.bound),
                   "gap": _finite(result.gap), "sites": len(result.order),
                   "details": {k2: _finite(v) if isinstance(v, float) else v
                               for k2, v in result.details.items()}},
        "totals": totals, "curve": choice.curve,
    }
    paths = write_outputs(run_dir, cfg.facility_type, sites, metadata, out=out, plot=plot,
                          timer=timer)
    return SitesPlan(sites=sites, result=result, metadata=metadata, paths=paths)


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


__all__ = ["SitesPlan", "plan_sites", "resolve_settings", "read_candidates",
           "demand_weights", "count_from_budget", "DEMAND_WEIGHTS", "DEFAULT_CANDIDATE_LIMIT"]
