import math

import numpy as np
import pytest
from covering_cases import brute_force, covered
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from scipy import sparse

from kantong.engine.errors import InputError
from kantong.engine.sites.run import count_from_budget
from kantong.engine.sites.solvers import (
    exact_cover,
    greedy_cover,
    lagrangian_bound,
    lp_bound,
    order_by_gain,
)


def _instance(seed: int, n_c: int = 9, n_d: int = 40, density: float = 0.2):
    rng = np.random.default_rng(seed)
    a = rng.uniform(size=(n_c, n_d)) < density
    w = rng.integers(0, 20, n_d).astype(float)
    return sparse.csr_matrix(a), w


# no shrink phase: the example is a random seed, and a "smaller" seed is not a simpler
# instance (shrinking only re-runs the brute force many times)
@settings(max_examples=25, deadline=None,
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_greedy_vs_exact_vs_brute_force(seed, k):
    a, w = _instance(seed)
    opt = brute_force(a, w, k=k)
    g = greedy_cover(a, w, k=k)
    e = exact_cover(a, w, k=k, time_limit=10)
    assert e.objective == pytest.approx(opt)
    assert e.status == "Optimal" and e.gap == 0.0
    assert g.objective >= (1 - 1 / math.e) * opt - 1e-9
    assert g.bound >= opt - 1e-9  # the reported bound is a true upper bound
    assert g.details["minoux_bound"] >= opt - 1e-9
    assert lagrangian_bound(a, w, k=k, lower=g.objective) >= opt - 1e-9
    assert opt - 1e-9 <= lp_bound(a, w, k=k) <= g.details["minoux_bound"] + 1e-9
    assert g.objective > 0  # positive weights: the gap is defined relative to it
    assert g.gap == pytest.approx((g.bound - g.objective) / g.objective)
    assert len(g.order) <= k and len(e.order) <= k
    # the reported objective is the union value of the chosen sites (nothing counted twice)
    assert covered(a, w, g.order) == pytest.approx(g.objective)
    assert covered(a, w, e.order) == pytest.approx(e.objective)


def test_greedy_is_optimal_on_disjoint_sites():
    # each candidate covers its own points: the optimum is the k heaviest candidates
    a = sparse.csr_matrix(np.kron(np.eye(6, dtype=bool), np.ones((1, 3), dtype=bool)))
    w = np.arange(18, dtype=float)
    g = greedy_cover(a, w, k=3)
    e = exact_cover(a, w, k=3)
    assert g.order.tolist() == [5, 4, 3]
    assert g.objective == e.objective == float(w[9:].sum())
    assert g.gap == 0.0 and g.bound == g.objective


def test_gains_never_increase_and_cumulative_never_decreases():
    a, w = _instance(3, n_c=30, n_d=300, density=0.08)
    g = greedy_cover(a, w, k=12)
    assert (np.diff(g.gains) <= 1e-9).all()
    assert (np.diff(np.cumsum(g.gains)) >= 0).all()
    values = [covered(a, w, g.order[:i]) for i in range(len(g.order) + 1)]
    np.testing.assert_allclose(np.diff(values), g.gains)


def test_greedy_stops_when_nothing_is_left_to_cover():
    a = sparse.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=bool))
    w = np.array([2.0, 1.0, 0.0])
    g = greedy_cover(a, w, k=3)
    assert g.order.tolist() == [0] and g.objective == 3.0


def test_budget_with_costs_respected_and_best_single_site_fallback():
    a, w = _instance(11, n_c=8, n_d=50, density=0.3)
    costs = np.random.default_rng(1).uniform(1.0, 4.0, 8)
    opt = brute_force(a, w, costs=costs, budget=6.0)
    g = greedy_cover(a, w, costs=costs, budget=6.0)
    e = exact_cover(a, w, costs=costs, budget=6.0)
    assert costs[g.order].sum() <= 6.0 + 1e-9 and costs[e.order].sum() <= 6.0 + 1e-9
    assert e.objective == pytest.approx(opt)
    assert g.objective >= (1 - 1 / math.e) / 2 * opt and g.bound >= opt - 1e-9
    assert lagrangian_bound(a, w, costs=costs, budget=6.0) >= opt - 1e-9
    assert lp_bound(a, w, costs=costs, budget=6.0) >= opt - 1e-9
    # one expensive site covering a lot vs cheap sites with a better ratio but little total
    a2 = sparse.csr_matrix(np.array([[1, 1, 1, 1, 0], [0, 0, 0, 0, 1]], dtype=bool))
    w2 = np.array([5.0, 5.0, 5.0, 5.0, 2.0])
    g2 = greedy_cover(a2, w2, costs=np.array([10.0, 0.5]), budget=10.0)
    assert g2.order.tolist() == [0] and g2.objective == 20.0


def test_exact_reports_the_gap_when_stopped_by_its_time_limit():
    rng = np.random.default_rng(0)
    a = sparse.csr_matrix(rng.uniform(size=(300, 6000)) < 0.03)
    w = rng.integers(1, 5, 6000).astype(float)
    e = exact_cover(a, w, k=15, time_limit=0.3)
    assert e.status != "Optimal"
    assert e.bound >= e.objective > 0 and e.gap > 0
    assert e.gap == pytest.approx((e.bound - e.objective) / e.objective)
    assert e.objective >= e.details["greedy_objective"]  # warm-started with the greedy


def test_order_by_gain_sorts_a_given_solution():
    a = sparse.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=bool))
    w = np.array([1.0, 5.0, 2.0])
    order, gains = order_by_gain(a, w, np.array([2, 1, 3]))
    assert order.tolist() == [1, 2, 3] and gains.tolist() == [6.0, 2.0, 0.0]


def test_input_validation():
    a, w = _instance(0)
    with pytest.raises(InputError):
        greedy_cover(a, w, k=0)
    with pytest.raises(InputError):
        greedy_cover(a, w, k=2, budget=3.0, costs=np.ones(a.shape[0]))
    with pytest.raises(InputError):
        greedy_cover(a, w[:-1], k=2)
    with pytest.raises(InputError):
        exact_cover(a, w, budget=5.0)
    with pytest.raises(InputError):
        exact_cover(a, w, k=2, time_limit=0)


def test_count_from_budget():
    assert count_from_budget(17e9, 2.5e9) == 6  # Kayong Utara's Rp 17 bn, Rp 2.5 bn a site
    assert count_from_budget(3e9, 1e9) == 3
    with pytest.raises(InputError, match="below the cost"):
        count_from_budget(1e9, 2e9)
    with pytest.raises(InputError):
        count_from_budget(1e9, 0)


def test_lagrangian_bound_is_tighter_than_minoux_on_overlapping_coverage():
    a, w = _instance(5, n_c=40, n_d=500, density=0.05)
    g = greedy_cover(a, w, k=6, lp_time_limit=10)
    e = exact_cover(a, w, k=6)
    lag = g.details["lagrangian_bound"]
    assert e.objective - 1e-9 <= g.details["lp_bound"] <= lag + 1e-6
    assert lag < g.details["minoux_bound"]
    assert g.bound == pytest.approx(min(lag, g.details["lp_bound"], g.details["minoux_bound"]))
