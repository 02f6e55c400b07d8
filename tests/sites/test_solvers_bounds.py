"""Upper bounds on the best coverage (Lagrangian, LP relaxation) and the point merging.

References: a Lagrangian subgradient step worked out by hand; the LP relaxation written
out densely and solved by ``scipy.optimize.linprog``; merged points checked against the
column patterns of the coverage matrix.
"""

import itertools
import math

import numpy as np
import pytest
from covering_cases import covered
from scipy import sparse
from scipy.optimize import linprog

from kantong.engine.sites.solvers import (
    greedy_cover,
    lagrangian_bound,
    lp_bound,
    merge_points,
)


def _overlap_with_empty_point():
    """A = {p0..p3, p6}, B = {p0, p1, p4}, C = {p2, p3, p5}; weights 1, p4 = 1.5, p6 = 0."""
    a = np.zeros((3, 7), dtype=bool)
    a[0, [0, 1, 2, 3, 6]] = True
    a[1, [0, 1, 4]] = True
    a[2, [2, 3, 5]] = True
    return sparse.csr_matrix(a), np.array([1.0, 1.0, 1.0, 1.0, 1.5, 1.0, 0.0])


def _lp_reference(a, w, k=None, costs=None, budget=None) -> float:
    """max w.y  s.t.  y_i <= sum_j a_ji x_j, sum x <= k (or c.x <= budget), 0 <= x, y <= 1."""
    dense = np.asarray(a.toarray(), dtype=float)
    n_c, n_d = dense.shape
    cover_rows = np.hstack([-dense.T, np.eye(n_d)])
    limit_row = np.concatenate([np.ones(n_c) if costs is None else costs, np.zeros(n_d)])
    res = linprog(np.concatenate([np.zeros(n_c), -w]),
                  A_ub=np.vstack([cover_rows, limit_row]),
                  b_ub=np.concatenate([np.zeros(n_d), [k if costs is None else budget]]),
                  bounds=(0, 1), method="highs")
    assert res.status == 0
    return -res.fun


def _fractional_knapsack(gains, costs, budget) -> float:
    """Textbook: by gain per cost, whole items while they fit, then a part of the next."""
    total, left = 0.0, budget
    for j in sorted(np.flatnonzero(costs <= budget), key=lambda j: -gains[j] / costs[j]):
        take = min(1.0, left / costs[j])
        total, left = total + take * gains[j], left - take * costs[j]
        if left <= 0:
            break
    return total


def _minoux_reference(a, w, order, k=None, costs=None, budget=None) -> float:
    """min over greedy prefixes S of f(S) + the best marginal gains f(S + j) - f(S)."""
    dense = a.toarray()
    best = math.inf
    for i in range(len(order) + 1):
        prefix = list(order[:i])
        f = covered(dense, w, prefix)
        gains = np.array([covered(dense, w, [*prefix, j]) - f for j in range(a.shape[0])])
        top = (sum(sorted(gains, reverse=True)[:k]) if costs is None
               else _fractional_knapsack(gains, costs, budget))
        best = min(best, f + top)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_minoux_bound_is_its_definition(seed):
    rng = np.random.default_rng(seed)
    a = sparse.csr_matrix(rng.uniform(size=(8, 30)) < 0.3)
    w = rng.integers(0, 6, 30).astype(float)
    for k in (2, 3, 10):
        g = greedy_cover(a, w, k=k)
        assert g.details["minoux_bound"] == pytest.approx(_minoux_reference(a, w, g.order, k=k))
    costs = rng.integers(1, 4, 8).astype(float)
    g = greedy_cover(a, w, costs=costs, budget=4.5)
    assert g.details["minoux_bound"] == pytest.approx(
        _minoux_reference(a, w, g.order, costs=costs, budget=4.5))


def test_lagrangian_first_iterate_is_the_best_k_gains():
    a, w = _overlap_with_empty_point()
    # at l = w: sum max(w - l, 0) = 0, plus the 2 largest (A l)_j = 4 + 3.5
    assert lagrangian_bound(a, w, k=2, iterations=1) == 7.5
    assert lagrangian_bound(a, w, k=2, iterations=1, lower=8.0) == 8.0  # never below lower


def test_lagrangian_second_iterate_by_hand():
    a, w = _overlap_with_empty_point()
    # iterate 1 (l = w): x = A, B, value 7.5. Subgradient (weight-0 point p6 left out):
    # points covered by x, minus [w > l] = 0: (2, 2, 1, 1, 1, 0), squared norm 11.
    # Polyak step towards lower = 5.5: (7.5 - 5.5) / 11 = 2/11, so
    # l = (7/11, 7/11, 9/11, 9/11, 29/22, 1).
    # iterate 2: A l = 32/11, B l = 57/22, C l = 29/11 -> x = A, C:
    # sum max(w - l, 0) = (4 + 4 + 2 + 2 + 2) / 11 = 14/11, plus 32/11 + 29/11: 75/11.
    assert lagrangian_bound(a, w, k=2, lower=5.5, iterations=2) == pytest.approx(75 / 11)


def _subgradient_reference(dense, w, lower, iterations, k=None, costs=None,
                           budget=None) -> float:
    """The Lagrangian bound as lagrangian_bound's docstring states it, written densely.

    value(l) = sum max(w - l, 0) + max_x (A l) . x (the k best, or the textbook fractional
    knapsack); subgradient s = A^T x - [w > l]; l <- clip(l - t (value - lower) / |s|^2 s,
    0, w); t starts at 1 and halves after 10 steps without improvement; stop when the best
    value is within one household (integer weights) of ``lower``, t < 1e-4 or s = 0.
    """
    keep = w > 0
    a, w = dense[:, keep].astype(float), w[keep]
    lam, best, theta, stall = w.copy(), math.inf, 1.0, 0
    for _ in range(iterations):
        g = a @ lam
        x = np.zeros(len(g))
        if costs is None:
            x[np.argsort(-g, kind="stable")[:k]] = 1.0
        else:
            left = budget
            for j in sorted(np.flatnonzero(costs <= budget), key=lambda j: (-g[j] / costs[j], j)):
                x[j] = min(1.0, left / costs[j])
                left -= x[j] * costs[j]
        value = np.maximum(w - lam, 0).sum() + g @ x
        if value < best - 1e-9:
            best, stall = value, 0
        else:
            stall += 1
            if stall == 10:
                theta, stall = theta / 2, 0
        if best - lower < 1.0 or theta < 1e-4:
            break
        s = x @ a - (w > lam)
        if s @ s == 0:
            break
        lam = np.clip(lam - theta * (value - lower) / (s @ s) * s, 0, w)
    return max(best, lower)


@pytest.mark.parametrize(("seed", "mode", "iterations"), [
    (1, "budget", 2), (8, "budget", 2), (1, "budget", 60), (4, "budget", 60),
    (6, "budget", 60), (7, "budget", 60), (11, "count", 60), (1, "count", 60),
    (2, "count", 60), (3, "count", 60), (9, "count", 60), (49, "budget", None),
])
def test_lagrangian_bound_follows_its_definition(seed, mode, iterations):
    # small instances (6 sites, 15 points): the budget ones have a fractional x and halve
    # the step 1 to 5 times within 60 iterations; count 11 halves it 4 times; counts 2, 3
    # and 9 stop within one household of the greedy value. Budget 49 still improves at
    # step 200 (the default) and again at step 201.
    rng = np.random.default_rng(seed)
    dense = rng.uniform(size=(6, 15)) < 0.35
    w = rng.integers(0, 6, 15).astype(float)
    limit = {"k": 2} if mode == "count" else {
        "costs": rng.integers(1, 4, 6).astype(float), "budget": 3.5}
    a = sparse.csr_matrix(dense)
    lower = greedy_cover(a, w, bound=False, **limit).objective
    steps = {} if iterations is None else {"iterations": iterations}
    expected = _subgradient_reference(dense, w, lower, iterations or 200, **limit)
    assert lagrangian_bound(a, w, lower=lower, **steps, **limit) == \
        pytest.approx(expected, rel=1e-9)


def test_lagrangian_with_the_default_lower_value_on_small_weights():
    # one site over points of weight 0.25 and 0.5: the bound is the best single site, 0.5
    a = sparse.csr_matrix(np.array([[1, 0], [0, 1]], dtype=bool))
    lag = lagrangian_bound(a, np.array([0.25, 0.5]), k=1)
    assert 0.5 <= lag <= 0.5 + 1e-6


@pytest.mark.parametrize("seed", [2, 3, 6, 7])
def test_lagrangian_bound_comes_near_the_lp_bound(seed):
    rng = np.random.default_rng(seed)
    a = sparse.csr_matrix(rng.uniform(size=(12, 60)) < 0.15)
    w = rng.integers(0, 10, 60).astype(float)
    lp = _lp_reference(a, w, k=4)
    assert lp_bound(a, w, k=4) == pytest.approx(lp)
    # from no feasible value: within 0.5 % of the LP bound, and never below it
    lag = lagrangian_bound(a, w, k=4)
    assert lp - 1e-6 <= lag <= lp * 1.005
    # from the greedy value (steps aim at it, and stop once within one household of it)
    g = greedy_cover(a, w, k=4, bound=False).objective
    lag_g = lagrangian_bound(a, w, k=4, lower=g)
    assert lp - 1e-6 <= lag_g <= lp * 1.01


def test_lagrangian_bound_under_a_budget():
    rng = np.random.default_rng(4)
    a = sparse.csr_matrix(rng.uniform(size=(10, 50)) < 0.2)
    w = rng.integers(0, 10, 50).astype(float)
    costs = rng.integers(1, 5, 10).astype(float)
    lp = _lp_reference(a, w, costs=costs, budget=6.0)
    assert lp_bound(a, w, costs=costs, budget=6.0) == pytest.approx(lp)
    lag = lagrangian_bound(a, w, costs=costs, budget=6.0)
    assert lp - 1e-6 <= lag <= lp * 1.01


def test_lp_bound_matches_the_dense_lp_on_tiny_instances():
    # the triangle: three sites, each covering two of three points; one site may open.
    # LP and integer optimum agree (2); with a site count of 1.5 only the LP takes halves.
    a = sparse.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=bool))
    w = np.array([1.0, 1.0, 1.0])
    assert lp_bound(a, w, k=1) == pytest.approx(2.0) == pytest.approx(_lp_reference(a, w, k=1))
    # a budget of 1.5 with unit costs: x = 1/2 each covers every point fully: 3
    costs = np.ones(3)
    assert lp_bound(a, w, costs=costs, budget=1.5) == pytest.approx(3.0)
    assert _lp_reference(a, w, costs=costs, budget=1.5) == pytest.approx(3.0)


def test_lp_bound_of_one_merged_point():
    # both points are covered by candidate 1 only
    a = sparse.csr_matrix(np.array([[0, 0], [1, 1]], dtype=bool))
    assert lp_bound(a, np.array([2.0, 3.0]), k=1) == pytest.approx(5.0)


def test_lp_bound_is_unknown_when_not_solved_in_time():
    a, w = _overlap_with_empty_point()
    assert math.isnan(lp_bound(a, w, k=2, time_limit=0.0))
    # the greedy then keeps its cheap bound (6.5, Minoux's)
    g = greedy_cover(a, w, k=2, lp_time_limit=0.0)
    assert math.isnan(g.details["lp_bound"])
    assert g.bound == pytest.approx(6.5) and g.gap == pytest.approx(1 / 5.5)


def _patterns(cover) -> list[tuple[frozenset, float]]:
    csc = sparse.csc_matrix(cover)
    return [frozenset(csc.indices[csc.indptr[i]:csc.indptr[i + 1]].tolist())
            for i in range(csc.shape[1])]


def test_merge_points_drops_and_merges_by_hand():
    # columns (points): p0 {0, 1} w 2; p1 {0, 1} w 3; p2 {} w 4 (uncoverable);
    # p3 {2} w 0 (no weight); p4 {1} w 1; p5 {0, 1} w 0.5; p6 {2} w 7
    a = sparse.csr_matrix(np.array([[1, 1, 0, 0, 0, 1, 0],
                                    [1, 1, 0, 0, 1, 1, 0],
                                    [0, 0, 0, 1, 0, 0, 1]], dtype=bool))
    cover, wm = merge_points(a, np.array([2.0, 3.0, 4.0, 0.0, 1.0, 0.5, 7.0]))
    assert cover.shape == (3, 3) and wm.dtype == np.float64
    merged = dict(zip(_patterns(cover), wm.tolist(), strict=True))
    assert merged == {frozenset({0, 1}): 5.5, frozenset({1}): 1.0, frozenset({2}): 7.0}


def test_merge_points_keeps_every_distinct_pattern():
    # all 1023 non-empty subsets of 10 candidates, each as two points of weights 1 and i
    n = 10
    subsets = [s for r in range(1, n + 1) for s in itertools.combinations(range(n), r)]
    a = np.zeros((n, 2 * len(subsets)), dtype=bool)
    for i, s in enumerate(subsets):
        a[list(s), 2 * i] = a[list(s), 2 * i + 1] = True
    w = np.repeat(np.arange(1, len(subsets) + 1, dtype=float), 2)
    w[::2] = 1.0
    cover, wm = merge_points(sparse.csr_matrix(a), w)
    merged = dict(zip(_patterns(cover), wm.tolist(), strict=True))
    assert len(merged) == len(subsets)
    assert merged == {frozenset(s): 1.0 + i + 1 for i, s in enumerate(subsets)}


def test_merge_points_with_more_candidates_than_points():
    a = np.zeros((40, 3), dtype=bool)
    a[[5, 39], 0] = a[[5, 39], 2] = a[[0, 39], 1] = True
    cover, wm = merge_points(sparse.csr_matrix(a), np.array([1.0, 2.0, 4.0]))
    assert dict(zip(_patterns(cover), wm.tolist(), strict=True)) == {
        frozenset({5, 39}): 5.0, frozenset({0, 39}): 2.0}


def test_merge_points_of_nothing():
    cover, wm = merge_points(sparse.csr_matrix(np.eye(2, dtype=bool)), np.zeros(2))
    assert cover.shape == (2, 0) and len(wm) == 0 and wm.dtype == np.float64
