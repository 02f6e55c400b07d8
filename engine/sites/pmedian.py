"""Least total travel: K new sites minimising household-weighted travel minutes (p-median).

Every demand point ``i`` (an H3 cell with weight ``w_i``, e.g. extreme-poor households)
travels to its nearest facility, existing or new. ``base_i`` is its travel time today (to
the nearest existing facility, capped at the search horizon); ``t_ij`` the travel time from
candidate ``j`` (only pairs with ``t_ij < base_i`` matter). The objective is

    total(S) = sum_i w_i * min(base_i, min_{j in S} t_ij)

(Hakimi 1964; ReVelle & Swain 1970) with existing facilities always open. Equivalently the
*saving* ``base_total - total(S)`` is maximised; the saving is monotone submodular (a
facility-location function), which gives the heuristic its bound.

* :func:`greedy_min_travel` - greedy (each step the candidate saving the most) followed by
  vertex interchange (Teitz & Bart 1968: swap a chosen site for the best replacement while
  it lowers the total); the lower bound on the optimum is ``base_total - U`` with ``U``
  Minoux's bound on the saving (the saving so far plus the K best marginal savings, the
  smallest over the greedy prefixes and the final solution), optionally tightened by the LP
  relaxation (HiGHS).
* :func:`exact_min_travel` - the MILP ``max sum_ij s_ij z_ij  s.t.  sum_j z_ij <= 1,
  z_ij <= x_j, sum_j x_j <= K`` with ``s_ij = w_i (base_i - t_ij)``: first its LP relaxation
  (often integral for this formulation) - when the LP bound equals the heuristic's saving,
  the heuristic is optimal - else the MILP by HiGHS from the heuristic solution; HiGHS's
  bound gives the gap.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from scipy import sparse

from kantong.engine.errors import InputError
from kantong.engine.sites import milp
from kantong.engine.sites.milp import gap_min
from kantong.engine.sites.solvers import SitingResult

logger = logging.getLogger(__name__)

#: Most interchange passes of the heuristic.
MAX_SWAP_PASSES = 20


class TravelSavings:
    """The instance in savings form: pairs ``(j, i)`` with ``t_ij < base_i`` as CSR rows."""

    def __init__(self, times: sparse.spmatrix, weights: np.ndarray, base: np.ndarray) -> None:
        t, w, base = milp.travel_instance(times, weights, base)
        rows = np.repeat(np.arange(t.shape[0]), np.diff(t.indptr))
        keep = (t.data < base[t.indices]) & (w[t.indices] > 0)
        self.n_cand, self.n_points = t.shape
        self.rows, self.cols, self.time = rows[keep], t.indices[keep], t.data[keep]
        indptr = np.zeros(self.n_cand + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.rows, minlength=self.n_cand), out=indptr[1:])
        self.indptr = indptr
        self.w, self.base = w, base
        self.base_total = float((w * base).sum())

    def gains(self, cur: np.ndarray) -> np.ndarray:
        """Return each candidate's saving given the current times ``cur``."""
        vals = self.w[self.cols] * np.maximum(cur[self.cols] - self.time, 0.0)
        return np.bincount(self.rows, weights=vals, minlength=self.n_cand)

    def apply(self, cur: np.ndarray, j: int) -> None:
        """Open candidate ``j``: lower ``cur`` in place."""
        s, e = self.indptr[j], self.indptr[j + 1]
        np.minimum.at(cur, self.cols[s:e], self.time[s:e])

    def times_with(self, chosen) -> np.ndarray:
        """Return every point's travel time with ``chosen`` open."""
        cur = self.base.copy()
        for j in chosen:  # one row per chosen site (K is small)
            self.apply(cur, int(j))
        return cur

    def total(self, cur: np.ndarray) -> float:
        """Return the weighted travel total of times ``cur``."""
        return float((self.w * cur).sum())


def _top(g: np.ndarray, k: int) -> float:
    k = min(k, len(g))
    return float(np.partition(g, len(g) - k)[len(g) - k:].sum()) if k > 0 else 0.0


def order_by_saving(inst: TravelSavings, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order ``chosen`` greedily by saving; return the order and each site's saving."""
    cur = inst.base.copy()
    left = [int(j) for j in sorted(chosen)]
    order, gains = [], []
    while left:
        g = inst.gains(cur)[left]
        pick = int(np.argmax(g))  # ties: lowest index (``left`` is sorted)
        j = left.pop(pick)
        order.append(j)
        gains.append(float(g[pick]))
        inst.apply(cur, j)
    return np.asarray(order, np.int64), np.asarray(gains)


def greedy_min_travel(times: sparse.spmatrix, weights: np.ndarray, base: np.ndarray, *,
                      k: int, swap: bool = True, lp_time_limit: float | None = None
                      ) -> SitingResult:
    """Choose K sites by greedy saving plus vertex interchange, with a lower bound.

    Parameters
    ----------
    times
        Travel minutes ``(n_candidates, n_points)``, sparse: only stored pairs are
        reachable (explicit zeros are pairs at 0 minutes).
    weights
        Demand weight of each point.
    base
        Each point's travel time without new sites (finite; cap unreachable points).
    k
        Number of new sites.
    swap
        Improve the greedy solution by interchange.
    lp_time_limit
        When given, also solve the LP relaxation with HiGHS for a tighter bound.

    Returns
    -------
    SitingResult
        ``objective`` is the weighted travel total, ``bound`` a lower bound on the optimum,
        ``gap`` ``(objective - bound) / objective``; ``gains`` the minutes each site saves
        in greedy order.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([[0.0, 5.0, 9.0], [9.0, 5.0, 0.0]])
    >>> greedy_min_travel(t, np.ones(3), np.full(3, 10.0), k=1).objective
    14.0
    """
    t0 = time.perf_counter()
    if k < 1:
        raise InputError(f"site count must be >= 1, got {k}")
    inst = TravelSavings(times, weights, base)
    cur = inst.base.copy()
    chosen: list[int] = []
    saved = 0.0
    ub = math.inf
    for _ in range(min(k, inst.n_cand)):  # one step per site
        g = inst.gains(cur)
        ub = min(ub, saved + _top(g, k))
        j = int(np.argmax(g))
        if g[j] <= 0:
            break
        chosen.append(j)
        saved += float(g[j])
        inst.apply(cur, j)
    greedy_total = inst.total(cur)
    passes = swaps = 0
    if swap and chosen:
        passes, swaps = _interchange(inst, chosen)
        cur = inst.times_with(chosen)
    saved_final = inst.base_total - inst.total(cur)
    ub = min(ub, saved_final + _top(inst.gains(cur), k))
    details = {"greedy_objective": greedy_total, "swap_passes": passes, "swaps": swaps,
               "minoux_bound_saving": ub, "base_total": inst.base_total}
    if lp_time_limit is not None:
        lp = _lp_saving(inst, k, lp_time_limit)
        details["lp_bound_saving"] = lp
        if math.isfinite(lp):
            ub = min(ub, lp)
    order, gains = order_by_saving(inst, np.asarray(chosen, np.int64))
    objective = inst.total(cur)
    lower = max(inst.base_total - ub, 0.0) if math.isfinite(ub) else math.nan
    lower = min(lower, objective)
    logger.info("min-travel greedy: %d sites, total %.1f, lower bound %.1f, %d swaps, %.3f s",
                len(order), objective, lower, swaps, time.perf_counter() - t0)
    return SitingResult(order=order, gains=gains, objective=objective, bound=lower,
                        gap=gap_min(objective, lower), method="greedy", status="greedy",
                        seconds=time.perf_counter() - t0, details=details)


def _interchange(inst: TravelSavings, chosen: list[int]) -> tuple[int, int]:
    """Swap chosen sites for better ones while the total falls (in place); return counts."""
    passes = swaps = 0
    total = inst.total(inst.times_with(chosen))
    improved = True
    while improved and passes < MAX_SWAP_PASSES:
        improved = False
        passes += 1
        for pos in range(len(chosen)):  # try replacing each chosen site
            rest = chosen[:pos] + chosen[pos + 1:]
            cur = inst.times_with(rest)
            g = inst.gains(cur)
            g[rest] = -1.0
            j = int(np.argmax(g))
            new_total = inst.total(cur) - float(g[j])
            if new_total < total - 1e-9 * max(1.0, total) and j != chosen[pos]:
                chosen[pos] = j
                total = new_total
                swaps += 1
                improved = True
    return passes, swaps


def _model(inst: TravelSavings, k: int):
    """Return (cost, A, lo, hi, n_c) of the savings MILP: columns x then z (one per pair)."""
    n_c, n_z = inst.n_cand, len(inst.rows)
    s = inst.w[inst.cols] * (inst.base[inst.cols] - inst.time)
    pair = np.arange(n_z)
    # rows: n_points "sum_j z_ij <= 1", n_z "z_ij - x_j <= 0", 1 "sum x_j <= k"
    r_assign = sparse.csr_matrix((np.ones(n_z), (inst.cols, n_c + pair)),
                                 shape=(inst.n_points, n_c + n_z))
    r_link = sparse.csr_matrix((np.concatenate([np.ones(n_z), -np.ones(n_z)]),
                                (np.concatenate([pair, pair]),
                                 np.concatenate([n_c + pair, inst.rows]))),
                               shape=(n_z, n_c + n_z))
    r_k = sparse.csr_matrix((np.ones(n_c), (np.zeros(n_c, int), np.arange(n_c))),
                            shape=(1, n_c + n_z))
    a = sparse.vstack([r_assign, r_link, r_k]).tocsr()
    lo = np.full(a.shape[0], -milp.INF)
    hi = np.concatenate([np.ones(inst.n_points), np.zeros(n_z), [float(k)]])
    return np.concatenate([np.zeros(n_c), s]), a, lo, hi, n_c


def _lp_saving(inst: TravelSavings, k: int, time_limit: float) -> float:
    cost, a, lo, hi, _ = _model(inst, k)
    sol = milp.solve(cost, a, lo, hi, maximize=True, time_limit=time_limit)
    return sol.objective if sol.optimal else math.nan


def exact_min_travel(times: sparse.spmatrix, weights: np.ndarray, base: np.ndarray, *,
                     k: int, time_limit: float = 60.0, rel_gap: float = 0.0,
                     threads: int | None = None) -> SitingResult:
    """Solve the p-median (existing facilities open) MILP with HiGHS.

    Parameters
    ----------
    times, weights, base, k
        As in :func:`greedy_min_travel`.
    time_limit
        Seconds for HiGHS.
    rel_gap
        Relative gap at which HiGHS may stop (on the saving).
    threads
        HiGHS threads.

    Returns
    -------
    SitingResult
        As in :func:`greedy_min_travel`; ``status`` is HiGHS's, ``bound`` the lower bound
        from HiGHS's dual bound (and the heuristic's bound).
    """
    t0 = time.perf_counter()
    heur = greedy_min_travel(times, weights, base, k=k)
    inst = TravelSavings(times, weights, base)
    if len(inst.rows) == 0:
        return SitingResult(order=np.zeros(0, np.int64), gains=np.zeros(0),
                            objective=inst.base_total, bound=inst.base_total, gap=0.0,
                            method="exact", status="Optimal", seconds=time.perf_counter() - t0)
    cost, a, lo, hi, n_c = _model(inst, k)
    # the LP relaxation is often integral here: when its bound meets the heuristic's saving
    # the heuristic is proven optimal without branch and bound
    lp = milp.solve(cost, a, lo, hi, maximize=True, time_limit=time_limit)
    heur_saving = inst.base_total - heur.objective
    if lp.optimal and lp.objective <= heur_saving + 1e-9 * max(1.0, abs(lp.objective)):
        logger.info("min-travel: the LP bound proves the heuristic optimal (%.2f s)",
                    time.perf_counter() - t0)
        return SitingResult(order=heur.order, gains=heur.gains, objective=heur.objective,
                            bound=heur.objective, gap=0.0, method="exact", status="Optimal",
                            seconds=time.perf_counter() - t0,
                            details={"model_status": "Optimal (LP bound met by the heuristic)",
                                     "nodes": 0, "pairs": len(inst.rows), "candidates": n_c,
                                     "heuristic_objective": heur.objective,
                                     "lp_bound_saving": lp.objective,
                                     "base_total": inst.base_total})
    x0 = np.zeros(len(cost))
    x0[heur.order] = 1.0
    cur = inst.base.copy()
    best = np.full(inst.n_points, -1)
    for j in heur.order:  # assign each point to its nearest chosen site (K rows)
        s, e = inst.indptr[j], inst.indptr[j + 1]
        better = inst.time[s:e] < cur[inst.cols[s:e]]
        cur[inst.cols[s:e][better]] = inst.time[s:e][better]
        best[inst.cols[s:e][better]] = np.arange(s, e)[better]
    x0[n_c + best[best >= 0]] = 1.0
    integer = np.zeros(len(cost), dtype=bool)
    integer[:n_c] = True
    sol = milp.solve(cost, a, lo, hi, integer=integer, maximize=True, time_limit=time_limit,
                     initial=x0, rel_gap=rel_gap, threads=threads)
    chosen = np.flatnonzero(sol.x[:n_c] > 0.5) if sol.feasible else heur.order
    objective = inst.total(inst.times_with(chosen))
    if objective > heur.objective:
        chosen, objective = heur.order, heur.objective
    order, gains = order_by_saving(inst, chosen)
    lower = inst.base_total - sol.bound if math.isfinite(sol.bound) else math.nan
    if math.isfinite(heur.bound):
        lower = max(lower, heur.bound) if math.isfinite(lower) else heur.bound
    if sol.optimal:
        lower = objective
    lower = min(lower, objective)
    details = {"model_status": sol.status, "nodes": sol.nodes, "pairs": len(inst.rows),
               "candidates": n_c, "heuristic_objective": heur.objective,
               "base_total": inst.base_total}
    logger.info("min-travel (HiGHS): %s, total %.1f, bound %.1f, %d pairs, %.2f s", sol.status,
                objective, lower, len(inst.rows), time.perf_counter() - t0)
    return SitingResult(order=order, gains=gains, objective=objective, bound=lower,
                        gap=0.0 if sol.optimal else gap_min(objective, lower), method="exact",
                        status=sol.status, seconds=time.perf_counter() - t0, details=details)


__all__ = ["greedy_min_travel", "exact_min_travel"]
