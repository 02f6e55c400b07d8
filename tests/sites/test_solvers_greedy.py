"""Lazy greedy maximal covering on instances small enough to trace by hand.

Expected orders, gains, evaluation counts and bounds are worked out in the comments from
the definitions (marginal gain, gain per cost, Minoux's bound, the fractional knapsack).
"""

import math

import numpy as np
import pytest
from covering_cases import overlap
from scipy import sparse

from kantong.engine.errors import InputError, SolverError
from kantong.engine.sites import solvers
from kantong.engine.sites.solvers import (
    greedy_cover,
    lagrangian_bound,
    lp_bound,
    order_by_gain,
)


def _disjoint(gains):
    """One candidate per point: candidate j covers point j with weight ``gains[j]``."""
    return sparse.csr_matrix(np.eye(len(gains), dtype=bool)), np.asarray(gains, dtype=float)


def test_lazy_greedy_trace_on_overlapping_sites():
    a, w = overlap()
    g = greedy_cover(a, w, k=2)
    # pop A (key 4): gain 4 >= next key 3.5 -> pick A; left: p4 (1.5), p5 (1)
    # pop B (key 3.5): gain 1.5 < next key 3 -> re-queue B at 1.5
    # pop C (key 3): gain 1 < next key 1.5 -> re-queue C at 1
    # pop B (key 1.5): gain 1.5 >= 1 -> pick B. Four gain evaluations (a full greedy: 3 + 2)
    assert g.order.tolist() == [0, 1]
    assert g.gains.tolist() == [4.0, 1.5]
    assert g.objective == 5.5
    assert g.details["gain_evaluations"] == 4
    assert g.method == "greedy" and g.status == "greedy"
    # Minoux: min(4 + 3.5, 4 + (1.5 + 1), 5.5 + (1 + 0)) = 6.5, the optimum (B + C)
    assert g.details["minoux_bound"] == 6.5
    assert 6.5 <= g.details["lagrangian_bound"] <= 6.5 + 1e-9
    assert g.bound == pytest.approx(6.5)
    assert g.gap == pytest.approx((6.5 - 5.5) / 5.5)
    assert "lp_bound" not in g.details  # not asked for


def test_one_site_and_a_site_count_above_the_candidates():
    a, w = overlap()
    g1 = greedy_cover(a, w, k=1)
    assert g1.order.tolist() == [0] and g1.objective == 4.0
    assert g1.details["minoux_bound"] == 4.0 and g1.gap == 0.0  # best single site: optimal
    g5 = greedy_cover(a, w, k=5)  # every point is covered after A, B, C
    assert g5.order.tolist() == [0, 1, 2] and g5.gains.tolist() == [4.0, 1.5, 1.0]
    assert g5.bound == 6.5 and g5.gap == 0.0


def test_greedy_picks_the_heaviest_disjoint_sites_with_one_evaluation_each():
    a, w = _disjoint([3.0, 0.5, 7.0, 5.0, 0.25])
    g = greedy_cover(a, w, k=3)
    assert g.order.tolist() == [2, 3, 0] and g.gains.tolist() == [7.0, 5.0, 3.0]
    assert g.details["gain_evaluations"] == 3  # no gain ever drops: each top is picked
    assert g.bound == 15.0 and g.gap == 0.0
    # small weights count as well as large ones
    g_all = greedy_cover(a, w, k=5)
    assert g_all.order.tolist() == [2, 3, 0, 1, 4] and g_all.objective == 15.75


def test_points_without_weight_add_nothing_and_selection_stops():
    a = sparse.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=bool))
    w = np.array([0.5, 0.25, 0.0])
    g = greedy_cover(a, w, k=3)
    # candidate 1 covers nothing new after 0, candidate 2 covers a point of weight 0
    assert g.order.tolist() == [0] and g.gains.tolist() == [0.75]
    assert g.details["gain_evaluations"] == 2  # 0 (picked), then 1 (gain 0, dropped)
    assert g.bound == 0.75 and g.gap == 0.0


def test_nothing_to_cover_gives_an_empty_integer_selection():
    a = sparse.csr_matrix(np.array([[1, 0], [0, 1]], dtype=bool))
    for g in (greedy_cover(a, np.zeros(2), k=2),
              greedy_cover(a, np.zeros(2), costs=np.ones(2), budget=1.0),
              greedy_cover(sparse.csr_matrix((0, 2), dtype=bool), np.ones(2), k=1)):
        assert g.order.dtype.kind == "i" and len(g.order) == 0
        assert np.arange(5)[g.order].tolist() == []  # usable as an index
        assert g.objective == 0.0 and g.bound == 0.0 and g.gap == 0.0
        assert g.status == "greedy"
    assert lp_bound(a, np.zeros(2), k=1) == 0.0


def test_without_bounds_they_are_nan():
    a, w = overlap()
    g = greedy_cover(a, w, k=2, bound=False)
    assert g.order.tolist() == [0, 1]
    assert math.isnan(g.bound) and math.isnan(g.gap)
    assert set(g.details) == {"gain_evaluations"}
    # the LP alone then gives the bound: every point can be covered, 6.5
    g_lp = greedy_cover(a, w, k=2, bound=False, lp_time_limit=10.0)
    assert g_lp.details["lp_bound"] == pytest.approx(6.5)
    assert g_lp.bound == pytest.approx(6.5)
    assert g_lp.gap == pytest.approx(1 / 5.5)


def test_lp_bound_is_asked_only_when_the_cheap_bounds_leave_a_gap():
    t0 = __import__("time").perf_counter()
    a, w = _disjoint([3.0, 7.0, 5.0])
    proven = greedy_cover(a, w, k=2, lp_time_limit=10.0)  # Minoux proves gap 0
    assert "lp_bound" not in proven.details and proven.gap == 0.0
    b, v = overlap()
    g = greedy_cover(b, v, k=2, lp_time_limit=10.0)  # gap 18 %: the LP is solved
    elapsed = __import__("time").perf_counter() - t0
    assert g.details["lp_bound"] == pytest.approx(6.5) and g.bound == pytest.approx(6.5)
    assert 0 <= g.details["lp_seconds"] <= g.seconds <= elapsed
    assert 0 <= proven.seconds <= elapsed


def test_costs_are_ignored_under_a_site_count():
    a, w = overlap()
    g = greedy_cover(a, w, k=2, costs=np.array([100.0, 1.0, 1.0]))
    assert g.order.tolist() == [0, 1] and g.objective == 5.5


def test_budget_ratio_greedy_spends_the_budget_exactly():
    # disjoint gains 6, 4, 3 at costs 3, 1, 2 (ratios 2, 4, 1.5), budget 4:
    # candidate 1 (ratio 4, 3 left), candidate 0 costs exactly the 3 left, candidate 2
    # no longer fits. 4 + 6 = 10, the optimum.
    a, w = _disjoint([6.0, 4.0, 3.0])
    costs = np.array([3.0, 1.0, 2.0])
    g = greedy_cover(a, w, costs=costs, budget=4.0)
    assert g.order.tolist() == [1, 0] and g.gains.tolist() == [4.0, 6.0]
    assert g.status == "greedy"
    assert g.bound == 10.0 and g.gap == 0.0


def test_budget_bound_is_the_fractional_knapsack():
    # the same candidates, budget 3.5: 1 (cost 1), then 0 (cost 3) no longer fits, then 2
    # (cost 2): 4 + 3 = 7, the optimum ({0} alone gives 6, {0, 1} costs 4).
    a, w = _disjoint([6.0, 4.0, 3.0])
    costs = np.array([3.0, 1.0, 2.0])
    g = greedy_cover(a, w, costs=costs, budget=3.5, lp_time_limit=10.0)
    assert g.order.tolist() == [1, 2] and g.objective == 7.0
    # fractional knapsack by ratio: all of 1 (4) and 2.5/3 of 0 (5): 9; after 1:
    # 4 + 6 + 0.5/2 * 3 = 10.75; after 2: 7 + 6 = 13. Minoux = 9 = the LP bound.
    assert g.details["minoux_bound"] == pytest.approx(9.0)
    assert g.details["lagrangian_bound"] == pytest.approx(9.0)
    assert lp_bound(a, w, costs=costs, budget=3.5) == pytest.approx(9.0)
    assert g.bound == pytest.approx(9.0) and g.gap == pytest.approx(2 / 7)
    assert lagrangian_bound(a, w, costs=costs, budget=3.5, iterations=1) == pytest.approx(9.0)


def test_a_candidate_costing_the_whole_budget_counts_in_the_bounds():
    # gains 10 and 1 at costs 4 and 1, budget 4: candidate 0 alone uses the budget
    a, w = _disjoint([10.0, 1.0])
    costs = np.array([4.0, 1.0])
    g = greedy_cover(a, w, costs=costs, budget=4.0)
    assert g.order.tolist() == [0] and g.objective == 10.0
    assert g.details["minoux_bound"] == 10.0
    assert g.details["lagrangian_bound"] == pytest.approx(10.0)
    assert g.bound == 10.0 and g.gap == 0.0


def test_best_single_affordable_site_replaces_a_worse_ratio_greedy():
    # ratio greedy takes candidate 1 (2 / 0.5 = 4 per unit), then 0 no longer fits: 2.
    # Candidate 0 alone (cost 10 = the budget) covers 20.
    a2 = sparse.csr_matrix(np.array([[1, 1, 1, 1, 0], [0, 0, 0, 0, 1]], dtype=bool))
    w2 = np.array([5.0, 5.0, 5.0, 5.0, 2.0])
    g = greedy_cover(a2, w2, costs=np.array([10.0, 0.5]), budget=10.0)
    assert g.order.tolist() == [0] and g.gains.tolist() == [20.0] and g.objective == 20.0
    assert g.status == "greedy (best single site)"
    assert g.order.dtype.kind == "i"


def test_a_tie_with_the_best_single_site_keeps_the_ratio_greedy():
    # gains 10 (cost 1) and 10 (cost 5), budget 5: the ratio greedy takes 0 (ratio 10),
    # then 1 (cost 5 > 4 left) does not fit: 10. The best single site also covers 10.
    a, w = _disjoint([10.0, 10.0])
    g = greedy_cover(a, w, costs=np.array([1.0, 5.0]), budget=5.0)
    assert g.order.tolist() == [0] and g.objective == 10.0
    assert g.status == "greedy"


def test_no_affordable_candidate_selects_nothing():
    a, w = _disjoint([6.0, 4.0])
    g = greedy_cover(a, w, costs=np.array([3.0, 5.0]), budget=2.0)
    assert len(g.order) == 0 and g.objective == 0.0 and g.status == "greedy"
    assert g.bound == 0.0 and g.gap == 0.0


def test_gain_per_cost_decides_not_gain():
    # gains 6 and 5 at costs 3 and 1 (ratios 2 and 5), budget 3: 1 first (2 left), then 0
    # (cost 3) does not fit; the best single site 0 covers 6 > 5.
    a, w = _disjoint([6.0, 5.0])
    g = greedy_cover(a, w, costs=np.array([3.0, 1.0]), budget=4.0)
    assert g.order.tolist() == [1, 0] and g.objective == 11.0
    g3 = greedy_cover(a, w, costs=np.array([3.0, 1.0]), budget=3.0)
    assert g3.order.tolist() == [0] and g3.status == "greedy (best single site)"
    # ratios below 1 are still positive scores
    a3, w3 = _disjoint([0.5, 0.25])
    g4 = greedy_cover(a3, w3, costs=np.array([2.0, 2.0]), budget=4.0)
    assert g4.order.tolist() == [0, 1] and g4.objective == 0.75


def test_inconsistent_gains_fail_fast_instead_of_looping(monkeypatch):
    # the loop guard: a candidate re-queued a second time between two picks is a bug (its
    # exact score was the top of the queue). Gains that shrink at every evaluation make it.
    calls = []

    def shrinking(indptr, indices, remaining, j):
        calls.append(j)
        return 1.0 / 2 ** len(calls)

    monkeypatch.setattr(solvers, "_row_gain", shrinking)
    a, w = _disjoint([3.0, 2.0, 1.0])
    with pytest.raises(SolverError, match="re-queued"):
        greedy_cover(a, w, k=2, bound=False)
    assert len(calls) <= 4


@pytest.mark.parametrize("kwargs", [
    {"k": 0},
    {"k": -1},
    {},
    {"k": 2, "costs": np.ones(3), "budget": 3.0},
    {"budget": 3.0},
    {"costs": np.ones(2), "budget": 3.0},
    {"costs": np.array([1.0, np.inf, 1.0]), "budget": 3.0},
    {"costs": np.array([1.0, np.nan, 1.0]), "budget": 3.0},
    {"costs": np.array([1.0, 0.0, 1.0]), "budget": 3.0},
    {"costs": np.array([1.0, -1.0, 1.0]), "budget": 3.0},
    {"costs": np.ones(3), "budget": 0.0},
    {"costs": np.ones(3), "budget": -1.0},
    {"costs": np.ones(3), "budget": float("nan")},
])
def test_invalid_limits_are_rejected(kwargs):
    a = sparse.csr_matrix(np.eye(3, dtype=bool))
    with pytest.raises(InputError):
        greedy_cover(a, np.ones(3), **kwargs)


@pytest.mark.parametrize("weights", [
    [1.0, 1.0],  # two weights for three points
    [1.0, -0.5, 1.0],
    [1.0, np.nan, 1.0],
    [1.0, np.inf, 1.0],
])
def test_invalid_weights_are_rejected(weights):
    a = sparse.csr_matrix(np.eye(3, dtype=bool))
    with pytest.raises(InputError):
        greedy_cover(a, np.array(weights), k=1)


def test_smallest_valid_limits_and_plain_inputs_are_accepted():
    # a dense 0/1 matrix and integer weights; k = 1; a tiny cost and budget
    g = greedy_cover(np.array([[1, 0, 1], [0, 1, 0]]), [2, 5, 2], k=1)
    assert g.order.tolist() == [1] and g.objective == 5.0
    g2 = greedy_cover(np.array([[1, 0, 1], [0, 1, 0]]), [2, 5, 2],
                      costs=np.array([1e-9, 2e-9]), budget=1e-9)
    assert g2.order.tolist() == [0] and g2.objective == 4.0
    assert greedy_cover(np.eye(2), [0.0, 1.0], k=1).order.tolist() == [1]


def test_order_by_gain_of_a_given_selection():
    a, w = overlap()
    # B + C: B adds 3.5 (p0, p1, p4), C adds 3; A would add nothing after both
    order, gains = order_by_gain(a, w, [2, 0, 1])
    assert order.tolist() == [0, 1, 2] and gains.tolist() == [4.0, 1.5, 1.0]
    order, gains = order_by_gain(a, w, [2, 1])
    assert order.tolist() == [1, 2] and gains.tolist() == [3.5, 3.0]
    # integer weights, indices from a float column, and a site adding nothing (last, 0)
    # (B = 1 + 1 + 3 first, then A adds p2, p3; C's p5 weighs nothing)
    order, gains = order_by_gain(a, np.array([1, 1, 1, 1, 3, 0]), np.array([2.0, 1.0, 0.0]))
    assert order.tolist() == [1, 0, 2] and gains.tolist() == [5.0, 2.0, 0.0]
    order, gains = order_by_gain(a, w, [])
    assert order.dtype.kind == "i" and len(order) == 0 and len(gains) == 0


def test_a_covered_duplicate_on_top_does_not_end_the_selection():
    # A and B cover the same two points (2 + 2), C one more point (1). After A, B comes
    # off the queue with its stale 4 and adds nothing; C still adds 1.
    a = sparse.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=bool))
    g = greedy_cover(a, np.array([2.0, 2.0, 1.0]), k=3)
    assert g.order.tolist() == [0, 2] and g.gains.tolist() == [4.0, 1.0]


def test_re_queued_sites_keep_their_gain_per_cost():
    # gains 2 and 3 at costs 0.5 and 1 (ratios 4 and 3), budget 1.5: 0 first, then 1
    a, w = _disjoint([2.0, 3.0])
    g = greedy_cover(a, w, costs=np.array([0.5, 1.0]), budget=1.5)
    assert g.order.tolist() == [0, 1] and g.objective == 5.0
    # overlap: A (cost 2), B and C (cost 0.5 each), budget 1: B (ratio 7), then C: its
    # stale ratio 6 holds (p2, p3, p5 are still uncovered) -> B, C = 6.5
    b, v = overlap()
    g2 = greedy_cover(b, v, costs=np.array([2.0, 0.5, 0.5]), budget=1.0)
    assert g2.order.tolist() == [1, 2] and g2.gains.tolist() == [3.5, 3.0]


def test_best_single_site_is_the_heaviest_affordable_one():
    # 0: one point (1) for 0.5; 1: too expensive; 2: four points (20) for the whole budget
    a = sparse.csr_matrix(np.array([[0, 0, 0, 0, 1],
                                    [1, 1, 1, 1, 1],
                                    [1, 1, 1, 1, 0]], dtype=bool))
    w = np.array([5.0, 5.0, 5.0, 5.0, 1.0])
    g = greedy_cover(a, w, costs=np.array([0.5, 11.0, 10.0]), budget=10.0)
    assert g.order.tolist() == [2] and g.objective == 20.0
    assert g.status == "greedy (best single site)"


def test_the_lagrangian_bound_starts_from_the_greedy_value():
    rng = np.random.default_rng(3)
    a = sparse.csr_matrix(rng.uniform(size=(12, 60)) < 0.15)
    w = rng.integers(0, 10, 60).astype(float)
    g = greedy_cover(a, w, k=4)
    assert g.details["lagrangian_bound"] == lagrangian_bound(a, w, k=4, lower=g.objective)


def test_a_gap_of_exactly_the_lp_threshold_skips_the_lp():
    # the overlap instance plus a point of 994.5 that every site covers: greedy 1000,
    # Minoux 994.5 + 4 + (1.5 + 1) = 1001, so the gap is 1 / 1000 = LP_SKIP_GAP
    b, v = overlap()
    a = sparse.hstack([b, sparse.csr_matrix(np.ones((3, 1), dtype=bool))]).tocsr()
    w = np.append(v, 994.5)
    g = greedy_cover(a, w, k=2, lp_time_limit=10.0)
    assert g.objective == 1000.0 and g.details["minoux_bound"] == 1001.0
    assert g.gap == solvers.LP_SKIP_GAP == 0.001
    assert "lp_bound" not in g.details


def test_small_integer_weight_types_do_not_overflow():
    # household counts stored as uint8: one site covering 200 + 100 + 50 = 350 (> 255)
    a = sparse.csr_matrix(np.array([[1, 1, 1], [0, 0, 1]], dtype=bool))
    g = greedy_cover(a, np.array([200, 100, 50], dtype=np.uint8), k=1)
    assert g.order.tolist() == [0] and g.objective == 350.0
    assert g.details["minoux_bound"] == 350.0 and g.bound == 350.0 and g.gap == 0.0
