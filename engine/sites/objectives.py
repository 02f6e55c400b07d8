"""The four objectives of ``kantong sites`` on the run's cells, and capacity.

Each function takes the prepared inputs (:class:`Inputs`) and returns a :class:`Choice`:
the candidates, the selection, the objective-specific per-site columns, the totals and
the curve to plot.

* :func:`coverage_objective` - ``max-coverage`` (MCLP, :mod:`.solvers`) and ``min-sites``
  (LSCP, :mod:`.lscp`): cells reached by an existing facility within ``max_minutes`` are
  served already; only new coverage counts.
* :func:`capacity_objective` - ``max-coverage`` with capacities (:mod:`.capacity`): existing
  facilities serve their nearest population up to their capacity, new sites where the unmet
  need is largest.
* :func:`travel_objective` - ``min-travel`` (p-median, :mod:`.pmedian`) and
  ``min-max-travel`` (p-center, :mod:`.pcenter`), trips capped at the horizon.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from kantong.engine.build.travel import type_slug
from kantong.engine.config import SitesConfig
from kantong.engine.errors import InputError
from kantong.engine.rundir import Timer
from kantong.engine.sites import capacity as cap_model
from kantong.engine.sites import lscp, pcenter, pmedian
from kantong.engine.sites.candidates import canonical_order, default_candidates
from kantong.engine.sites.coverage import Coverage
from kantong.engine.sites.demand import CoverageModel, Existing
from kantong.engine.sites.outputs import coverage_columns
from kantong.engine.sites.solvers import SitingResult, exact_cover, greedy_cover

logger = logging.getLogger(__name__)

#: Seconds given to the LP relaxation that bounds a greedy solution (gap "n/a" beyond).
GREEDY_LP_SECONDS = 2.0


@dataclass(frozen=True, eq=False)
class Inputs:
    """Everything an objective needs, prepared by :func:`~.run.plan_sites`."""

    cfg: SitesConfig
    cells: pd.DataFrame
    weights: np.ndarray
    travel: CoverageModel
    existing: Existing
    cand: pd.DataFrame | None
    k: int | None
    budget: float | None
    cost: float | None
    timer: Timer


@dataclass(frozen=True, eq=False)
class Choice:
    """What an objective chose and what to write about it."""

    cand: pd.DataFrame
    result: SitingResult
    columns: dict[str, Any]
    totals: dict[str, Any]
    curve: dict[str, Any]
    candidates_considered: int
    extra: dict[str, Any] = field(default_factory=dict)


def _candidates(inp: Inputs, demand: pd.DataFrame, demand_w: np.ndarray,
                minutes: float) -> tuple[pd.DataFrame, int]:
    """Return the candidates file, or the shortlisted populated cells, sorted by id."""
    if inp.cand is not None:
        return canonical_order(inp.cand), len(inp.cand)
    cand, n = default_candidates(inp.cells, inp.weights, demand, demand_w, inp.travel,
                                 minutes, inp.cfg.candidate_limit)
    cand = cand.rename(columns={"h3": "candidate_id"})
    cand["name"] = pd.Series(pd.NA, index=cand.index, dtype="string")
    cand["cost"] = np.nan
    return canonical_order(cand), n


def _costs(cand: pd.DataFrame, cost: float | None) -> np.ndarray:
    costs = cand["cost"].to_numpy(dtype=float)
    return np.where(np.isfinite(costs), costs, float(cost)) if cost is not None else costs


def _select_cover(inp: Inputs, cov: Coverage, w: np.ndarray, costs: np.ndarray, total: float,
                  by_existing: float, can: float) -> tuple[SitingResult, dict[str, Any]]:
    """Select for max-coverage (MCLP) or min-sites (LSCP, with the target share)."""
    cfg = inp.cfg
    extra: dict[str, Any] = {}
    if cfg.objective == "max-coverage":
        budget_costs = costs if inp.budget is not None else None
        if cfg.method == "exact":
            result = exact_cover(cov.matrix, w, k=inp.k, costs=budget_costs, budget=inp.budget,
                                 time_limit=cfg.time_limit)
        else:
            result = greedy_cover(cov.matrix, w, k=inp.k, costs=budget_costs, budget=inp.budget,
                                  lp_time_limit=min(GREEDY_LP_SECONDS, cfg.time_limit))
    else:
        need = cfg.target_share * total - by_existing
        extra = {"target_share": cfg.target_share, "demand_required_from_new": max(need, 0.0),
                 "demand_reachable_by_candidates": can,
                 "target_met": bool(need <= can + 1e-9)}
        need = min(max(need, 0.0), can)
        required = None if cfg.target_share >= 1.0 else need
        if cfg.method == "greedy":
            result = lscp.greedy_min_sites(cov.matrix, w, required=required,
                                           lp_time_limit=cfg.time_limit)
        else:
            result = lscp.exact_min_sites(cov.matrix, w, required=required,
                                          time_limit=cfg.time_limit)
    return result, extra


def coverage_objective(inp: Inputs) -> Choice:
    """Run ``max-coverage`` or ``min-sites`` (see the module docstring)."""
    cfg, cells, w_all = inp.cfg, inp.cells, inp.weights
    ex = inp.existing.points
    with inp.timer("existing_coverage"):
        served = inp.travel.coverage(ex, cells, cfg.max_minutes).covered() if len(ex) else \
            np.zeros(len(cells), dtype=bool)
    open_cells = cells.loc[~served].reset_index(drop=True)
    w = w_all[~served]
    with inp.timer("candidates"):
        cand, n_considered = _candidates(inp, open_cells, w, cfg.max_minutes)
    costs = _costs(cand, inp.cost)
    with inp.timer("coverage"):
        cov = inp.travel.coverage(cand, open_cells, cfg.max_minutes)
    reachable = cov.covered()
    with inp.timer("selection"):
        result, extra = _select_cover(inp, cov, w, costs, float(w_all.sum()),
                                      float(w_all[served].sum()), float(w[reachable].sum()))
    cols = coverage_columns(cov, open_cells, w, result.order)
    ext = open_cells["extreme_households"].to_numpy()
    remaining = float(ext.sum())
    cum = np.cumsum(cols["new_extreme_households"])
    columns = {k: v for k, v in cols.items() if k != "new_demand"}
    columns["cumulative_extreme_households"] = cum
    columns["covered_persons"] = np.cumsum(cols["new_persons_covered"])
    columns["pct_remaining_covered"] = 100.0 * cum / remaining if remaining > 0 else \
        np.zeros(len(cum))
    if cfg.demand == "weighted":
        columns["new_demand"] = cols["new_demand"]
        columns["cumulative_demand"] = np.cumsum(cols["new_demand"])
    totals = {
        "extreme_households": round(float(cells["extreme_households"].sum())),
        "extreme_households_served_by_existing": int(cells.loc[served,
                                                               "extreme_households"].sum()),
        "extreme_households_remaining": int(remaining),
        "extreme_households_newly_covered": int(cum[-1]) if len(cum) else 0,
        "extreme_households_unreachable": round(float(ext[~reachable].sum())),
        "persons_newly_covered": int(cols["new_persons_covered"].sum()),
        "demand_cells": len(cells), "demand_cells_served_by_existing": int(served.sum()),
        **extra,
    }
    curve = {"name": "coverage", "values": [0.0, *cum.tolist()],
             "ylabel": "extreme-poor households newly covered",
             "reference": remaining, "reference_label": f"not yet served: {int(remaining):,}"}
    return Choice(cand=cand, result=result, columns=columns, totals=totals, curve=curve,
                  candidates_considered=n_considered, extra={"costs": costs})


def read_capacities(cfg: SitesConfig) -> float:
    """Return the capacity of one new site of ``cfg.facility_type``.

    ``cfg.capacity`` when given, else the type's row of ``cfg.capacity_table`` (CSV with
    ``type`` and ``capacity`` columns; types compared as in the build).
    """
    if cfg.capacity > 0:
        return float(cfg.capacity)
    table = _capacity_table(cfg.capacity_table)
    slug = type_slug(cfg.facility_type)
    if slug not in table:
        raise InputError(f"{cfg.capacity_table}: no capacity for type {cfg.facility_type!r} "
                         f"(types: {', '.join(sorted(table)) or 'none'})")
    return table[slug]


def _capacity_table(path: str) -> dict[str, float]:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: capacity table not found")
    try:
        frame = pd.read_csv(p, dtype={"type": str})
    except (ValueError, OSError) as exc:
        raise InputError(f"{p}: cannot read the capacity table ({exc})") from None
    if not {"type", "capacity"} <= set(frame.columns):
        raise InputError(f"{p}: a capacity table needs type and capacity columns")
    cap = pd.to_numeric(frame["capacity"], errors="coerce")
    bad = cap.isna() | (cap <= 0) | frame["type"].isna()
    if bad.any():
        raise InputError(f"{p}: row {int(np.flatnonzero(bad.to_numpy())[0]) + 2} has no type or "
                         "a capacity that is not a number > 0")
    return dict(zip(frame["type"].map(type_slug), cap.astype(float), strict=True))


def capacity_objective(inp: Inputs) -> Choice:
    """Run ``max-coverage`` with capacities (see the module docstring)."""
    cfg, cells = inp.cfg, inp.cells
    new_cap = read_capacities(cfg)
    table = _capacity_table(cfg.capacity_table) if cfg.capacity_table else {}
    ex_default = table.get(type_slug(cfg.facility_type), new_cap)
    units = _units(cells, cfg.capacity_unit)
    ext = cells["extreme_households"].to_numpy(dtype=float)
    value = np.divide(ext, units, out=np.zeros(len(units)), where=units > 0)
    ex = inp.existing.points
    ex_cap = ex["capacity"].to_numpy(float) if "capacity" in ex.columns else \
        np.full(len(ex), np.nan)
    ex_cap = np.where(np.isfinite(ex_cap) & (ex_cap >= 0), ex_cap, ex_default)
    with inp.timer("existing_coverage"):
        ex_cov = inp.travel.coverage(ex, cells, cfg.max_minutes) if len(ex) else None
    if ex_cov is not None:  # AccessMod order: largest capacity first, ties by facility id
        proc = np.lexsort((np.arange(len(ex)), -ex_cap))
        alloc_ex = cap_model.allocate(ex_cov.minutes, units, ex_cap, order=proc)
        served_ex, reach_ex = alloc_ex.served, ex_cov.covered()
    else:
        served_ex, reach_ex = np.zeros(len(cells)), np.zeros(len(cells), dtype=bool)
    rem = np.maximum(units - served_ex, 0.0)
    need = rem > 0
    with inp.timer("candidates"):
        cand, n_considered = _candidates(inp, cells.loc[need].reset_index(drop=True),
                                         (rem * value)[need], cfg.max_minutes)
    costs = _costs(cand, inp.cost)
    with inp.timer("coverage"):
        cov = inp.travel.coverage(cand, cells, cfg.max_minutes)
    caps = np.full(len(cand), new_cap)
    solve = cap_model.exact_capacitated if cfg.method == "exact" else \
        cap_model.greedy_capacitated
    kwargs = {"time_limit": cfg.time_limit} if cfg.method == "exact" else {}
    with inp.timer("selection"):
        result, alloc = solve(cov.minutes, rem, value, caps, k=inp.k, **kwargs)
    served_new = alloc.served
    reach_new = np.zeros(len(cells), dtype=bool)
    if len(result.order):
        reach_new[cov.matrix[result.order].indices] = True
    ext_ex = float((served_ex * value).sum())
    ext_new = float((served_new * value).sum())
    total = float(ext.sum())
    out_before = float(ext[~reach_ex].sum())
    out_after = float(ext[~(reach_ex | reach_new)].sum())
    served_ext = np.asarray(result.gains, dtype=float)
    columns = {"capacity": caps[result.order], "served_units": alloc.used,
               "served_extreme_households": served_ext,
               "new_extreme_households": np.round(served_ext).astype(np.int64),
               "cumulative_extreme_households": np.round(np.cumsum(served_ext)).astype(np.int64)}
    totals = {
        "extreme_households": int(total), "capacity_unit": cfg.capacity_unit,
        "capacity_new_site": new_cap, "existing_capacity_total": float(ex_cap.sum()),
        "extreme_households_served_by_existing": round(ext_ex, 1),
        "extreme_households_served_by_new": round(ext_new, 1),
        "extreme_households_unserved_by_distance_before": round(out_before, 1),
        "extreme_households_unserved_by_capacity_before": round(total - ext_ex - out_before, 1),
        "extreme_households_unserved_by_distance": round(out_after, 1),
        "extreme_households_unserved_by_capacity": round(total - ext_ex - ext_new - out_after,
                                                         1),
        "extreme_households_remaining": round(total - ext_ex, 1),
    }
    curve = {"name": "coverage", "values": [0.0, *np.cumsum(served_ext).tolist()],
             "ylabel": "extreme-poor households newly served (capacity)",
             "reference": total - ext_ex,
             "reference_label": f"not served today: {total - ext_ex:,.0f}"}
    return Choice(cand=cand, result=result, columns=columns, totals=totals, curve=curve,
                  candidates_considered=n_considered, extra={"costs": costs})


def _units(cells: pd.DataFrame, unit: str) -> np.ndarray:
    """Return population units per cell: persons (at least the register's) or households."""
    if unit == "households":
        return cells["households"].to_numpy(dtype=float)
    persons = cells["persons"].to_numpy(dtype=float)
    if "population" in cells.columns:
        pop = pd.to_numeric(cells["population"], errors="coerce").fillna(0).to_numpy(float)
        return np.maximum(pop, persons)
    return persons


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Return the smallest value with at least ``q`` of the weight at or below it."""
    if len(values) == 0 or weights.sum() <= 0:
        return math.nan
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * cum[-1] - 1e-9)])


def _stats(times: np.ndarray, w: np.ndarray, horizon: float,
           reachable: np.ndarray) -> dict[str, float]:
    """Return the weighted mean and p90 of all trips and the longest reachable trip."""
    return {"mean": float((times * w).sum() / w.sum()) if w.sum() > 0 else math.nan,
            "p90": _weighted_quantile(times, w, 0.9),
            "max": float(times[reachable].max()) if reachable.any() else math.nan,
            "beyond": float(w[times >= horizon].sum())}


def _select_travel(inp: Inputs, times: sparse.csr_matrix, w: np.ndarray,
                   base: np.ndarray) -> SitingResult:
    """Select for min-travel (p-median) or min-max-travel (p-center)."""
    cfg = inp.cfg
    if cfg.objective == "min-travel":
        if cfg.method == "greedy":
            result = pmedian.greedy_min_travel(times, w, base, k=inp.k,
                                               lp_time_limit=GREEDY_LP_SECONDS)
        else:
            result = pmedian.exact_min_travel(times, w, base, k=inp.k,
                                              time_limit=cfg.time_limit)
    elif cfg.method == "greedy":
        result = pcenter.greedy_min_max_travel(times, w, base, k=inp.k)
    else:
        result = pcenter.exact_min_max_travel(times, w, base, k=inp.k,
                                              time_limit=cfg.time_limit)
    return result


def _existing_times(inp: Inputs, pts: pd.DataFrame, horizon: float) -> tuple[np.ndarray, str]:
    """Each point's travel minutes to the nearest existing facility (inf: none) and source.

    The build's ``travel_min_<type>`` column when the run has one (least-cost over the
    whole surface), else searches from the facilities up to the horizon.
    """
    column = f"travel_min_{type_slug(inp.cfg.facility_type)}"
    ex = inp.existing.points
    if column in pts.columns:
        return (pd.to_numeric(pts[column], errors="coerce").to_numpy(float),
                f"cells.parquet {column}")
    e = np.full(len(pts), np.inf)
    if not len(ex):
        return e, "no existing facilities"
    ex_cov = inp.travel.coverage(ex, pts, horizon)
    np.minimum.at(e, ex_cov.minutes.indices, ex_cov.minutes.data)
    return e, "computed from facilities.parquet"


def travel_objective(inp: Inputs) -> Choice:
    """Run ``min-travel`` or ``min-max-travel`` (see the module docstring)."""
    cfg, cells = inp.cfg, inp.cells
    horizon = cfg.max_minutes if cfg.max_minutes > 0 else cfg.travel_horizon_min
    keep = inp.weights > 0
    pts = cells.loc[keep].reset_index(drop=True)
    w = inp.weights[keep]
    with inp.timer("existing_coverage"):
        e, source = _existing_times(inp, pts, horizon)
    base = np.minimum(np.where(np.isfinite(e), e, horizon), horizon)
    with inp.timer("candidates"):
        cand, n_considered = _candidates(inp, pts, w * base, horizon)
    costs = _costs(cand, inp.cost)
    with inp.timer("coverage"):
        times = inp.travel.coverage(cand, pts, horizon, point_limits=base).minutes
    helped = np.zeros(len(pts), dtype=bool)
    helped[times.indices[times.data < base[times.indices]]] = True
    # beyond the horizon from every facility and every candidate: no choice changes them,
    # so they are reported apart and left out of the longest trip
    stuck = (base >= horizon) & ~helped
    with inp.timer("selection"):
        result = _select_travel(inp, times, np.where(stuck, 0.0, w) if
                                cfg.objective == "min-max-travel" else w, base)
    inst = pmedian.TravelSavings(times, w, base)
    ext = pts["extreme_households"].to_numpy(dtype=float)
    cur = base.copy()
    owner = np.full(len(pts), -1)
    steps = [_stats(cur, w, horizon, ~stuck)]
    for r, j in enumerate(result.order):  # one step per site: who it becomes nearest for
        s, e2 = inst.indptr[j], inst.indptr[j + 1]
        idx, tj = inst.cols[s:e2], inst.time[s:e2]
        better = tj < cur[idx]
        cur[idx[better]] = tj[better]
        owner[idx[better]] = r
        steps.append(_stats(cur, w, horizon, ~stuck))
    assigned = np.bincount(owner[owner >= 0], weights=ext[owner >= 0],
                           minlength=len(result.order)).astype(np.int64)
    columns = {"new_extreme_households": assigned,
               "cumulative_extreme_households": np.cumsum(assigned),
               "minutes_saved": np.asarray(result.gains, dtype=float),
               "mean_minutes_after": np.array([s["mean"] for s in steps[1:]]),
               "p90_minutes_after": np.array([s["p90"] for s in steps[1:]]),
               "max_minutes_after": np.array([s["max"] for s in steps[1:]])}
    before, after = steps[0], steps[-1]
    totals = {
        "extreme_households": round(float(cells["extreme_households"].sum())),
        "horizon_minutes": horizon, "existing_travel_source": source,
        "mean_minutes_before": before["mean"], "mean_minutes_after": after["mean"],
        "p90_minutes_before": before["p90"], "p90_minutes_after": after["p90"],
        "max_minutes_before": before["max"], "max_minutes_after": after["max"],
        "demand_beyond_horizon_before": before["beyond"],
        "demand_beyond_horizon_after": after["beyond"],
        "extreme_households_nearer_a_new_site": int(assigned.sum()),
        "extreme_households_out_of_reach": round(float(ext[stuck].sum())),
        "demand_cells": int(len(pts)),
    }
    key = "mean" if cfg.objective == "min-travel" else "max"
    curve = {"name": "travel", "values": [s[key] for s in steps],
             "ylabel": "mean travel minutes (household-weighted)" if key == "mean" else
             "longest trip, minutes",
             "reference": None}
    return Choice(cand=cand, result=result, columns=columns, totals=totals, curve=curve,
                  candidates_considered=n_considered, extra={"costs": costs})


__all__ = ["Choice", "Inputs", "capacity_objective", "coverage_objective",
           "read_capacities", "travel_objective"]
