"""Fewest new sites to reach every demand point, or a share of the demand (LSCP).

The *location set covering problem* (Toregas et al. 1971) chooses the fewest candidates so
that every demand point is covered by at least one of them; with a target share it is the
*partial* set cover: the fewest candidates covering at least ``required`` demand weight.

* :func:`greedy_min_sites` - greedy set cover (each step the candidate adding the most
  uncovered weight, ties to the lowest index) until the requirement is met; its bound is
  ``ceil`` of the LP relaxation solved by HiGHS (a lower bound on the count).
* :func:`exact_min_sites` - the MILP ``min sum x_j  s.t.  y_i <= sum_{j covers i} x_j,
  sum_i w_i y_i >= required`` (``y_i = 1`` for every point when all must be covered),
  solved by HiGHS after merging points covered by the same candidates, warm-started from
  the greedy solution.

Points that no candidate covers are left out and counted as *unreachable* by the caller.
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
from kantong.engine.sites.solvers import SitingResult, merge_points, order_by_gain

logger = logging.getLogger(__name__)

#: Demand weight tolerance when comparing covered weight with the requirement.
_TOL = 1e-9


def _prepare(matrix: sparse.spmatrix, weights: np.ndarray,
             required: float | None) -> tuple[sparse.csr_matrix, np.ndarray, float, bool]:
    """Validate; return (matrix, weights, required weight, all points must be covered)."""
    matrix = sparse.csr_matrix(matrix, dtype=bool)
    w = np.asarray(weights, dtype=np.float64)
    if matrix.shape[1] != len(w):
        raise InputError(f"coverage has {matrix.shape[1]} demand points, weights {len(w)}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise InputError("demand weights must be finite and >= 0")
    coverable = np.zeros(len(w), dtype=bool)
    coverable[matrix.indices] = True
    reachable = float(w[coverable].sum())
    if required is None:
        return matrix, w, reachable, True
    if not required >= 0:
        raise InputError(f"required demand must be >= 0, got {required}")
    if required > reachable + _TOL:
        raise InputError(f"required demand {required:,.1f} exceeds what the candidates can "
                         f"reach ({reachable:,.1f})")
    return matrix, w, float(required), required >= reachable - _TOL


def greedy_min_sites(matrix: sparse.spmatrix, weights: np.ndarray, *,
                     required: float | None = None, bound: bool = True,
                     lp_time_limit: float = 10.0) -> SitingResult:
    """Choose sites by greedy set cover until the required weight is covered.

    Parameters
    ----------
    matrix
        Boolean coverage ``(n_candidates, n_points)``.
    weights
        Demand weight of each point (points of weight 0 need no cover).
    required
        Demand weight to cover; default every point that some candidate covers.
    bound
        Also solve the LP relaxation (HiGHS) for a lower bound on the count.
    lp_time_limit
        Seconds for that LP.

    Returns
    -------
    SitingResult
        ``objective`` is the number of sites, ``bound`` the lower bound ``ceil(LP)``,
        ``gap`` ``(objective - bound) / objective``; ``gains`` the weight each site adds.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=bool)
    >>> greedy_min_sites(a, np.ones(3)).order.tolist()
    [0, 1]
    """
    t0 = time.perf_counter()
    matrix, w, need, _ = _prepare(matrix, weights, required)
    remaining = w.copy()
    indptr, indices = matrix.indptr, matrix.indices
    covered, order, gains = 0.0, [], []
    while covered < need - _TOL:
        gain = np.asarray(matrix @ remaining).ravel()  # exact marginal gains, one mat-vec
        j = int(np.argmax(gain))  # ties: lowest index
        if gain[j] <= 0:
            break
        order.append(j)
        gains.append(float(gain[j]))
        covered += float(gain[j])
        remaining[indices[indptr[j]:indptr[j + 1]]] = 0.0
    n = float(len(order))
    lb, details = math.nan, {}
    if bound:
        lb, details = lp_lower_bound(matrix, w, need, lp_time_limit)
        lb = min(lb, n) if math.isfinite(lb) else lb
    return SitingResult(order=np.asarray(order, np.int64), gains=np.asarray(gains), objective=n,
                        bound=lb, gap=gap_min(n, lb), method="greedy", status="greedy",
                        seconds=time.perf_counter() - t0, details=details)


def _model(cover: sparse.csc_matrix, wm: np.ndarray, need: float, everything: bool):
    """Return (cost, A, row_lower, row_upper, n_x) of the (partial) set cover."""
    n_c, n_d = cover.shape
    if everything:  # sum_{j covers i} x_j >= 1 for every merged point
        a = sparse.csr_matrix(cover.T, dtype=np.float64)
        return np.ones(n_c), a, np.ones(n_d), np.full(n_d, milp.INF), n_c
    # y_i - sum_j a_ji x_j <= 0 ; sum_i w_i y_i >= need
    top = sparse.hstack([-sparse.csr_matrix(cover.T, dtype=np.float64),
                         sparse.identity(n_d, format="csr")])
    last = sparse.hstack([sparse.csr_matrix((1, n_c)), sparse.csr_matrix(wm[None, :])])
    a = sparse.vstack([top, last]).tocsr()
    lo = np.concatenate([np.full(n_d, -milp.INF), [need - 1e-7 * max(need, 1.0)]])
    hi = np.concatenate([np.zeros(n_d), [milp.INF]])
    return np.concatenate([np.ones(n_c), np.zeros(n_d)]), a, lo, hi, n_c


def lp_lower_bound(matrix: sparse.csr_matrix, w: np.ndarray, need: float,
                    time_limit: float) -> tuple[float, dict]:
    """Return ``ceil(LP optimum)`` (NaN when the LP is not solved in time) and facts."""
    if need <= _TOL:
        return 0.0, {}
    cover, wm = merge_points(matrix, w)
    cost, a, lo, hi, _ = _model(cover, wm, need, need >= float(wm.sum()) - _TOL)
    sol = milp.solve(cost, a, lo, hi, time_limit=time_limit)
    if not sol.optimal:
        return math.nan, {"lp_status": sol.status}
    return float(math.ceil(sol.objective - 1e-6)), {"lp_bound": sol.objective}


def exact_min_sites(matrix: sparse.spmatrix, weights: np.ndarray, *,
                    required: float | None = None, time_limit: float = 60.0,
                    threads: int | None = None) -> SitingResult:
    """Solve the (partial) location set covering MILP with HiGHS.

    Parameters
    ----------
    matrix, weights, required
        As in :func:`greedy_min_sites`.
    time_limit
        Seconds for HiGHS.
    threads
        HiGHS threads.

    Returns
    -------
    SitingResult
        Sites ordered by the weight each adds (:func:`order_by_gain`); ``objective`` is the
        count, ``bound`` HiGHS's lower bound, ``status`` HiGHS's model status.
    """
    t0 = time.perf_counter()
    matrix, w, need, everything = _prepare(matrix, weights, required)
    greedy = greedy_min_sites(matrix, w, required=required, bound=False)
    if need <= _TOL:
        return SitingResult(order=np.zeros(0, np.int64), gains=np.zeros(0), objective=0.0,
                            bound=0.0, gap=0.0, method="exact", status="Optimal",
                            seconds=time.perf_counter() - t0)
    cover, wm = merge_points(matrix, w)
    cost, a, lo, hi, n_c = _model(cover, wm, need, everything)
    x0 = np.zeros(len(cost))
    x0[greedy.order] = 1.0
    if len(cost) > n_c:
        x0[n_c:] = np.minimum(np.asarray(cover.T @ x0[:n_c]).ravel(), 1.0)
    integer = np.zeros(len(cost), dtype=bool)
    integer[:n_c] = True
    sol = milp.solve(cost, a, lo, hi, integer=integer, time_limit=time_limit, initial=x0,
                     abs_gap=1.0 - 1e-6, threads=threads)
    if sol.feasible and sol.x[:n_c].round().sum() <= greedy.objective:
        chosen = np.flatnonzero(sol.x[:n_c] > 0.5)
    else:
        chosen = greedy.order
    order, gains = order_by_gain(matrix, w, chosen)
    n = float(len(order))
    lb = n if sol.optimal else float(math.ceil(sol.bound - 1e-6)) if math.isfinite(
        sol.bound) else math.nan
    details = {"model_status": sol.status, "nodes": sol.nodes, "merged_points": len(wm),
               "greedy_objective": greedy.objective, "candidates": matrix.shape[0]}
    logger.info("min-sites (HiGHS): %s, %d sites, lower bound %s, %.2f s", sol.status, n, lb,
                time.perf_counter() - t0)
    return SitingResult(order=order, gains=gains, objective=n, bound=lb,
                        gap=0.0 if sol.optimal else gap_min(n, lb), method="exact",
                        status=sol.status, seconds=time.perf_counter() - t0, details=details)


__all__ = ["greedy_min_sites", "exact_min_sites"]
