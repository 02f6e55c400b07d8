"""The plan across strategies as one mixed-integer program (HiGHS).

Units are the parts of poverty pockets in each regency, plus one unit per regency for
the households outside every pocket. Per unit ``u`` with ``E`` extreme-poor households,
``H`` households, ``W``/``S`` households without improved water/sanitation and ``C``
households with a child out of school, the variables are

* ``lift_a``, ``lift_i`` (whole households, strategy 1 assistance and strategy 2 income) with
  ``lift_a + lift_i <= E``: each lifts one extreme-poor household above the line;
* ``water <= W``, ``sanitation <= S`` (strategy 3) and ``education <= C`` (strategy 1);
* ``y[f, k]`` binary: the k-th new facility of type ``f`` in the pocket part, which brings
  ``g[f, k]`` more extreme-poor households within reach (the greedy coverage gains of
  :func:`~kantong.engine.sites.solvers.greedy_cover`, non-increasing, so ``y[f, k] <=
  y[f, k-1]``);
* ``reached <= E`` with ``reached <= lift_a + lift_i + sum g y + (E / H) (water +
  sanitation + education)``: interventions in a unit are assumed to reach different
  extreme-poor households until all are reached (the programme targets by name and
  address), and the household services reach the extreme poor in proportion.

**Budget mode** maximises ``sum reached`` with the total cost within the budget (a tiny
cost penalty picks the cheapest of equally good plans). **Targets mode** minimises the
total cost so that every regency meets extreme poverty 0 %, water and sanitation access
80 % and the school proxy 90 % (:data:`kantong.engine.compare.targets.TARGETS`); new
facilities do not move these indicators and are not bought in this mode.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from kantong.engine.errors import InputError
from kantong.engine.sites import milp
from kantong.engine.sites.plan_costs import HOUSEHOLD_INTERVENTIONS, PlanCosts

logger = logging.getLogger(__name__)

#: Household intervention -> the unit's count that bounds it.
_BOUND = {"assistance": "extreme_households", "income": "extreme_households",
          "water": "n_no_improved_water", "sanitation": "n_no_improved_sanitation",
          "education": "n_child_out_of_school"}
#: Targets mode: indicator -> (intervention(s), count column, share of households to reach).
TARGET_SHARES = {"water": ("n_no_improved_water", 0.80),
                 "sanitation": ("n_no_improved_sanitation", 0.80),
                 "education": ("n_child_out_of_school", 0.90)}


@dataclass(frozen=True, eq=False)
class PlanSolution:
    """Chosen amounts per unit.

    Attributes
    ----------
    amounts
        One row per unit: households per household intervention, ``reached``, and
        ``sites_<type>`` counts.
    chosen
        ``(unit, facility_type, k)`` of every facility bought.
    status, objective, bound, gap
        HiGHS's status, the objective (households reached, or Rupiah), its bound and gap.
    """

    amounts: pd.DataFrame
    chosen: list[tuple[int, str, int]]
    status: str
    objective: float
    bound: float
    gap: float


class _Columns:
    """Column bookkeeping of the model."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.upper: list[float] = []
        self.integer: list[bool] = []
        self.index: dict[tuple, int] = {}

    def add(self, key: tuple, cost: float, upper: float, integer: bool = False) -> int:
        self.index[key] = len(self.cost)
        self.cost.append(cost)
        self.upper.append(upper)
        self.integer.append(integer)
        return self.index[key]


def solve_plan(units: pd.DataFrame, gains: dict[tuple[int, str], np.ndarray],
               costs: PlanCosts, *, budget: float | None, meet_targets: bool,
               time_limit: float = 60.0) -> PlanSolution:
    """Solve the plan model (see the module docstring).

    Parameters
    ----------
    units
        One row per unit with ``regency_code``, ``households``, ``extreme_households``
        and the :data:`_BOUND` count columns.
    gains
        ``(unit row, facility type) -> gains`` of the 1st, 2nd, ... new facility.
    costs
        Unit costs.
    budget
        Rupiah available (budget mode; a cap in targets mode when given).
    meet_targets
        Targets mode instead of budget mode.
    time_limit
        Seconds for HiGHS.

    Returns
    -------
    PlanSolution

    Raises
    ------
    InputError
        A target cannot be met with the interventions that have a cost, or the budget
        is too small for the targets.
    """
    cols = _Columns()
    fac_cost = {f.facility_type: f.cost for f in costs.facilities}
    rows: list[tuple[dict[int, float], float, float]] = []  # (coefficients, lower, upper)
    total_cost: dict[int, float] = {}
    for u, unit in units.iterrows():
        e, h = float(unit["extreme_households"]), float(unit["households"])
        reach, lifts = {}, {}
        for key, c in costs.household.items():
            j = cols.add(("hh", u, key), 0.0, float(unit[_BOUND[key]]), integer=True)
            total_cost[j] = c
            if HOUSEHOLD_INTERVENTIONS[key][1] == "lifted":
                reach[j] = lifts[j] = 1.0
            elif h > 0:
                reach[j] = e / h
        if len(lifts) > 1:
            rows.append((lifts, -milp.INF, e))
        if not meet_targets:
            for ftype, g in ((f, gains.get((u, f), np.zeros(0))) for f in fac_cost):
                prev = None
                for k, gk in enumerate(g):
                    j = cols.add(("site", u, ftype, k), 0.0, 1.0, integer=True)
                    total_cost[j] = fac_cost[ftype]
                    reach[j] = float(gk)
                    if prev is not None:
                        rows.append(({j: 1.0, prev: -1.0}, -milp.INF, 0.0))
                    prev = j
            r = cols.add(("reached", u), 1.0, e)
            rows.append(({r: 1.0, **{j: -v for j, v in reach.items()}}, -milp.INF, 0.0))
    if meet_targets:
        _target_rows(units, cols, costs, rows)
        for j, c in total_cost.items():
            cols.cost[j] = c
        if budget is not None:
            rows.append((dict(total_cost), -milp.INF, float(budget)))
    else:
        if budget is None:
            raise InputError("budget mode needs a budget")
        rows.append((dict(total_cost), -milp.INF, float(budget)))
        for j, c in total_cost.items():  # the cheapest of equally good plans
            cols.cost[j] = -1e-3 * c / max(float(budget), 1.0)
    n = len(cols.cost)
    data, ri, ci = [], [], []
    lo, hi = [], []
    for r_i, (coef, low, up) in enumerate(rows):
        for j, v in coef.items():
            ri.append(r_i)
            ci.append(j)
            data.append(v)
        lo.append(low)
        hi.append(up)
    a = sparse.csr_matrix((data, (ri, ci)), shape=(len(rows), n))
    sol = milp.solve(np.asarray(cols.cost), a, np.asarray(lo), np.asarray(hi),
                     col_upper=np.asarray(cols.upper), integer=np.asarray(cols.integer),
                     maximize=not meet_targets, time_limit=time_limit,
                     rel_gap=1e-6)
    if not sol.feasible:
        if meet_targets:
            raise InputError("the targets cannot be met within the budget" if budget
                             else "the targets cannot be met with these interventions")
        raise InputError(f"no plan found ({sol.status})")
    return _solution(units, cols, sol, total_cost, meet_targets)


def _target_rows(units: pd.DataFrame, cols: _Columns, costs: PlanCosts,
                 rows: list[tuple[dict[int, float], float, float]]) -> None:
    """Add per-regency target rows: extreme poverty 0, water/sanitation 80 %, school 90 %."""
    lifts = [k for k in costs.household if HOUSEHOLD_INTERVENTIONS[k][1] == "lifted"]
    for code, grp in units.groupby("regency_code", sort=True):
        if grp["extreme_households"].sum() > 0:
            if not lifts:
                raise InputError(f"regency {code}: extreme poverty 0 % needs an assistance or "
                                 "income cost")
            for u, unit in grp.iterrows():  # every extreme-poor household lifted
                rows.append(({cols.index[("hh", u, k)]: 1.0 for k in lifts},
                             float(unit["extreme_households"]), milp.INF))
        households = float(grp["households"].sum())
        for key, (column, share) in TARGET_SHARES.items():
            need = share * households - (households - float(grp[column].sum()))
            if need <= 1e-9:
                continue
            if key not in costs.household:
                raise InputError(f"regency {code}: the {key} target needs a [{key}] cost")
            rows.append(({cols.index[("hh", u, key)]: 1.0 for u in grp.index}, need,
                         milp.INF))


def _solution(units: pd.DataFrame, cols: _Columns, sol: milp.MilpSolution,
              total_cost: dict[int, float], meet_targets: bool) -> PlanSolution:
    x = sol.x
    amounts = pd.DataFrame(index=units.index)
    chosen = []
    for key, j in cols.index.items():
        if key[0] == "hh":
            amounts.loc[key[1], key[2]] = x[j]
        elif key[0] == "reached":
            amounts.loc[key[1], "reached"] = x[j]
        elif x[j] > 0.5:
            chosen.append((key[1], key[2], key[3]))
    amounts = amounts.fillna(0.0)
    spent = float(sum(x[j] * c for j, c in total_cost.items()))
    objective = spent if meet_targets else float(amounts.get("reached", pd.Series(0.0)).sum())
    bound = spent if meet_targets or sol.optimal else sol.bound
    gap = 0.0 if sol.optimal else sol.gap
    return PlanSolution(amounts=amounts, chosen=sorted(chosen), status=sol.status,
                        objective=objective, bound=bound if math.isfinite(bound) else math.nan,
                        gap=gap)


__all__ = ["PlanSolution", "TARGET_SHARES", "solve_plan"]
