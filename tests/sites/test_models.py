"""The new site models against spopt (PuLP + CBC) and brute force on small instances.

Expected values come from independent references: spopt's LSCP, PMedian and PCenter on the
same cost matrices, an enumeration of every K-subset, and (capacity) a per-household
simulation of the AccessMod rule and scipy's ``linprog`` for the best allocation.
"""

import itertools
import warnings

import numpy as np
import pulp
import pytest
from scipy import sparse
from scipy.optimize import linprog

from kantong.engine.errors import InputError
from kantong.engine.sites import capacity, lscp, pcenter, pmedian

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from spopt.locate import LSCP, PCenter, PMedian


def _instance(seed: int, n_d: int = 25, n_c: int = 10):
    """Uniform points in a 10 x 10 square: distances (demand x candidates) and weights."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 10, (n_d, 2))
    c = rng.uniform(0, 10, (n_c, 2))
    dist = np.sqrt(((d[:, None] - c[None]) ** 2).sum(-1))
    return dist, rng.integers(1, 9, n_d).astype(float)


def _cbc():
    return pulp.PULP_CBC_CMD(msg=False)


def _spopt(build):
    """Build and solve a spopt model (PuLP warns about its own deprecated calls)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pulp.value(build().solve(_cbc()).problem.objective)


@pytest.mark.parametrize("seed", range(6))
def test_min_sites_equals_spopt_lscp(seed):
    dist, w = _instance(seed)
    radius = max(3.0, float(dist.min(axis=1).max()))  # every point coverable
    expected = round(_spopt(lambda: LSCP.from_cost_matrix(dist, radius)))
    cover = sparse.csr_matrix(dist.T <= radius)
    exact = lscp.exact_min_sites(cover, w)
    assert exact.objective == expected and exact.status == "Optimal" and exact.gap == 0
    assert (cover[exact.order].toarray().any(axis=0)).all()  # the sites cover every point
    greedy = lscp.greedy_min_sites(cover, w)
    assert greedy.bound <= expected <= greedy.objective  # LP bound and heuristic bracket it
    assert (cover[greedy.order].toarray().any(axis=0)).all()


def test_min_sites_with_a_target_share_is_the_fewest_by_enumeration():
    dist, w = _instance(7, n_d=20, n_c=8)
    cover = dist.T <= 2.5
    need = 0.7 * w[cover.any(axis=0)].sum()
    best = next(r for r in range(9) if any(
        w[cover[list(s)].any(axis=0)].sum() >= need for s in
        itertools.combinations(range(8), r)))
    res = lscp.exact_min_sites(sparse.csr_matrix(cover), w, required=need)
    assert res.objective == best
    assert w[cover[res.order].any(axis=0)].sum() >= need
    with pytest.raises(InputError, match="exceeds"):
        lscp.exact_min_sites(sparse.csr_matrix(cover), w, required=w.sum() * 2)


def test_min_sites_with_a_thread_count_after_other_solves():
    # HiGHS keeps the thread scheduler of its first run; a later, different thread count
    # used to leave the model "Not Set" and fall back silently to the greedy answer
    rng = np.random.default_rng(3)
    cover = sparse.csr_matrix(rng.random((60, 300)) < 0.05)
    w = rng.random(300) + 0.5
    best = lscp.exact_min_sites(cover, w)
    assert best.details["model_status"] == "Optimal"
    assert best.objective < best.details["greedy_objective"]  # the instance tells them apart
    for threads in (1, 2, 1):
        res = lscp.exact_min_sites(cover, w, threads=threads)
        assert res.details["model_status"] == "Optimal" and res.objective == best.objective


@pytest.mark.parametrize(("seed", "k"), [(0, 2), (1, 3), (2, 4), (3, 3)])
def test_min_travel_equals_spopt_pmedian(seed, k):
    dist, w = _instance(seed)
    expected = _spopt(lambda: PMedian.from_cost_matrix(dist, w, k))
    brute = min((w * dist[:, list(s)].min(axis=1)).sum()
                for s in itertools.combinations(range(dist.shape[1]), k))
    base = np.full(len(w), dist.max() + 1.0)  # no existing facility: every point is assigned
    exact = pmedian.exact_min_travel(sparse.csr_matrix(dist.T), w, base, k=k)
    assert exact.objective == pytest.approx(expected, rel=1e-6)
    assert exact.objective == pytest.approx(brute, rel=1e-9)
    assert exact.status == "Optimal" and len(exact.order) == k
    heur = pmedian.greedy_min_travel(sparse.csr_matrix(dist.T), w, base, k=k,
                                     lp_time_limit=10)
    assert heur.bound <= brute + 1e-6 <= heur.objective + 2e-6  # a true lower bound
    assert heur.objective <= 1.01 * brute  # within 1 % on these instances


def test_min_travel_counts_existing_facilities_like_spopt_predefined():
    dist, w = _instance(11, n_c=9)
    existing = [0, 4]
    k = 2
    pre = np.zeros(dist.shape[1], dtype=int)
    pre[existing] = 1
    expected = _spopt(lambda: PMedian.from_cost_matrix(dist, w, k + len(existing),
                                                       predefined_facilities_arr=pre))
    base = dist[:, existing].min(axis=1)
    cand = [j for j in range(dist.shape[1]) if j not in existing]
    res = pmedian.exact_min_travel(sparse.csr_matrix(dist[:, cand].T), w, base, k=k)
    assert res.objective == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("seed", "k"), [(0, 2), (2, 3), (5, 3), (6, 4)])
def test_min_max_travel_equals_spopt_pcenter(seed, k):
    dist, w = _instance(seed)
    expected = _spopt(lambda: PCenter.from_cost_matrix(dist, k))
    brute = min(dist[:, list(s)].min(axis=1).max()
                for s in itertools.combinations(range(dist.shape[1]), k))
    base = np.full(len(w), dist.max() + 1.0)
    exact = pcenter.exact_min_max_travel(sparse.csr_matrix(dist.T), w, base, k=k)
    assert exact.objective == pytest.approx(expected, rel=1e-6)
    assert exact.objective == pytest.approx(brute, rel=1e-12)
    assert exact.status == "Optimal" and exact.gap == 0
    heur = pcenter.greedy_min_max_travel(sparse.csr_matrix(dist.T), w, base, k=k)
    assert heur.bound <= brute + 1e-9 <= heur.objective + 1e-9


def _csr(t: np.ndarray) -> sparse.csr_matrix:
    ok = np.isfinite(t)
    return sparse.csr_matrix((t[ok], np.nonzero(ok)[1],
                              np.concatenate([[0], np.cumsum(ok.sum(axis=1))])), shape=t.shape)


def _rule_by_household(t, demand, cap, order):
    """Reference: each facility in turn takes one household at a time, nearest first."""
    left = demand.astype(int).copy()
    used = np.zeros(len(cap), dtype=int)
    for f in order:
        for i in sorted(np.flatnonzero(np.isfinite(t[f])), key=lambda i: (t[f, i], i)):
            while left[i] > 0 and used[f] < cap[f]:
                left[i] -= 1
                used[f] += 1
    return demand - left, used


def _best_allocation(t, demand, value, cap, sites) -> float:
    pairs = [(j, i) for j in sites for i in range(len(demand)) if np.isfinite(t[j, i])]
    if not pairs:
        return 0.0
    a = [[1.0 if p[1] == i else 0.0 for p in pairs] for i in range(len(demand))]
    a += [[1.0 if p[0] == j else 0.0 for p in pairs] for j in sites]
    res = linprog([-value[i] for _, i in pairs], A_ub=a,
                  b_ub=list(demand) + [cap[j] for j in sites], bounds=(0, None),
                  method="highs")
    return -res.fun


@pytest.mark.parametrize("seed", range(12))
def test_capacity_rule_and_exact_choice_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 10, (5, 7))
    t[t > 6] = np.inf
    demand = rng.integers(0, 6, 7).astype(float)
    cap = rng.integers(1, 9, 5).astype(float)
    order = rng.permutation(5)
    alloc = capacity.allocate(_csr(t), demand, cap, order=order)
    served, used = _rule_by_household(t, demand, cap, order)
    np.testing.assert_allclose(alloc.served, served)
    np.testing.assert_allclose(alloc.used, used)
    assert (alloc.used <= cap).all() and (alloc.served <= demand).all()
    value = rng.integers(0, 3, 7).astype(float)
    best = max(_best_allocation(t, demand, value, cap, s)
               for s in itertools.combinations(range(5), 2))
    res, chosen = capacity.exact_capacitated(_csr(t), demand, value, cap, k=2)
    assert res.objective == pytest.approx(best, abs=1e-6)
    assert (chosen.used <= cap[res.order] + 1e-6).all()
    assert (chosen.served <= demand + 1e-6).all()
    greedy, g_alloc = capacity.greedy_capacitated(_csr(t), demand, value, cap, k=2)
    assert greedy.objective <= best + 1e-9
    assert (g_alloc.used <= cap[greedy.order] + 1e-9).all()


def test_ties_go_to_the_lowest_index():
    # two identical candidates: every model picks the first
    t = sparse.csr_matrix(np.array([[1.0, 1.0], [1.0, 1.0], [5.0, 5.0]]))
    w = np.ones(2)
    base = np.full(2, 10.0)
    assert pmedian.greedy_min_travel(t, w, base, k=1).order.tolist() == [0]
    assert pmedian.exact_min_travel(t, w, base, k=1).order.tolist() == [0]
    assert lscp.greedy_min_sites(t > 0, w).order.tolist() == [0]
    cap_res, _ = capacity.greedy_capacitated(t, np.full(2, 3.0), np.ones(2),
                                             np.full(3, 10.0), k=1)
    assert cap_res.order.tolist() == [0]
