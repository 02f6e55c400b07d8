"""Maximal covering site selection: lazy greedy and an exact MILP solved by HiGHS.

The problem (maximal covering location problem, Church & ReVelle 1974): given a boolean
coverage matrix ``A`` (candidates x demand points) and demand weights ``w``, choose at most
``k`` candidates - or candidates whose costs fit a budget - to maximise the weight of the
points covered by at least one chosen candidate.

* :func:`greedy_cover` - lazy greedy (Minoux 1978): a priority queue of marginal gains that
  are re-evaluated only when they reach the top. Coverage is monotone submodular, so the
  result is at least ``(1 - 1/e)`` (63.2 %) of the optimum with a cardinality limit
  (Nemhauser, Wolsey & Fisher 1978). With per-candidate costs it picks by gain per Rupiah
  and returns the better of that and the best single affordable site, which guarantees
  ``(1 - 1/e) / 2`` (Khuller, Moss & Naor 1999).
  It also reports a data-dependent upper bound on the optimum (Minoux's bound: for every
  prefix ``S`` of the greedy sequence, ``OPT <= f(S) + the best k marginal gains at S``, or
  the fractional-knapsack value of the gains under a budget), a Lagrangian bound
  (:func:`lagrangian_bound`, subgradient steps) and, on request, the LP-relaxation bound
  (:func:`lp_bound`, HiGHS with a time limit); the smallest gives the reported gap.
* :func:`exact_cover` - the MILP ``max sum w_i y_i  s.t.  y_i <= sum_{j covers i} x_j,
  sum x_j <= k (or sum c_j x_j <= budget), x binary, 0 <= y <= 1`` built as arrays and
  passed to HiGHS directly (no modelling layer), after merging demand points covered by
  the same candidates. It reports HiGHS's status, objective, best bound and gap.

Gaps are ``(bound - objective) / objective`` (HiGHS's definition): 0 when optimal.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from dataclasses import dataclass, field

import highspy
import numpy as np
from scipy import sparse

from kantong.engine.errors import InputError, SolverError
from kantong.engine.sites.highs import new_highs, set_threads

logger = logging.getLogger(__name__)

#: Default MILP time limit in seconds.
DEFAULT_TIME_LIMIT = 60.0
#: The greedy skips the LP bound when the cheap bounds already prove this relative gap.
LP_SKIP_GAP = 0.001


@dataclass(frozen=True, eq=False)
class SitingResult:
    """Chosen sites and how good the choice provably is.

    Attributes
    ----------
    order
        Candidate indices (rows of the coverage matrix) in selection order: each one adds the
        most remaining weight (per Rupiah under a cost budget) given the ones before it.
    gains
        Weight newly covered by each site of ``order`` (same length).
    objective
        Total covered weight (``gains.sum()``).
    bound
        Upper bound on the optimal objective (NaN when unknown).
    gap
        ``(bound - objective) / objective``; 0 when proven optimal, NaN when unknown.
    method
        ``"greedy"`` or ``"exact"``.
    status
        Solver status (``"Optimal"``, ``"Time limit reached"``, ...) or ``"greedy"``.
    seconds
        Wall time of the selection.
    details
        Extra solver facts (model size, node count, HiGHS gap, ...).
    """

    order: np.ndarray
    gains: np.ndarray
    objective: float
    bound: float
    gap: float
    method: str
    status: str
    seconds: float
    details: dict = field(default_factory=dict)


def _check(matrix: sparse.csr_matrix, weights: np.ndarray, k: int | None,
           costs: np.ndarray | None, budget: float | None
           ) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray | None]:
    """Return the coverage as CSR, the weights and the costs (None under a site count)."""
    matrix = sparse.csr_matrix(matrix)
    w = np.asarray(weights, dtype=np.float64)
    if matrix.shape[1] != len(w):
        raise InputError(f"coverage has {matrix.shape[1]} demand points, weights {len(w)}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise InputError("demand weights must be finite and >= 0")
    if (k is None) == (budget is None):
        raise InputError("give exactly one of a site count k or a budget with costs")
    if k is not None and k < 1:
        raise InputError(f"site count must be >= 1, got {k}")
    c = None
    if budget is not None:
        if costs is None:
            raise InputError("a budget needs candidate costs")
        c = np.asarray(costs)
        if len(c) != matrix.shape[0] or not np.isfinite(c).all() or (c <= 0).any():
            raise InputError("candidate costs must be finite, > 0, one per candidate")
        if not budget > 0:
            raise InputError(f"budget must be > 0, got {budget}")
    return matrix, w, c


def _row_gain(indptr: np.ndarray, indices: np.ndarray, remaining: np.ndarray, j: int) -> float:
    return float(remaining[indices[indptr[j]:indptr[j + 1]]].sum())


def _lazy_greedy(matrix: sparse.csr_matrix, w: np.ndarray, *, k: int | None,
                 c: np.ndarray | None, budget: float | None,
                 gain0: np.ndarray) -> tuple[list[int], list[float], int]:
    """Return the lazy greedy sequence, its marginal gains and the number of evaluations.

    ``c`` (costs) with ``budget``: pick by gain per cost among the affordable candidates;
    otherwise by gain, at most ``k`` sites. ``gain0`` is ``matrix @ w``.
    """
    indptr, indices = matrix.indptr, matrix.indices
    remaining = w.copy()
    score0 = gain0 if c is None else gain0 / c
    heap = [(-float(s), int(j)) for j, s in enumerate(score0) if s > 0]
    heapq.heapify(heap)
    order: list[int] = []
    gains: list[float] = []
    left = budget  # only read under a budget
    evaluations = 0
    # Each pass drops a candidate for good, picks one, or re-queues one with its exact
    # score. Between two picks a candidate is re-queued at most once: popped again, its
    # exact score is the top of the queue and it is picked. So the loop ends after at most
    # (picks + 1) * (candidates + 1) gain evaluations; a second re-queue is a bug.
    requeued: set[int] = set()
    while heap and (k is None or len(order) < k):
        _, j = heapq.heappop(heap)
        if c is not None and c[j] > left:
            continue  # never affordable again: the budget only shrinks
        g = _row_gain(indptr, indices, remaining, j)
        evaluations += 1
        if g <= 0:
            continue
        s = g if c is None else g / c[j]
        if heap and s < -heap[0][0]:
            if j in requeued:
                raise SolverError(f"lazy greedy re-queued candidate {j} twice between picks")
            requeued.add(j)
            heapq.heappush(heap, (-s, j))
            continue
        requeued.clear()
        order.append(j)
        gains.append(g)
        remaining[indices[indptr[j]:indptr[j + 1]]] = 0.0
        if c is not None:
            left -= c[j]
    return order, gains, evaluations


def greedy_cover(matrix: sparse.spmatrix, weights: np.ndarray, *, k: int | None = None,
                 costs: np.ndarray | None = None, budget: float | None = None,
                 bound: bool = True, lp_time_limit: float | None = None) -> SitingResult:
    """Choose sites by lazy greedy maximal covering.

    Parameters
    ----------
    matrix
        Boolean coverage, shape ``(n_candidates, n_points)`` (CSR preferred).
    weights
        Demand weight of each point (e.g. extreme-poor households), >= 0.
    k
        Maximum number of sites (cardinality limit).
    costs, budget
        Per-candidate costs and the total budget (same unit), instead of ``k``.
    bound
        Also compute upper bounds on the optimum - Minoux's and the Lagrangian one
        (:func:`lagrangian_bound`), both sparse mat-vecs only - and the gap; with False
        they are NaN.
    lp_time_limit
        When given, also solve the LP relaxation with HiGHS within this many seconds
        (:func:`lp_bound`) and report the smallest bound - unless the cheap bounds already
        prove a gap of at most ``LP_SKIP_GAP`` (0.1 %).

    Returns
    -------
    SitingResult
        Sites in selection order. Selection stops early when no candidate adds weight,
        so ``order`` may be shorter than ``k``.

    Examples
    --------
    >>> w = cells["extreme_households"].to_numpy()            # doctest: +SKIP
    >>> res = greedy_cover(cov.matrix, w, k=25)                # doctest: +SKIP
    >>> res.order[:3], res.gains[:3], res.gap                  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    matrix, w, c = _check(matrix, weights, k, costs, budget)
    gain0 = matrix @ w  # (CSR @ float64 vector: a float64 vector)
    order, gains, evaluations = _lazy_greedy(matrix, w, k=k, c=c, budget=budget, gain0=gain0)
    status = "greedy"
    if c is not None:
        affordable = np.flatnonzero(c <= budget)
        if len(affordable):
            best = int(affordable[np.argmax(gain0[affordable])])
            if gain0[best] > sum(gains):
                logger.info("best single affordable site beats the ratio greedy (%.1f > %.1f)",
                            gain0[best], sum(gains))
                order, gains, status = [best], [float(gain0[best])], "greedy (best single site)"
    order_a = np.asarray(order, dtype=np.int64)
    gains_a = np.asarray(gains)  # floats (an empty list gives float64 too)
    objective = float(gains_a.sum())
    details: dict = {"gain_evaluations": evaluations}
    ub = math.nan
    if bound:
        minoux = _minoux_bound(matrix, w, order_a, k=k, costs=c, budget=budget)
        lagr = lagrangian_bound(matrix, w, k=k, costs=c, budget=budget, lower=objective)
        ub = min(minoux, lagr)
        details.update(minoux_bound=minoux, lagrangian_bound=lagr)
    if lp_time_limit is not None and not _gap(objective, ub) <= LP_SKIP_GAP:
        t_lp = time.perf_counter()
        lp = lp_bound(matrix, w, k=k, costs=c, budget=budget, time_limit=lp_time_limit)
        details.update(lp_bound=lp, lp_seconds=time.perf_counter() - t_lp)
        ub = float(np.fmin(ub, lp))  # the smaller bound; NaN (unknown) only if both are
    if math.isfinite(ub):
        ub = max(ub, objective)
    seconds = time.perf_counter() - t0
    logger.info("greedy: %d sites, objective %.1f, bound %.1f, %d gain evaluations, %.3f s",
                len(order_a), objective, ub, evaluations, seconds)
    return SitingResult(order=order_a, gains=gains_a, objective=objective, bound=ub,
                        gap=_gap(objective, ub), method="greedy", status=status,
                        seconds=seconds, details=details)


def _gap(objective: float, bound: float) -> float:
    if not math.isfinite(bound):
        return math.nan
    if bound <= objective:
        return 0.0
    return (bound - objective) / objective if objective > 0 else math.inf


def _minoux_bound(matrix: sparse.csr_matrix, w: np.ndarray, order: np.ndarray, *,
                  k: int | None, costs: np.ndarray | None, budget: float | None) -> float:
    """Return ``min over greedy prefixes S of f(S) + best marginal gains at S``.

    Marginal gains are kept exact for every candidate by subtracting, after each chosen
    site, the weight of its newly covered points from the candidates that also cover them
    (a CSC column slice), so the whole bound costs O(nnz) plus one top-k per prefix.
    """
    csc = matrix.tocsc()
    gain = matrix @ w
    remaining = w.copy()
    covered = 0.0
    best = _knapsack_top(gain, k, costs, budget)
    for j in order:
        newly = matrix.indices[matrix.indptr[j]:matrix.indptr[j + 1]]
        newly = newly[remaining[newly] != 0]  # the points site j covers first
        gain -= csc[:, newly] @ remaining[newly]
        covered += float(remaining[newly].sum())
        remaining[newly] = 0.0
        best = min(best, covered + _knapsack_top(gain, k, costs, budget))
    return float(best)


def lagrangian_bound(matrix: sparse.spmatrix, weights: np.ndarray, *, k: int | None = None,
                     costs: np.ndarray | None = None, budget: float | None = None,
                     lower: float = 0.0, iterations: int = 200) -> float:
    """Return a Lagrangian upper bound on the best coverage (subgradient optimisation).

    Relaxing ``y_i <= sum_j a_ji x_j`` with multipliers ``0 <= l_i <= w_i`` gives, for any
    ``l``, ``OPT <= sum_i max(w_i - l_i, 0) + max_x sum_j x_j (A l)_j`` where the inner
    maximum takes the ``k`` largest ``(A l)_j`` (or their fractional knapsack under a
    budget). Every iterate is a valid bound; Polyak steps towards ``lower`` (a known
    feasible value) tighten it to near the LP bound in a few hundred sparse mat-vecs
    (Galvao & ReVelle 1996). The subgradient is ``A^T x - [w > l]``; the step factor starts
    at 1 and halves after 10 steps without improvement; the search stops when the bound is
    within one step of the weights (1 for counts) of ``lower``, when the factor falls below
    1e-4 or when the subgradient is 0.

    Parameters
    ----------
    matrix, weights, k, costs, budget
        As in :func:`greedy_cover`.
    lower
        Objective of a known feasible solution (e.g. the greedy one).
    iterations
        Most subgradient steps.

    Returns
    -------
    float
        The smallest bound found.
    """
    matrix, w, c = _check(matrix, weights, k, costs, budget)
    keep = w > 0
    a = matrix[:, keep].tocsr()  # (bool @ float64 vector: float64)
    w = w[keep]
    lam = w.copy()
    best, theta = math.inf, 1.0
    stall = 0  # pragma: no mutate (reset by the first step, which always improves on inf)
    for _ in range(iterations):  # subgradient steps, each a few sparse mat-vecs
        g = a @ lam
        x = _inner_max(g, k, c, budget)
        # (element-wise sums, not BLAS dots: a threaded BLAS stalls on a busy machine)
        value = float(np.maximum(w - lam, 0.0).sum() + (g * x).sum())
        if value < best - 1e-9:
            best, stall = value, 0
        else:
            stall += 1
            if stall >= 10:
                theta, stall = theta / 2, 0
        if best - lower < _granularity(w) or theta < 1e-4:
            break
        rows = np.flatnonzero(x)
        sub_a = a[rows]
        covered = np.bincount(sub_a.indices, minlength=a.shape[1],
                              weights=np.repeat(x[rows], np.diff(sub_a.indptr)))
        sub = covered - (w > lam)
        norm = float((sub * sub).sum())
        if norm == 0:
            break
        lam = np.clip(lam - theta * (value - lower) / norm * sub, 0.0, w)
    return float(max(best, lower))


def _inner_max(g: np.ndarray, k: int | None, costs: np.ndarray | None,
               budget: float | None) -> np.ndarray:
    """Return the x maximising ``g @ x`` under the limit (fractional under a budget).

    With ``k``: 1 for the ``k`` largest entries. With costs and a budget: the fractional
    knapsack - candidates that fit the budget alone, by ``g / cost`` (ties to the smaller
    index), each taking what is left of the budget, at most all of it.
    """
    x = np.zeros(len(g))
    if costs is None:
        kk = min(int(k), len(g))
        x[np.argpartition(g, len(g) - kk)[len(g) - kk:]] = 1.0
        return x
    fits = np.flatnonzero(costs <= budget)
    order = fits[np.lexsort((fits, -(g[fits] / costs[fits])))]
    cost = costs[order]
    spent_before = np.cumsum(cost) - cost
    x[order] = np.clip((budget - spent_before) / cost, 0.0, 1.0)
    return x


def _knapsack_top(gain: np.ndarray, k: int | None, costs: np.ndarray | None,
                  budget: float | None) -> float:
    """Return the best sum of gains under the limit (fractional knapsack for costs)."""
    return float((gain * _inner_max(gain, k, costs, budget)).sum())


def order_by_gain(matrix: sparse.spmatrix, weights: np.ndarray,
                  chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order a given set of sites greedily and return the marginal gain of each.

    Parameters
    ----------
    matrix
        Boolean coverage ``(n_candidates, n_points)``.
    weights
        Demand weights.
    chosen
        Candidate indices of a solution (any order).

    Returns
    -------
    order, gains : numpy.ndarray
        ``chosen`` reordered so each site adds the most remaining weight, and those gains
        (sites that add nothing come last with gain 0).
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    sub = sparse.csr_matrix(matrix)[chosen]
    w = np.asarray(weights)
    picked, gains, _ = _lazy_greedy(sub, w, k=None, c=None, budget=None, gain0=sub @ w)
    rest = np.setdiff1d(np.arange(len(chosen)), picked)
    order = np.concatenate([chosen[picked], chosen[rest]])
    return order, np.concatenate([gains, np.zeros(len(rest))])


def merge_points(matrix: sparse.csr_matrix, w: np.ndarray) -> tuple[sparse.csc_matrix,
                                                                     np.ndarray]:
    """Drop zero-weight / uncoverable points and merge points covered by the same sites.

    Two points are merged when their column patterns hash alike (two independent sums of
    random 64-bit keys): a collision needs two different sets to agree on 128 bits.
    """
    csc = matrix.tocsc()
    csc.sort_indices()
    counts = np.diff(csc.indptr)
    keep = np.flatnonzero((w > 0) & (counts > 0))
    csc = csc[:, keep]
    rng = np.random.default_rng(20261122)  # pragma: no mutate (any fixed seed hashes alike)
    r1, r2 = rng.bit_generator.random_raw((2, matrix.shape[0]))  # uint64 keys per site
    starts = csc.indptr[:-1]
    # (uint64 sums wrap around silently: arithmetic modulo 2**64)
    key = np.column_stack([np.add.reduceat(r1[csc.indices], starts),
                           np.add.reduceat(r2[csc.indices], starts)])
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    merged_w = np.zeros(len(first))
    np.add.at(merged_w, inverse.ravel(), w[keep])
    return csc[:, first], merged_w


def _mclp_model(cover: sparse.csc_matrix, wm: np.ndarray, *, k: int | None,
                costs: np.ndarray | None, budget: float | None) -> highspy.HighsLp:
    """Build the MCLP as a HiGHS model: columns x (candidates) then y (merged points).

    Rows ``0 .. n_d - 1``: ``y_i - sum_j a_ji x_j <= 0``; last row: ``sum x_j <= k`` or
    ``sum c_j x_j <= budget``. All columns are continuous: this is the LP relaxation.
    """
    n_c, n_d = cover.shape
    limit_row = sparse.csr_matrix(np.atleast_2d(np.ones(n_c) if budget is None else costs))
    x_cols = sparse.vstack([-sparse.csr_matrix(cover.T, dtype=np.float64), limit_row])
    y_cols = sparse.vstack([sparse.identity(n_d), sparse.csc_matrix((1, n_d))])
    a = sparse.hstack([x_cols, y_cols]).tocsc()
    a.sort_indices()
    cost = np.concatenate([np.zeros(n_c), wm])
    upper = np.concatenate([np.zeros(n_d), [float(k if budget is None else budget)]])
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cost), len(upper)
    lp.col_cost_ = cost
    lp.col_lower_, lp.col_upper_ = np.zeros_like(cost), np.ones_like(cost)
    lp.row_lower_, lp.row_upper_ = np.full_like(upper, -highspy.kHighsInf), upper
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data
    return lp


def _set_options(h: highspy.Highs, **options: float) -> None:
    """Set HiGHS options; one HiGHS rejects is a bug here, not bad input."""
    for name, value in options.items():
        if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise SolverError(f"HiGHS rejected the option {name}={value!r}")


def lp_bound(matrix: sparse.spmatrix, weights: np.ndarray, *, k: int | None = None,
             costs: np.ndarray | None = None, budget: float | None = None,
             time_limit: float = 5.0) -> float:
    """Return the LP-relaxation optimum of the MCLP, an upper bound on the best coverage.

    Parameters
    ----------
    matrix, weights, k, costs, budget
        As in :func:`greedy_cover`.
    time_limit
        Seconds given to HiGHS; when it is not solved to optimality in time the bound is
        unknown (NaN), since an interrupted LP proves nothing.

    Returns
    -------
    float
        The bound, or NaN.
    """
    matrix, w, c = _check(matrix, weights, k, costs, budget)
    cover, wm = merge_points(matrix, w)
    if len(wm) == 0:
        return 0.0
    h = new_highs()
    _set_options(h, time_limit=float(time_limit))
    h.passModel(_mclp_model(cover, wm, k=k, costs=c, budget=budget))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        logger.info("LP bound not proven in %.1f s (%s)", time_limit,
                    h.modelStatusToString(h.getModelStatus()))
        return math.nan
    return float(h.getInfo().objective_function_value)


def exact_cover(matrix: sparse.spmatrix, weights: np.ndarray, *, k: int | None = None,
                costs: np.ndarray | None = None, budget: float | None = None,
                time_limit: float = DEFAULT_TIME_LIMIT,
                initial: np.ndarray | None = None, threads: int | None = None) -> SitingResult:
    """Solve the maximal covering MILP with HiGHS (optimal, or the best found in time).

    Parameters
    ----------
    matrix
        Boolean coverage, shape ``(n_candidates, n_points)``.
    weights
        Demand weights, >= 0.
    k
        Maximum number of sites.
    costs, budget
        Per-candidate costs and the budget, instead of ``k``.
    time_limit
        Seconds given to HiGHS (presolve included).
    initial
        Candidate indices of a feasible solution used as a warm start; by default the
        greedy solution, whose Minoux bound also tightens the reported bound.
    threads
        HiGHS threads (default: HiGHS's choice).

    Returns
    -------
    SitingResult
        Sites ordered by marginal gain (:func:`order_by_gain`); ``bound`` is HiGHS's dual
        bound, ``status`` its model status, ``gap`` 0 when proven optimal.

    Raises
    ------
    SolverError
        HiGHS returned no feasible solution.
    """
    t0 = time.perf_counter()
    matrix, w, c = _check(matrix, weights, k, costs, budget)
    if not time_limit > 0:
        raise InputError(f"time limit must be > 0 s, got {time_limit}")
    n_c = matrix.shape[0]
    greedy = greedy_cover(matrix, w, k=k, costs=c, budget=budget)
    if initial is None:
        initial = greedy.order
    cover, wm = merge_points(matrix, w)
    n_d = len(wm)
    if n_d == 0:  # nothing coverable: the empty selection is optimal
        return SitingResult(order=np.zeros(0, np.int64), gains=np.zeros(0), objective=0.0,
                            bound=0.0, gap=0.0, method="exact", status="Optimal",
                            seconds=time.perf_counter() - t0, details={"merged_points": 0})
    lp = _mclp_model(cover, wm, k=k, costs=c, budget=budget)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n_c + \
        [highspy.HighsVarType.kContinuous] * n_d  # x binary
    h = new_highs()
    _set_options(h, time_limit=float(time_limit), mip_rel_gap=0.0,
                 mip_abs_gap=_granularity(wm) * (1 - 1e-6))
    if threads is not None and set_threads(h, threads) != highspy.HighsStatus.kOk:
        raise SolverError(f"HiGHS rejected the option threads={int(threads)!r}")
    h.passModel(lp)
    warm = len(initial) > 0
    if warm:
        x0 = np.zeros(n_c)
        x0[np.asarray(initial, dtype=np.int64)] = 1.0
        y0 = np.minimum(np.asarray(cover.T @ x0).ravel(), 1.0)
        idx = np.arange(n_c + n_d)
        h.setSolution(len(idx), idx, np.concatenate([x0, y0]))
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    sol = np.asarray(h.getSolution().col_value)
    reported = float(info.objective_function_value)
    if warm and len(sol) == n_c + n_d and not math.isclose(
            float(np.asarray(lp.col_cost_) @ sol), reported, rel_tol=1e-6):
        # HiGHS 1.16 hands back the warm start, not its optimum, when presolve solves the
        # model outright: solve again without the warm start
        logger.debug("HiGHS returned the warm start as its solution; solving again cold")
        return exact_cover(matrix, w, k=k, costs=c, budget=budget, time_limit=time_limit,
                           initial=[], threads=threads)
    feasible = int(highspy.SolutionStatus.kSolutionStatusFeasible)
    if info.primal_solution_status != feasible or len(sol) != n_c + n_d:
        raise SolverError(f"HiGHS found no feasible site selection ({status})")
    chosen = np.flatnonzero(np.rint(sol[:n_c]))  # x is binary up to HiGHS's tolerance
    order, gains = order_by_gain(matrix, w, chosen)
    objective = float(gains.sum())
    if objective < greedy.objective:  # only possible when stopped early without the warm start
        order, gains, objective = greedy.order, greedy.gains, greedy.objective
    optimal = status == "Optimal"
    dual = float(info.mip_dual_bound)
    # not optimal: the better of the greedy's bounds and HiGHS's dual bound (when a number)
    bound = objective if optimal else min(greedy.bound, dual)
    bound = max(bound, objective)
    seconds = time.perf_counter() - t0
    details = {"model_status": status, "highs_objective": float(info.objective_function_value),
               "highs_dual_bound": dual, "highs_mip_gap": float(info.mip_gap),
               "greedy_objective": greedy.objective, "greedy_bound": greedy.bound,
               "nodes": int(info.mip_node_count), "candidates": n_c, "merged_points": n_d,
               "points": int(matrix.shape[1])}
    logger.info("exact (HiGHS): %s, objective %.1f, bound %.1f, %d merged points, %.2f s",
                status, objective, bound, n_d, seconds)
    return SitingResult(order=order, gains=gains, objective=objective, bound=bound,
                        gap=_gap(objective, bound), method="exact",
                        status=status, seconds=seconds, details=details)


def _granularity(w: np.ndarray) -> float:
    """Return the step of the objective's possible values (1 for counts), for mip_abs_gap."""
    for step in (1.0, 0.125):
        if np.allclose(w / step, np.round(w / step), rtol=0, atol=1e-9):
            return step
    return 1e-6


__all__ = ["SitingResult", "greedy_cover", "exact_cover", "order_by_gain", "lp_bound",
           "lagrangian_bound", "merge_points",
           "DEFAULT_TIME_LIMIT"]
