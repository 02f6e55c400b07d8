"""One small door to HiGHS: solve a sparse (mixed-integer) linear program given as arrays.

The site models (:mod:`lscp`, :mod:`pmedian`, :mod:`pcenter`, :mod:`capacity`) build their
constraint matrices with ``scipy.sparse`` and call :func:`solve`, which passes the arrays to
HiGHS directly (no modelling layer), warm-starts it from a heuristic solution and returns
the status, the solution, the objective, HiGHS's dual bound and the relative gap.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import highspy
import numpy as np
from scipy import sparse

from kantong.engine.errors import InputError
from kantong.engine.sites.highs import new_highs, set_threads

logger = logging.getLogger(__name__)

INF = highspy.kHighsInf


@dataclass(frozen=True, eq=False)
class MilpSolution:
    """What HiGHS returned.

    Attributes
    ----------
    status
        HiGHS model status text (``"Optimal"``, ``"Time limit reached"``, ...).
    x
        Column values (empty when no feasible solution was found).
    objective
        Objective of ``x`` (NaN without a solution).
    bound
        HiGHS's dual bound (the LP optimum for an LP).
    gap
        HiGHS's relative MIP gap (0 for an optimal LP).
    nodes
        Branch-and-bound nodes.
    """

    status: str
    x: np.ndarray
    objective: float
    bound: float
    gap: float
    nodes: int

    @property
    def optimal(self) -> bool:
        """Return True when HiGHS proved optimality."""
        return self.status == "Optimal"

    @property
    def feasible(self) -> bool:
        """Return True when a solution is available."""
        return len(self.x) > 0


def solve(cost: np.ndarray, a: sparse.spmatrix, row_lower: np.ndarray,
          row_upper: np.ndarray, *, col_lower: np.ndarray | None = None,
          col_upper: np.ndarray | None = None, integer: np.ndarray | None = None,
          maximize: bool = False, time_limit: float = 60.0,
          initial: np.ndarray | None = None, abs_gap: float | None = None,
          rel_gap: float = 0.0, threads: int | None = None) -> MilpSolution:
    """Solve ``min/max cost @ x  s.t.  row_lower <= A x <= row_upper, bounds, integrality``.

    Parameters
    ----------
    cost
        Objective coefficients, one per column.
    a
        Constraint matrix (rows x columns), any scipy.sparse format.
    row_lower, row_upper
        Row bounds (``-INF`` / ``INF`` for one-sided rows).
    col_lower, col_upper
        Column bounds (default 0 and 1).
    integer
        Boolean mask of integer columns (default: none, an LP).
    maximize
        Maximise instead of minimise.
    time_limit
        Seconds for HiGHS.
    initial
        A feasible column vector to start from (MIP only).
    abs_gap, rel_gap
        HiGHS ``mip_abs_gap`` and ``mip_rel_gap``.
    threads
        HiGHS threads (default HiGHS's choice).

    Returns
    -------
    MilpSolution
    """
    n_col = len(cost)
    csc = sparse.csc_matrix(a, dtype=np.float64)
    csc.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_ = n_col
    lp.num_row_ = csc.shape[0]
    lp.col_cost_ = np.asarray(cost, dtype=np.float64)
    lp.col_lower_ = np.zeros(n_col) if col_lower is None else np.asarray(col_lower, float)
    lp.col_upper_ = np.ones(n_col) if col_upper is None else np.asarray(col_upper, float)
    lp.row_lower_ = np.asarray(row_lower, dtype=np.float64)
    lp.row_upper_ = np.asarray(row_upper, dtype=np.float64)
    lp.sense_ = highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = csc.indices.astype(np.int32)
    lp.a_matrix_.value_ = csc.data
    is_mip = integer is not None and bool(np.any(integer))
    if is_mip:
        lp.integrality_ = [highspy.HighsVarType.kInteger if b else
                           highspy.HighsVarType.kContinuous for b in integer]
    h = new_highs()
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("random_seed", 0)
    if threads is not None:
        set_threads(h, threads)
    if is_mip:
        h.setOptionValue("mip_rel_gap", float(rel_gap))
        if abs_gap is not None:
            h.setOptionValue("mip_abs_gap", float(abs_gap))
    h.passModel(lp)
    if is_mip and initial is not None:
        idx = np.arange(n_col, dtype=np.int32)
        h.setSolution(n_col, idx, np.asarray(initial, dtype=np.float64))
    h.run()
    if is_mip and initial is not None and _stale(h, lp.col_cost_):
        # HiGHS 1.16 returns the warm start, not the optimum, when presolve solves the
        # model outright: solve again without it
        logger.debug("HiGHS returned the warm start as its solution; solving again cold")
        return solve(cost, a, row_lower, row_upper, col_lower=col_lower, col_upper=col_upper,
                     integer=integer, maximize=maximize, time_limit=time_limit, initial=None,
                     abs_gap=abs_gap, rel_gap=rel_gap, threads=threads)
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    feasible = int(highspy.SolutionStatus.kSolutionStatusFeasible)
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    if info.primal_solution_status != feasible or len(x) != n_col:
        x = np.zeros(0)
    obj = float(info.objective_function_value) if len(x) else math.nan
    if is_mip:
        bound, gap, nodes = float(info.mip_dual_bound), float(info.mip_gap), int(
            info.mip_node_count)
    else:
        bound, gap, nodes = obj, 0.0 if status == "Optimal" else math.nan, 0
    logger.debug("HiGHS %s: %d cols, %d rows, objective %s, bound %s", status, n_col,
                 csc.shape[0], obj, bound)
    return MilpSolution(status=status, x=x, objective=obj, bound=bound, gap=gap, nodes=nodes)


def gap_min(objective: float, bound: float) -> float:
    """Return the relative gap ``(objective - bound) / objective`` of a minimisation.

    Parameters
    ----------
    objective
        Value of the solution found.
    bound
        A lower bound on the optimum (NaN when unknown).

    Returns
    -------
    float
        0 when the bound meets the objective, NaN when the bound is unknown.

    Examples
    --------
    >>> gap_min(10.0, 9.0)
    0.1
    """
    if not math.isfinite(bound):
        return math.nan
    if objective <= bound + 1e-9 * max(1.0, abs(objective)):
        return 0.0
    return (objective - bound) / objective


def travel_instance(times: np.ndarray | sparse.spmatrix, weights: np.ndarray,
                    base: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    """Validate a travel-time instance (p-median, p-center) and return it as arrays.

    Parameters
    ----------
    times : array or sparse matrix
        Candidates x points travel minutes (see :func:`as_times`).
    weights : numpy.ndarray
        Demand of each point (finite, >= 0).
    base : numpy.ndarray
        Each point's travel minutes to the nearest existing facility (finite, >= 0; cap
        them at the horizon).

    Returns
    -------
    tuple
        ``(times as CSR, weights, base)`` as float64.

    Raises
    ------
    InputError
        If the lengths disagree or any value is negative or not finite.

    Examples
    --------
    >>> t, w, b = travel_instance(np.array([[1.0, 5.0]]), np.ones(2), np.array([3.0, 3.0]))
    >>> t.nnz, w.tolist(), b.tolist()
    (2, [1.0, 1.0], [3.0, 3.0])
    """
    t = as_times(times)
    w = np.asarray(weights, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    if t.shape[1] != len(w) or len(base) != len(w):
        raise InputError(f"travel times have {t.shape[1]} points, weights {len(w)}, "
                         f"base times {len(base)}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise InputError("demand weights must be finite and >= 0")
    if not np.isfinite(base).all() or (base < 0).any():
        raise InputError("base travel times must be finite and >= 0 (cap them)")
    if (t.data < 0).any() or not np.isfinite(t.data).all():
        raise InputError("travel times must be finite and >= 0")
    return t, w, base


def as_times(times: np.ndarray | sparse.spmatrix) -> sparse.csr_matrix:
    """Return travel times as CSR whose stored entries are the reachable pairs.

    A sparse matrix is taken as it is (explicit zeros are pairs at 0 minutes). A dense
    array counts every finite entry, zeros included, as a pair; ``inf`` is unreachable.

    Examples
    --------
    >>> as_times(np.array([[0.0, np.inf], [2.0, 1.0]])).nnz
    3
    """
    if sparse.issparse(times):
        t = sparse.csr_matrix(times, dtype=np.float64)
    else:
        dense = np.asarray(times, dtype=np.float64)
        ok = np.isfinite(dense)
        indptr = np.concatenate([[0], np.cumsum(ok.sum(axis=1))])
        t = sparse.csr_matrix((dense[ok], np.nonzero(ok)[1], indptr), shape=dense.shape)
    t.sort_indices()
    return t


def _stale(h: highspy.Highs, cost: np.ndarray) -> bool:
    """Return True when the returned solution's objective is not the reported objective."""
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    if len(x) != len(cost):
        return False
    reported = float(h.getInfo().objective_function_value)
    return abs(float(cost @ x) - reported) > 1e-6 * max(1.0, abs(reported))


__all__ = ["INF", "MilpSolution", "as_times", "gap_min", "solve"]
