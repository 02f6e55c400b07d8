"""``kantong plan``: a budget across pockets and strategies, and the targets before and after.

:func:`plan_budget` reads a run with pockets (``cells.parquet`` with ``pocket_id``,
``pockets.parquet``), the unit costs (:class:`~.plan_costs.PlanCosts`) and a budget, and
chooses per pocket part (and per regency outside the pockets) how many households get
each intervention and how many new facilities of each type to build (:mod:`.plan_model`):
the mix reaching the most extreme-poor households within the budget, or (``meet_targets``)
the cheapest mix meeting the programme targets in every regency. New facilities of a type
go where :func:`~kantong.engine.sites.solvers.greedy_cover` places them inside the pocket
(existing facilities of the type count as already serving their surroundings).

Outputs (``RUNDIR/plan/`` or ``out``): ``plan_units.csv`` (per pocket part and outside
pockets), ``plan_regencies.csv`` (money per strategy, sites, households reached, targets
before and after), ``plan.geojson`` + ``plan.parquet`` (pocket polygons with their plan),
``plan_sites.geojson`` + ``.parquet`` (the new facilities, named), ``plan.json`` and
``plan_curve.png`` (households reached against the budget).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from kantong.engine import __version__
from kantong.engine.atomic import atomic_dir, atomic_path, claim_dir, write_json
from kantong.engine.compare.targets import TARGETS
from kantong.engine.constants import CELLS_FILE, POCKETS_FILE, WGS84
from kantong.engine.errors import InputError, RunError
from kantong.engine.plots import new_figure, save_png
from kantong.engine.rundir import Timer, update_run, verify_run
from kantong.engine.sites.demand import CoverageModel, existing_facilities
from kantong.engine.sites.places import name_places
from kantong.engine.sites.plan_costs import HOUSEHOLD_INTERVENTIONS, PlanCosts
from kantong.engine.sites.plan_model import solve_plan
from kantong.engine.sites.solvers import greedy_cover

logger = logging.getLogger(__name__)

#: Output folder of the plan inside the run directory.
PLAN_DIR: Final = "plan"
#: Most cells of a pocket part scored as candidate sites (the most extreme-poor first).
CANDIDATES_PER_POCKET: Final = 400
#: Budget fractions of the curve PNG.
CURVE_FRACTIONS: Final = (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)
_COUNTS: Final = ["households", "persons", "extreme_households", "extreme_persons",
                  "n_no_improved_water", "n_no_improved_sanitation", "n_child_out_of_school"]
_STRATEGY_NAMES: Final = {1: "reduce expenditure", 2: "raise income", 3: "remove pockets"}


@dataclass(frozen=True, eq=False)
class BudgetPlan:
    """The outcome of :func:`plan_budget`.

    Attributes
    ----------
    units
        One row per pocket part / outside-pocket remainder: counts, households per
        intervention, ``rp_strategy_<1|2|3>``, ``sites_<type>``, ``reached``.
    regencies
        Per regency: money per strategy, sites, households reached, and each target
        indicator ``<key>_before`` / ``<key>_after``.
    sites
        The new facilities (points, named).
    metadata
        The JSON sidecar.
    paths
        Written files.
    """

    units: pd.DataFrame
    regencies: pd.DataFrame
    sites: gpd.GeoDataFrame
    metadata: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


def _load(run_dir: Path) -> pd.DataFrame:
    path = run_dir / CELLS_FILE
    if not path.exists():
        raise RunError(f"{run_dir}: not a run directory (no {CELLS_FILE})")
    have = set(pq.read_schema(path).names)
    if "pocket_id" not in have:
        raise RunError(f"{path}: no pocket_id column; run `kantong pockets --run {run_dir}`")
    need = ["h3", "lon", "lat", "pocket_id", "regency_code", "regency_name", *_COUNTS]
    missing = [c for c in need if c not in have]
    if missing:
        raise RunError(f"{path}: missing columns {', '.join(missing)}")
    cells = pd.read_parquet(path, columns=need)
    cells["pocket"] = pd.to_numeric(cells["pocket_id"], errors="coerce").fillna(0).astype(int)
    cells["regency_code"] = cells["regency_code"].astype("string")
    return cells


def _units(cells: pd.DataFrame) -> pd.DataFrame:
    """Pocket parts per regency, and one remainder per regency outside the pockets."""
    units = (cells.groupby(["pocket", "regency_code"], sort=True)
             .agg(regency_name=("regency_name", "first"), cells=("h3", "size"),
                  **{c: (c, "sum") for c in _COUNTS}).reset_index())
    units = units[units["households"] > 0].reset_index(drop=True)
    units["unit"] = np.where(units["pocket"] > 0, "pocket " + units["pocket"].astype(str),
                             "outside pockets")
    return units


def _site_gains(run_dir: Path, cells: pd.DataFrame, units: pd.DataFrame,
                costs: PlanCosts, manifest: dict) -> tuple[dict, dict]:
    """Greedy coverage gains of new facilities inside each pocket part."""
    gains, where = {}, {}
    if not costs.facilities:
        return gains, where
    model = CoverageModel(run_dir, manifest)
    for fac in costs.facilities:
        ex = existing_facilities(run_dir, fac.facility_type, None).points
        for u, unit in units[units["pocket"] > 0].iterrows():  # one pocket part at a time
            part = cells[(cells["pocket"] == unit["pocket"])
                         & (cells["regency_code"] == unit["regency_code"])]
            part = part.sort_values("h3").reset_index(drop=True)
            served = model.coverage(ex, part, fac.max_minutes).covered() if len(ex) else \
                np.zeros(len(part), dtype=bool)
            open_ = part.loc[~served].reset_index(drop=True)
            cand = part[part["households"] > 0].sort_values(
                ["extreme_households", "h3"], ascending=[False, True], kind="stable")
            cand = cand.head(CANDIDATES_PER_POCKET).sort_values("h3").reset_index(drop=True)
            if len(open_) == 0 or len(cand) == 0:
                continue
            cov = model.coverage(cand, open_, fac.max_minutes)
            res = greedy_cover(cov.matrix, open_["extreme_households"].to_numpy(float),
                               k=fac.max_per_pocket, bound=False)
            if len(res.order):
                gains[(u, fac.facility_type)] = res.gains
                where[(u, fac.facility_type)] = cand.iloc[res.order][["h3", "lon", "lat"]]
    return gains, where


def plan_budget(run_dir: str | Path, costs: PlanCosts, *, budget: float | None = None,
                meet_targets: bool = False, out: str | Path | None = None,
                time_limit: float = 60.0, trust_run: bool = False) -> BudgetPlan:
    """Plan a budget across pockets and strategies and write the outputs.

    Parameters
    ----------
    run_dir
        A run directory with pockets (``kantong build`` / ``kantong pockets``).
    costs
        Unit costs (:meth:`PlanCosts.from_toml`).
    budget
        Rupiah available; required unless ``meet_targets``.
    meet_targets
        Find the cheapest mix meeting the programme targets in every regency instead.
    out
        Output folder outside the run; default ``RUNDIR/plan``, written with the run
        updated as one unit and resealed (:func:`~kantong.engine.rundir.update_run`).
    time_limit
        Seconds for HiGHS.
    trust_run
        Skip the SHA-256 check of the run's files.

    Returns
    -------
    BudgetPlan

    Examples
    --------
    >>> costs = PlanCosts.from_toml("costs.toml")                       # doctest: +SKIP
    >>> plan = plan_budget("run61", costs, budget=76e9)                 # doctest: +SKIP
    >>> plan.regencies[["regency_name", "rp_strategy_1", "reached"]]    # doctest: +SKIP
    """
    timer = Timer()
    run_dir = Path(run_dir)
    if budget is not None and not budget > 0:
        raise InputError(f"budget must be > 0 Rupiah, got {budget}")
    if budget is None and not meet_targets:
        raise InputError("give a budget (Rupiah), or meet the targets at least cost")
    folder = _out_folder(run_dir, out)
    with timer("load"):
        manifest = verify_run(run_dir, trust=trust_run)
        cells = _load(run_dir)
        units = _units(cells)
    with timer("sites"):
        gains, where = _site_gains(run_dir, cells, units, costs, manifest)
    with timer("solve"):
        sol = solve_plan(units, gains, costs, budget=budget, meet_targets=meet_targets,
                         time_limit=time_limit)
    table = _unit_table(units, sol, costs)
    regencies = _regency_table(table, costs)
    sites = _site_points(units, sol.chosen, where, gains)
    curve = _curve(units, gains, costs, budget, time_limit) if not meet_targets else []
    metadata = {
        "run_id": manifest.get("run_id"), "run_dir": str(run_dir),
        "engine_version": __version__, "mode": "targets" if meet_targets else "budget",
        "budget_rp": budget, "costs": {"household": costs.household,
                                       "facilities": [vars(f) for f in costs.facilities],
                                       "source": costs.source},
        "result": {"status": sol.status, "objective": sol.objective,
                   "bound": sol.bound if sol.bound == sol.bound else None, "gap": sol.gap},
        "totals": {"spent_rp": float(table["rp_total"].sum()),
                   **{f"rp_strategy_{s}": float(table[f"rp_strategy_{s}"].sum())
                      for s in (1, 2, 3)},
                   "extreme_households": int(units["extreme_households"].sum()),
                   "reached": float(table["reached"].sum()),
                   "lifted": float(table["lifted"].sum()), "sites": len(sites)},
        "curve": curve,
    }
    with timer("write"):
        if folder is None:  # inside the run: update it as one unit, resealed
            with update_run(run_dir, verify=False, output_of="plan") as tmp:
                paths = _write(tmp, tmp / PLAN_DIR, table, regencies, sites, metadata, timer,
                               shown=run_dir / PLAN_DIR)
            paths = {k: run_dir / PLAN_DIR / p.name for k, p in paths.items()}
        else:
            with atomic_dir(folder) as tmp:  # the folder is swapped in as one unit
                paths = _write(run_dir, tmp, table, regencies, sites, metadata, timer,
                               shown=folder)
            paths = {k: folder / p.name for k, p in paths.items()}
    return BudgetPlan(units=table, regencies=regencies, sites=sites, metadata=metadata,
                      paths=paths)


def _unit_table(units: pd.DataFrame, sol, costs: PlanCosts) -> pd.DataFrame:
    table = units.copy()
    amounts = sol.amounts.reindex(units.index).fillna(0.0)
    for key in HOUSEHOLD_INTERVENTIONS:
        table[key] = amounts[key].round(6) if key in amounts else 0.0
    for s in (1, 2, 3):
        table[f"rp_strategy_{s}"] = sum(
            table[k] * c for k, c in costs.household.items() if HOUSEHOLD_INTERVENTIONS[k][0] == s
        ) if any(HOUSEHOLD_INTERVENTIONS[k][0] == s for k in costs.household) else 0.0
    for fac in costs.facilities:
        n = pd.Series(0, index=table.index)
        for u, ftype, _ in sol.chosen:
            if ftype == fac.facility_type:
                n[u] += 1
        table[f"sites_{fac.facility_type}"] = n
        table["rp_strategy_3"] = table["rp_strategy_3"] + n * fac.cost
    table["rp_total"] = table[["rp_strategy_1", "rp_strategy_2", "rp_strategy_3"]].sum(axis=1)
    table["lifted"] = table["assistance"] + table["income"]
    if "reached" in amounts:
        table["reached"] = amounts["reached"]
    else:  # targets mode: households lifted plus the extreme share of services
        share = np.divide(table["extreme_households"], table["households"],
                          out=np.zeros(len(table)), where=table["households"] > 0)
        table["reached"] = np.minimum(table["extreme_households"], table["lifted"] + share * (
            table["water"] + table["sanitation"] + table["education"]))
    return table


def _regency_table(table: pd.DataFrame, costs: PlanCosts) -> pd.DataFrame:
    """Money, sites, reach and the targets before and after, per regency."""
    money = [c for c in table.columns if c.startswith(("rp_", "sites_"))]
    sums = _COUNTS + money + ["reached", "lifted", *HOUSEHOLD_INTERVENTIONS]
    reg = table.groupby("regency_code", sort=True).agg(
        regency_name=("regency_name", "first"), **{c: (c, "sum") for c in sums}).reset_index()
    per_person = np.divide(reg["extreme_persons"], reg["extreme_households"],
                           out=np.zeros(len(reg)), where=reg["extreme_households"] > 0)
    after = {"extreme_persons": reg["extreme_persons"] - reg["lifted"] * per_person,
             "n_no_improved_water": reg["n_no_improved_water"] - reg["water"],
             "n_no_improved_sanitation": reg["n_no_improved_sanitation"] - reg["sanitation"],
             "n_child_out_of_school": reg["n_child_out_of_school"] - reg["education"]}
    after = {k: np.maximum(v.round(9), 0.0) for k, v in after.items()}  # no -1e-19
    for t in TARGETS:
        reg[f"{t.key}_before"] = t.value(reg[t.numerator], reg[t.denominator])
        reg[f"{t.key}_after"] = t.value(after.get(t.numerator, reg[t.numerator]),
                                        reg[t.denominator])
        reg[f"{t.key}_target"] = t.target
        reg[f"{t.key}_met_after"] = t.gap(reg[f"{t.key}_after"]) <= 1e-9
    return reg


def _site_points(units: pd.DataFrame, chosen, where, gains) -> gpd.GeoDataFrame:
    rows = []
    for u, ftype, k in chosen:
        p = where[(u, ftype)].iloc[k]
        rows.append({"pocket_id": int(units.at[u, "pocket"]), "facility_type": ftype,
                     "rank_in_pocket": k + 1, "candidate_id": p["h3"], "lon": p["lon"],
                     "lat": p["lat"], "new_extreme_households": int(gains[(u, ftype)][k])})
    frame = pd.DataFrame(rows, columns=["pocket_id", "facility_type", "rank_in_pocket",
                                        "candidate_id", "lon", "lat",
                                        "new_extreme_households"])
    if len(frame):
        names = name_places(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
        frame = pd.concat([frame, names], axis=1)
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]),
                            crs=WGS84)


def _curve(units, gains, costs: PlanCosts, budget: float, time_limit: float) -> list:
    """Households reached at fractions of the budget (the PNG's points)."""
    out = []
    for f in CURVE_FRACTIONS:  # a handful of small MILPs
        if f == 0:
            out.append([0.0, 0.0])
            continue
        sol = solve_plan(units, gains, costs, budget=f * budget, meet_targets=False,
                         time_limit=min(time_limit, 10.0))
        out.append([f * budget, sol.objective])
    return out


def _out_folder(run_dir: Path, out: str | Path | None) -> Path | None:
    """Return the output folder, None for the default inside the run; refuse other run paths."""
    if out is None:
        return None
    folder = Path(out)
    inside = folder.resolve().is_relative_to(run_dir.resolve())
    if inside:
        raise InputError(f"{out}: inside the run directory the plan goes to RUNDIR/{PLAN_DIR} "
                         "(omit --out); give a folder outside the run")
    claim_dir(folder, command="plan", marker="plan.json", recognise=_previous_plan,
              inputs=[run_dir], what="run directory")
    return folder


#: Files ``kantong plan`` writes into its folder.
_PLAN_FILES = frozenset({"plan_units.csv", "plan_regencies.csv", "plan.geojson", "plan.parquet",
                         "plan_sites.geojson", "plan_sites.parquet", "plan.json",
                         "plan_curve.png"})


def _previous_plan(folder: Path) -> bool:
    """Whether ``folder`` holds a previous ``kantong plan`` output and nothing else."""
    names = {p.name for p in folder.iterdir() if not p.name.startswith(".kantong-")}
    return names <= _PLAN_FILES


def _write(run_dir: Path, folder: Path, table: pd.DataFrame,
           regencies: pd.DataFrame, sites: gpd.GeoDataFrame, metadata: dict,
           timer: Timer, *, shown: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"units": folder / "plan_units.csv", "regencies": folder / "plan_regencies.csv",
             "geojson": folder / "plan.geojson", "parquet": folder / "plan.parquet",
             "sites_geojson": folder / "plan_sites.geojson",
             "sites_parquet": folder / "plan_sites.parquet", "json": folder / "plan.json",
             "plot": folder / "plan_curve.png"}
    for key, frame in (("units", table), ("regencies", regencies)):
        with atomic_path(paths[key]) as tmp:
            frame.to_csv(tmp, index=False)
    pockets = gpd.read_parquet(run_dir / POCKETS_FILE)[["pocket_id", "geometry"]]
    per_pocket = table[table["pocket"] > 0].groupby("pocket", sort=True).agg(
        **{c: (c, "sum") for c in table.columns if c.startswith(("rp_", "sites_")) or c in (
            "reached", "lifted", "extreme_households", *HOUSEHOLD_INTERVENTIONS)})
    geo = pockets.merge(per_pocket, left_on="pocket_id", right_index=True, how="inner")
    for key, frame in (("geojson", geo), ("sites_geojson", sites)):
        with atomic_path(paths[key]) as tmp:
            frame.to_file(tmp, driver="GeoJSON", engine="pyogrio")
    for key, frame in (("parquet", geo), ("sites_parquet", sites)):
        with atomic_path(paths[key]) as tmp:
            frame.to_parquet(tmp)
    _plot(metadata, paths["plot"])
    metadata["timings_s"] = timer.as_dict()
    metadata["outputs"] = {k: str(shown / v.name) for k, v in paths.items()}
    write_json(paths["json"], metadata)
    logger.info("wrote the plan to %s", folder)
    return paths


def _plot(metadata: dict, path: Path) -> None:
    fig = new_figure(7, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    tot = metadata["totals"]
    if metadata["curve"]:
        x, y = np.asarray(metadata["curve"], dtype=float).T
        ax.plot(x / 1e9, y, marker="o", ms=3, color="#b2182b")
        ax.set_xlabel("budget (Rp billion)")
        ax.set_ylabel("extreme-poor households reached")
    else:
        spend = [tot[f"rp_strategy_{s}"] / 1e9 for s in (1, 2, 3)]
        ax.bar([_STRATEGY_NAMES[s] for s in (1, 2, 3)], spend, color="#08519c")
        ax.set_ylabel("Rp billion")
    ax.axhline(tot["extreme_households"] if metadata["curve"] else 0, color="grey", ls="--",
               lw=1)
    ax.set_title(f"plan across strategies ({metadata['mode']} mode)", fontsize=10)
    ax.grid(alpha=0.3)
    save_png(fig, path)


__all__ = ["BudgetPlan", "PLAN_DIR", "plan_budget"]
