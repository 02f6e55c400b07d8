"""Capacity: households allocated to facilities by travel time until capacity is used.

WHO AccessMod's *geographic coverage* analysis gives each facility a capacity (people it
can serve) and lets each facility, in turn, take the population nearest to it (in travel
time, within the limit) until its capacity is used; what it takes is removed before the
next facility. Its *scaling-up* analysis adds new facilities where the unmet need is
largest. Here the population is the capacity's unit (persons or households) per demand
point; the extreme-poor households of a point are served in the same proportion as its
population.

* :func:`allocate` - the AccessMod rule for given facilities, in a given order.
* :func:`greedy_capacitated` - scaling-up: each new site is the candidate that would serve
  the most extreme-poor households from the population still unserved (nearest first, up to
  its capacity); then that population is removed.
* :func:`exact_capacitated` - the MILP choosing K candidates and an allocation of their
  capacity to the unserved population (a transportation problem) maximising extreme-poor
  households served (HiGHS).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from kantong.engine.errors import InputError
from kantong.engine.sites import milp
from kantong.engine.sites.milp import as_times
from kantong.engine.sites.solvers import SitingResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Allocation:
    """Population allocated to facilities.

    Attributes
    ----------
    taken
        ``(n_facilities, n_points)`` sparse matrix of population units allocated.
    served
        Units served per point (``taken`` summed over facilities).
    used
        Units allocated per facility (never above its capacity).
    """

    taken: sparse.csr_matrix
    served: np.ndarray
    used: np.ndarray


def _sorted_rows(times: sparse.spmatrix) -> sparse.csr_matrix:
    """Return CSR whose entries in each row are sorted by time, then point index."""
    t = as_times(times)
    rows = np.repeat(np.arange(t.shape[0]), np.diff(t.indptr))
    order = np.lexsort((t.indices, t.data, rows))
    return sparse.csr_matrix((t.data[order], t.indices[order], t.indptr.copy()), shape=t.shape)


def _check(times, demand, capacity) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    t = _sorted_rows(times)
    d = np.asarray(demand, dtype=np.float64)
    c = np.asarray(capacity, dtype=np.float64)
    if t.shape != (len(c), len(d)):
        raise InputError(f"travel times {t.shape} do not match {len(c)} capacities and "
                         f"{len(d)} demand points")
    if (d < 0).any() or not np.isfinite(d).all():
        raise InputError("demand must be finite and >= 0")
    if (c < 0).any() or np.isnan(c).any():
        raise InputError("capacities must be >= 0")
    return t, d, c


def allocate(times: sparse.spmatrix, demand: np.ndarray, capacity: np.ndarray, *,
             order: np.ndarray | None = None) -> Allocation:
    """Allocate demand to facilities by the AccessMod rule.

    Parameters
    ----------
    times
        Travel minutes ``(n_facilities, n_points)`` within the limit (sparse; stored pairs
        are reachable).
    demand
        Population units at each point.
    capacity
        Units each facility can serve (``inf`` for no limit).
    order
        Processing order of the facilities (default 0, 1, ...): each takes the nearest
        remaining population (ties: lower point index) until its capacity is used.

    Returns
    -------
    Allocation

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([[1.0, 2.0, 4.0], [3.0, 1.0, 2.0]])
    >>> allocate(t, np.array([5.0, 5.0, 5.0]), np.array([7.0, 4.0])).served.tolist()
    [5.0, 5.0, 1.0]
    """
    t, rem, cap = _check(times, demand, capacity)
    rem = rem.copy()
    order = np.arange(t.shape[0]) if order is None else np.asarray(order, dtype=np.int64)
    taken = np.zeros(t.nnz)
    for f in order:  # one vectorised step per facility, as AccessMod processes them
        s, e = t.indptr[f], t.indptr[f + 1]
        idx = t.indices[s:e]
        take = _take(rem[idx], cap[f])
        taken[s:e] = take
        rem[idx] -= take
    m = sparse.csr_matrix((taken, t.indices, t.indptr), shape=t.shape)
    m.eliminate_zeros()
    served = np.asarray(demand, dtype=np.float64) - rem
    return Allocation(taken=m, served=served, used=np.asarray(m.sum(axis=1)).ravel())


def _take(avail: np.ndarray, cap: float) -> np.ndarray:
    """Nearest first: how much of each available amount a capacity ``cap`` takes."""
    before = np.cumsum(avail) - avail
    return np.clip(cap - before, 0.0, avail) if math.isfinite(cap) else avail.copy()


def _gains(t: sparse.csr_matrix, rows: np.ndarray, rem: np.ndarray, cap: np.ndarray,
           value: np.ndarray) -> np.ndarray:
    """Each candidate's served value from ``rem`` (nearest first up to its capacity)."""
    avail = rem[t.indices]
    cum = np.cumsum(avail)
    start = np.concatenate([[0.0], cum])[t.indptr[:-1]][rows]
    before = cum - avail - start
    take = np.clip(cap[rows] - before, 0.0, avail)
    return np.bincount(rows, weights=take * value[t.indices], minlength=t.shape[0])


def greedy_capacitated(times: sparse.spmatrix, demand: np.ndarray, value: np.ndarray,
                       capacity: np.ndarray, *, k: int) -> tuple[SitingResult, Allocation]:
    """Add K sites where the unmet need is largest (AccessMod scaling-up).

    Parameters
    ----------
    times
        Travel minutes ``(n_candidates, n_points)`` within the limit.
    demand
        Population units still unserved at each point (after existing facilities).
    value
        Extreme-poor households per population unit at each point (0 where none).
    capacity
        Units each candidate can serve.
    k
        Number of sites.

    Returns
    -------
    SitingResult, Allocation
        Sites in order with the extreme-poor households each serves (``gains``) and the
        allocation of the chosen sites (rows in ``order``).
    """
    t0 = time.perf_counter()
    t, rem, cap = _check(times, demand, capacity)
    rem = rem.copy()
    val = np.asarray(value, dtype=np.float64)
    rows = np.repeat(np.arange(t.shape[0]), np.diff(t.indptr))
    order, gains = [], []
    for _ in range(min(k, t.shape[0])):  # one step per site
        g = _gains(t, rows, rem, cap, val)
        g[order] = -1.0
        j = int(np.argmax(g))  # ties: lowest index
        if g[j] <= 0:
            break
        order.append(j)
        gains.append(float(g[j]))
        s, e = t.indptr[j], t.indptr[j + 1]
        rem[t.indices[s:e]] -= _take(rem[t.indices[s:e]], cap[j])
    order_a = np.asarray(order, np.int64)
    alloc = allocate(t[order_a], demand, cap[order_a])
    objective = float(sum(gains))
    return SitingResult(order=order_a, gains=np.asarray(gains), objective=objective,
                        bound=math.nan, gap=math.nan, method="greedy", status="greedy",
                        seconds=time.perf_counter() - t0), alloc


def exact_capacitated(times: sparse.spmatrix, demand: np.ndarray, value: np.ndarray,
                      capacity: np.ndarray, *, k: int, time_limit: float = 60.0
                      ) -> tuple[SitingResult, Allocation]:
    """Choose K sites and allocate their capacity optimally (MILP, HiGHS).

    ``max sum_ij v_i z_ij  s.t.  sum_j z_ij <= d_i,  sum_i z_ij <= cap_j x_j,
    z_ij <= d_i x_j,  sum_j x_j <= K``, z continuous, x binary.

    Parameters
    ----------
    times, demand, value, capacity, k
        As in :func:`greedy_capacitated`.
    time_limit
        Seconds for HiGHS.

    Returns
    -------
    SitingResult, Allocation
        ``objective`` is the extreme-poor households served by the optimal allocation,
        ``bound`` HiGHS's bound; the allocation holds the MILP's ``z`` (rows in ``order``).
    """
    t0 = time.perf_counter()
    greedy, _ = greedy_capacitated(times, demand, value, capacity, k=k)
    t, d, cap = _check(times, demand, capacity)
    val = np.asarray(value, dtype=np.float64)
    keep = (d[t.indices] > 0) & (val[t.indices] > 0)
    rows = np.repeat(np.arange(t.shape[0]), np.diff(t.indptr))[keep]
    cols = t.indices[keep]
    n_c, n_z = t.shape[0], len(rows)
    if n_z == 0:
        empty = SitingResult(order=np.zeros(0, np.int64), gains=np.zeros(0), objective=0.0,
                             bound=0.0, gap=0.0, method="exact", status="Optimal",
                             seconds=time.perf_counter() - t0)
        return empty, allocate(t[:0], d, cap[:0])
    pair = np.arange(n_z)
    big = np.where(np.isfinite(cap), cap, d.sum())
    r_pt = sparse.csr_matrix((np.ones(n_z), (cols, n_c + pair)), shape=(t.shape[1], n_c + n_z))
    r_cap = sparse.csr_matrix((np.concatenate([np.ones(n_z), -big]),
                               (np.concatenate([rows, np.arange(n_c)]),
                                np.concatenate([n_c + pair, np.arange(n_c)]))),
                              shape=(n_c, n_c + n_z))
    r_link = sparse.csr_matrix((np.concatenate([np.ones(n_z), -d[cols]]),
                                (np.concatenate([pair, pair]),
                                 np.concatenate([n_c + pair, rows]))), shape=(n_z, n_c + n_z))
    r_k = sparse.csr_matrix((np.ones(n_c), (np.zeros(n_c, int), np.arange(n_c))),
                            shape=(1, n_c + n_z))
    a = sparse.vstack([r_pt, r_cap, r_link, r_k]).tocsr()
    hi = np.concatenate([d, np.zeros(n_c), np.zeros(n_z), [float(k)]])
    lo = np.full(len(hi), -milp.INF)
    cost = np.concatenate([np.zeros(n_c), val[cols]])
    col_hi = np.concatenate([np.ones(n_c), d[cols]])
    integer = np.zeros(n_c + n_z, dtype=bool)
    integer[:n_c] = True
    x0 = np.zeros(n_c + n_z)
    x0[greedy.order] = 1.0
    g_alloc = allocate(t[greedy.order], d, cap[greedy.order]).taken.tocoo()
    pos = {(int(r), int(c)): p for p, (r, c) in enumerate(zip(rows, cols, strict=True))}
    for r, c, v in zip(greedy.order[g_alloc.row], g_alloc.col, g_alloc.data, strict=True):
        p = pos.get((int(r), int(c)))
        if p is not None:
            x0[n_c + p] = v
    sol = milp.solve(cost, a, lo, hi, col_upper=col_hi, integer=integer, maximize=True,
                     time_limit=time_limit, initial=x0)
    x = sol.x if sol.feasible else x0
    chosen = np.flatnonzero(x[:n_c] > 0.5)
    z = sparse.csr_matrix((x[n_c:], (rows, cols)), shape=t.shape)
    per_site = np.asarray(z.multiply(val[None, :]).sum(axis=1)).ravel()
    order = chosen[np.lexsort((chosen, -per_site[chosen]))]
    taken = z[order].tocsr()
    taken.eliminate_zeros()
    objective = float(per_site[order].sum())
    bound = objective if sol.optimal else max(sol.bound, objective)
    gap = 0.0 if sol.optimal else (bound - objective) / objective if objective > 0 else math.nan
    res = SitingResult(order=order, gains=per_site[order], objective=objective, bound=bound,
                       gap=gap, method="exact", status=sol.status,
                       seconds=time.perf_counter() - t0,
                       details={"greedy_objective": greedy.objective, "pairs": n_z})
    alloc = Allocation(taken=taken, served=np.asarray(taken.sum(axis=0)).ravel(),
                       used=np.asarray(taken.sum(axis=1)).ravel())
    return res, alloc


__all__ = ["Allocation", "allocate", "greedy_capacitated", "exact_capacitated"]
