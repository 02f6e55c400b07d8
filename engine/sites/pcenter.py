"""Least worst-case travel: K new sites minimising the longest trip (p-center).

Every demand point ``i`` with weight ``w_i > 0`` travels to its nearest facility, existing
(``base_i``, capped at the search horizon) or new (``t_ij``). The objective is

    worst(S) = max_{i : w_i > 0} min(base_i, min_{j in S} t_ij)

(Hakimi 1965). A worst trip of at most ``T`` is possible with K sites exactly when the
points with ``base_i > T`` can be covered within ``T`` by K candidates - a set cover
(:mod:`lscp`). The optimum is one of the travel times, so both methods binary-search the
sorted distinct times (Minieka 1970):

* :func:`greedy_min_max_travel` - a time is accepted when greedy set cover needs at most K
  sites; the lower bound is the smallest time whose set-cover LP relaxation (HiGHS) needs at
  most K sites (``ceil``), since the LP is monotone in the time.
* :func:`exact_min_max_travel` - each test is decided exactly: greedy success proves
  feasibility, an LP needing more than K proves infeasibility, otherwise the set-cover MILP
  (HiGHS) decides.

Sites left over (the cover may need fewer than K) are then added by greedy least total
travel (:mod:`pmedian`), so the extra sites shorten the other trips.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from scipy import sparse

from kantong.engine.sites import lscp, pmedian
from kantong.engine.sites.milp import gap_min, travel_instance
from kantong.engine.sites.solvers import SitingResult

logger = logging.getLogger(__name__)


class _Instance:
    def __init__(self, times: sparse.spmatrix, weights: np.ndarray, base: np.ndarray) -> None:
        t, w, base = travel_instance(times, weights, base)
        self.t, self.w, self.base = t, w, base
        self.need = w > 0
        best = base.copy()
        np.minimum.at(best, t.indices, t.data)
        #: the best any selection could do for each point
        self.floor = float(best[self.need].max()) if self.need.any() else 0.0
        values = np.unique(np.concatenate([t.data, base[self.need]]))
        self.values = values[values >= self.floor]

    def worst(self, chosen) -> float:
        cur = self.base.copy()
        for j in chosen:  # K rows
            s, e = self.t.indptr[j], self.t.indptr[j + 1]
            np.minimum.at(cur, self.t.indices[s:e], self.t.data[s:e])
        return float(cur[self.need].max()) if self.need.any() else 0.0


def _reduceat_fix(t: sparse.csr_matrix, keep: np.ndarray) -> np.ndarray:
    counts = np.zeros(t.shape[0], dtype=np.int64)
    rows = np.repeat(np.arange(t.shape[0]), np.diff(t.indptr))
    np.add.at(counts, rows[keep], 1)
    return counts


def _cover_at(inst: _Instance, limit: float) -> tuple[sparse.csr_matrix, np.ndarray]:
    must = inst.need & (inst.base > limit)
    t = inst.t
    keep = (t.data <= limit) & must[t.indices]
    indptr = np.zeros(t.shape[0] + 1, dtype=np.int64)
    np.cumsum(_reduceat_fix(t, keep), out=indptr[1:])
    m = sparse.csr_matrix((np.ones(int(keep.sum()), dtype=bool), t.indices[keep], indptr),
                          shape=t.shape)
    return m, must.astype(np.float64)


def _coverable(m: sparse.csr_matrix, must: np.ndarray) -> bool:
    hit = np.zeros(len(must), dtype=bool)
    hit[m.indices] = True
    return bool(hit[must > 0].all())


def _search(inst: _Instance, k: int, test) -> tuple[int, np.ndarray]:
    """Binary search the smallest index of ``inst.values`` that ``test`` accepts."""
    lo, hi = 0, len(inst.values) - 1  # the largest value (max base) needs no new site
    best = np.zeros(0, np.int64)
    ok, sol = test(inst.values[hi])
    best = sol
    while lo < hi:
        mid = (lo + hi) // 2
        ok, sol = test(inst.values[mid])
        if ok:
            hi, best = mid, sol
        else:
            lo = mid + 1
    return hi, best


def _fill(times, weights, base, chosen: np.ndarray, k: int) -> np.ndarray:
    """Add sites up to K by greedy least total travel given ``chosen``."""
    chosen = [int(j) for j in chosen]
    if len(chosen) >= k:
        return np.asarray(chosen, np.int64)
    inst = pmedian.TravelSavings(times, weights, base)
    cur = inst.times_with(chosen)
    while len(chosen) < k:
        g = inst.gains(cur)
        g[chosen] = -1.0
        j = int(np.argmax(g))
        if g[j] <= 0:
            break
        chosen.append(j)
        inst.apply(cur, j)
    return np.asarray(chosen, np.int64)


def _result(inst, times, weights, base, chosen, k, lower, method, status, t0, details):
    chosen = _fill(times, weights, base, chosen, k)
    order, gains = pmedian.order_by_saving(pmedian.TravelSavings(times, weights, base), chosen)
    worst = inst.worst(order)
    lower = min(lower, worst) if math.isfinite(lower) else lower
    gap = gap_min(worst, lower)
    return SitingResult(order=order, gains=gains, objective=worst, bound=lower, gap=gap,
                        method=method, status=status, seconds=time.perf_counter() - t0,
                        details=details)


def _lp_lower(inst: _Instance, k: int, time_limit: float) -> float:
    """Smallest time whose set-cover LP needs at most K sites (a lower bound)."""
    def test(limit):
        m, must = _cover_at(inst, limit)
        if not _coverable(m, must):
            return False, None
        lb, _ = lscp.lp_lower_bound(m, must, float(must.sum()), time_limit)
        return (not math.isfinite(lb)) or lb <= k, None
    idx, _ = _search(inst, k, test)
    return float(inst.values[idx])


def greedy_min_max_travel(times: sparse.spmatrix, weights: np.ndarray, base: np.ndarray, *,
                          k: int, bound: bool = True, lp_time_limit: float = 5.0
                          ) -> SitingResult:
    """Choose K sites for the shortest worst trip by binary search with greedy set cover.

    Parameters
    ----------
    times, weights, base, k
        As in :func:`pmedian.greedy_min_travel`; only points with weight > 0 count.
    bound
        Also compute the LP lower bound (a second binary search of LP relaxations).
    lp_time_limit
        Seconds for each LP.

    Returns
    -------
    SitingResult
        ``objective`` is the worst trip in minutes, ``bound`` a lower bound on the optimum.
    """
    t0 = time.perf_counter()
    inst = _Instance(times, weights, base)

    def test(limit):
        m, must = _cover_at(inst, limit)
        if not _coverable(m, must):
            return False, None
        g = lscp.greedy_min_sites(m, must, bound=False)
        return len(g.order) <= k, g.order
    _, chosen = _search(inst, k, test)
    lower = _lp_lower(inst, k, lp_time_limit) if bound else math.nan
    return _result(inst, times, weights, base, chosen, k, max(lower, inst.floor) if bound
                   else math.nan, "greedy", "greedy", t0, {"tested_values": len(inst.values)})


def exact_min_max_travel(times: sparse.spmatrix, weights: np.ndarray, base: np.ndarray, *,
                         k: int, time_limit: float = 60.0) -> SitingResult:
    """Solve the p-center problem exactly: binary search with set-cover MILPs (HiGHS).

    Parameters
    ----------
    times, weights, base, k
        As in :func:`greedy_min_max_travel`.
    time_limit
        Seconds for the whole search; a test left undecided at the limit counts as
        infeasible and the status says so.

    Returns
    -------
    SitingResult
        ``status`` is ``"Optimal"`` when every test was decided.
    """
    t0 = time.perf_counter()
    inst = _Instance(times, weights, base)
    undecided: list[float] = []
    counts = {"greedy": 0, "lp": 0, "milp": 0}

    def test(limit):
        m, must = _cover_at(inst, limit)
        if not _coverable(m, must):
            return False, None
        g = lscp.greedy_min_sites(m, must, bound=False)
        if len(g.order) <= k:
            counts["greedy"] += 1
            return True, g.order
        left = max(time_limit - (time.perf_counter() - t0), 0.5)
        lb, _ = lscp.lp_lower_bound(m, must, float(must.sum()), left)
        if math.isfinite(lb) and lb > k:
            counts["lp"] += 1
            return False, None
        counts["milp"] += 1
        e = lscp.exact_min_sites(m, must, time_limit=left)
        if e.status != "Optimal" and len(e.order) > k:
            undecided.append(float(limit))
        return len(e.order) <= k, e.order
    idx, chosen = _search(inst, k, test)
    status = "Optimal" if not undecided else "Time limit reached"
    lower = float(inst.values[idx]) if not undecided else max(inst.floor, max(
        [v for v in inst.values if v < min(undecided)], default=inst.floor))
    return _result(inst, times, weights, base, chosen, k, lower, "exact", status, t0,
                   {"tests": counts, "undecided": undecided,
                    "tested_values": len(inst.values)})


__all__ = ["greedy_min_max_travel", "exact_min_max_travel"]
