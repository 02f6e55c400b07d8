"""Exact maximal covering (HiGHS MILP) on hand-checked instances, and its fault handling.

Optima come from the definition (every subset checked by hand in the comments, or by
``itertools.combinations``); HiGHS faults are emulated by wrapping the solver instance.
"""

import itertools
import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
from covering_cases import brute_force, overlap
from scipy import sparse

from kantong.engine.errors import InputError, SolverError
from kantong.engine.sites import solvers
from kantong.engine.sites.highs import new_highs
from kantong.engine.sites.solvers import exact_cover, greedy_cover


def test_exact_beats_the_greedy_and_reports_the_model():
    a, w = overlap()
    e = exact_cover(a, w, k=2)
    assert brute_force(a, w, k=2) == 6.5
    assert e.order.tolist() == [1, 2] and e.gains.tolist() == [3.5, 3.0]  # B adds 3.5, C 3
    assert e.objective == 6.5 and e.bound == 6.5 and e.gap == 0.0
    assert e.method == "exact" and e.status == "Optimal"
    d = e.details
    assert d["model_status"] == "Optimal"
    assert d["highs_objective"] == pytest.approx(6.5)
    assert d["highs_dual_bound"] == pytest.approx(6.5) and d["highs_mip_gap"] == 0.0
    assert d["greedy_objective"] == 5.5 and d["greedy_bound"] == pytest.approx(6.5)
    # p0, p1 (A, B) and p2, p3 (A, C) merge: 4 distinct points of 6
    assert d["candidates"] == 3 and d["points"] == 6 and d["merged_points"] == 4
    assert d["nodes"] >= 0


def test_exact_under_a_budget():
    # disjoint gains 6, 4, 3 at costs 3, 1, 2, budget 3.5: {1, 2} (cost 3) covers 7
    a = sparse.csr_matrix(np.eye(3, dtype=bool))
    w = np.array([6.0, 4.0, 3.0])
    costs = np.array([3.0, 1.0, 2.0])
    e = exact_cover(a, w, costs=costs, budget=3.5, time_limit=0.5)
    assert brute_force(a, w, costs=costs, budget=3.5) == 7.0
    assert e.order.tolist() == [1, 2] and e.objective == 7.0 and e.status == "Optimal"
    # budget 4: {0, 1} (cost 4, exactly the budget) covers 10
    e4 = exact_cover(a, w, costs=costs, budget=4.0)
    assert e4.order.tolist() == [0, 1] and e4.objective == 10.0


def test_exact_on_one_merged_point():
    # both points are covered by candidate 1 only: one merged point of weight 5
    a = sparse.csr_matrix(np.array([[0, 0], [1, 1]], dtype=bool))
    e = exact_cover(a, np.array([2.0, 3.0]), k=1)
    assert e.order.tolist() == [1] and e.objective == 5.0 and e.status == "Optimal"
    assert e.details["merged_points"] == 1


def test_exact_with_nothing_to_cover():
    a = sparse.csr_matrix(np.array([[1, 0], [0, 1]], dtype=bool))
    t0 = time.perf_counter()
    e = exact_cover(a, np.zeros(2), k=1)
    assert 0 <= e.seconds <= time.perf_counter() - t0
    assert e.order.dtype.kind == "i" and len(e.order) == 0 and len(e.gains) == 0
    assert e.objective == 0.0 and e.bound == 0.0 and e.gap == 0.0
    assert e.status == "Optimal" and e.method == "exact"
    assert e.details["merged_points"] == 0


def test_exact_is_optimal_to_one_household_on_a_large_total():
    # 30 sites, 300 points plus one point of a million households that every site covers:
    # HiGHS's default relative gap (1e-4, here 100 households) would stop at the greedy's
    # 1000896; the best 3 sites (all 4060 triples checked) cover one household more.
    rng = np.random.default_rng(18)
    a = np.hstack([rng.uniform(size=(30, 300)) < 0.08, np.ones((30, 1), dtype=bool)])
    w = np.append(rng.integers(0, 20, 300).astype(float), 1e6)
    triples = np.array(list(itertools.combinations(range(30), 3)))
    covered = a[triples[:, 0]] | a[triples[:, 1]] | a[triples[:, 2]]
    best = float((covered * w).sum(axis=1).max())
    e = exact_cover(sparse.csr_matrix(a), w, k=3)
    assert best == 1000897.0 and e.details["greedy_objective"] == best - 1
    assert e.objective == best and e.status == "Optimal" and e.gap == 0.0


@pytest.mark.parametrize("limit", [0, -1.0, float("nan")])
def test_exact_rejects_a_time_limit_that_is_not_positive(limit):
    a, w = overlap()
    with pytest.raises(InputError):
        exact_cover(a, w, k=2, time_limit=limit)


def test_exact_with_a_thread_count_after_other_solves():
    # HiGHS fixes a thread's scheduler at its first run; a later thread count other than
    # that one used to make HiGHS refuse to run ("no feasible site selection (Not Set)")
    a, w = overlap()
    assert exact_cover(a, w, k=2).objective == 6.5
    for threads in (1, 2, 1):
        e = exact_cover(a, w, k=2, threads=threads, initial=np.array([0, 2]))
        assert e.order.tolist() == [1, 2] and e.objective == 6.5
    assert exact_cover(a, w, k=2).objective == 6.5


class _Spy:
    """Wraps a HiGHS instance; records the warm start and can fake a faulty answer."""

    def __init__(self, log: list, fault: str | None):
        self.h, self.warm, self.fault = new_highs(), None, fault
        log.append(self)

    def __getattr__(self, name):
        return getattr(self.h, name)

    def setSolution(self, n, idx, values):  # noqa: N802 (HiGHS's name)
        self.warm = np.array(values, dtype=float)
        self.warm_index = np.array(idx)
        return self.h.setSolution(n, idx, values)

    def getSolution(self):  # noqa: N802
        if self.fault == "echo" and self.warm is not None:
            # HiGHS 1.16 after presolve solved the model: the warm start comes back
            return SimpleNamespace(col_value=list(self.warm))
        if self.fault == "empty":
            return SimpleNamespace(col_value=[0.0] * len(self.h.getSolution().col_value))
        return self.h.getSolution()

    def getInfo(self):  # noqa: N802
        info = self.h.getInfo()
        fields = {name: getattr(info, name) for name in (
            "primal_solution_status", "objective_function_value", "mip_dual_bound",
            "mip_gap", "mip_node_count")}
        if self.fault == "infeasible":
            fields.update(primal_solution_status=0, objective_function_value=0.0)
        if self.fault == "loose dual":  # "Optimal" within mip_abs_gap (below one household)
            fields.update(mip_dual_bound=info.mip_dual_bound + 0.5)
        if self.fault == "noisy":  # the objective with rounding noise
            fields.update(objective_function_value=info.objective_function_value * (1 + 1e-8))
        return SimpleNamespace(**fields)


def _spy(monkeypatch, fault=None) -> list:
    log: list = []
    monkeypatch.setattr(solvers, "new_highs", lambda: _Spy(log, fault))
    return log


def test_the_greedy_solution_is_the_warm_start(monkeypatch):
    log = _spy(monkeypatch)
    a, w = overlap()
    e = exact_cover(a, w, k=2)
    assert len(log) == 1 and e.objective == 6.5  # solved once: HiGHS's answer agreed
    warm = log[0].warm
    assert log[0].warm_index.tolist() == list(range(3 + 4))  # x (3 sites), y (4 points)
    assert warm[:3].tolist() == [1.0, 1.0, 0.0]  # greedy: A, B
    # A and B cover the merged points {p0, p1}, {p2, p3}, {p4}; not {p5}
    assert sorted(warm[3:].tolist()) == [0.0, 1.0, 1.0, 1.0]


def test_a_given_start_overlapping_twice_is_a_valid_warm_start(monkeypatch):
    log = _spy(monkeypatch)
    a, w = overlap()
    exact_cover(a, w, k=2, initial=[0, 1])
    # A and B both cover p0, p1: y stays at most 1
    assert log[0].warm[:3].tolist() == [1.0, 1.0, 0.0]
    assert log[0].warm.max() == 1.0
    # one site, given as a float (a table column): C covers {p2, p3} and {p5}
    exact_cover(a, w, k=2, initial=np.array([2.0]))
    assert log[1].warm[:3].tolist() == [0.0, 0.0, 1.0]
    assert sorted(log[1].warm[3:].tolist()) == [0.0, 0.0, 1.0, 1.0]
    # an empty start: no warm start at all
    exact_cover(a, w, k=2, initial=[])
    assert log[2].warm is None


def test_time_limit_and_threads_reach_highs(monkeypatch):
    log = _spy(monkeypatch)
    a, w = overlap()
    exact_cover(a, w, k=2, time_limit=7.5, threads=1)
    assert log[0].getOptionValue("time_limit")[1] == 7.5
    assert log[0].getOptionValue("threads")[1] == 1
    assert log[0].getOptionValue("mip_rel_gap")[1] == 0.0


def test_warm_start_handed_back_is_solved_again_cold(monkeypatch):
    log = _spy(monkeypatch, fault="echo")
    a, w = overlap()
    e = exact_cover(a, w, k=2)
    # the first answer (the greedy's 5.5 under HiGHS's objective 6.5) is not trusted
    assert len(log) == 2 and log[1].warm is None
    assert e.objective == 6.5 and e.order.tolist() == [1, 2] and e.status == "Optimal"


def test_the_cold_solve_keeps_the_budget_and_the_settings(monkeypatch):
    log = _spy(monkeypatch, fault="echo")
    # disjoint gains 6, 4, 3 at costs 3, 1, 2, budget 4.5: the ratio greedy takes 1 and 0
    # (10); the cold solve must keep the budget: {0, 1} (10), not all three (13)
    a = sparse.csr_matrix(np.eye(3, dtype=bool))
    costs = np.array([3.0, 1.0, 2.0])
    e = exact_cover(a, np.array([6.0, 4.0, 3.0]), costs=costs, budget=4.5, time_limit=7.5,
                    threads=1, initial=[2])
    assert len(log) == 2 and log[1].warm is None
    assert log[1].getOptionValue("time_limit")[1] == 7.5
    assert log[1].getOptionValue("threads")[1] == 1
    assert e.order.tolist() == [0, 1] and e.objective == 10.0


def test_proven_optimal_means_gap_zero_and_bound_equal_to_the_objective():
    # HiGHS's dual bound here is 1001.0000000000028 for an optimum of 1001 (checked over
    # all 4060 triples): "Optimal" is reported with bound = objective and gap exactly 0
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(30, 300)) < 0.08
    w = rng.integers(0, 20, 300).astype(float)
    triples = np.array(list(itertools.combinations(range(30), 3)))
    best = float(((a[triples[:, 0]] | a[triples[:, 1]] | a[triples[:, 2]]) * w).sum(axis=1).max())
    t0 = time.perf_counter()
    e = exact_cover(sparse.csr_matrix(a), w, k=3)
    assert 0 <= e.seconds <= time.perf_counter() - t0
    assert e.objective == best and e.status == "Optimal"
    assert e.bound == e.objective and e.gap == 0.0


def test_a_solution_worse_than_the_greedy_is_replaced_by_the_greedy(monkeypatch):
    _spy(monkeypatch, fault="empty")
    a, w = overlap()
    e = exact_cover(a, w, k=2, initial=[])
    g = greedy_cover(a, w, k=2)
    assert e.order.tolist() == g.order.tolist() and e.gains.tolist() == g.gains.tolist()
    assert e.objective == 5.5


def test_optimal_within_the_gap_tolerance_reports_the_objective_as_bound(monkeypatch):
    # HiGHS says "Optimal" once bound - incumbent < one household; its dual bound may then
    # lie above the optimum (here by 0.5): the reported bound is the objective, gap 0
    _spy(monkeypatch, fault="loose dual")
    rng = np.random.default_rng(19)
    a = rng.uniform(size=(30, 300)) < 0.08
    w = rng.integers(0, 20, 300).astype(float)
    triples = np.array(list(itertools.combinations(range(30), 3)))
    best = float(((a[triples[:, 0]] | a[triples[:, 1]] | a[triples[:, 2]]) * w).sum(axis=1).max())
    e = exact_cover(sparse.csr_matrix(a), w, k=3)
    assert e.objective == best and e.status == "Optimal"
    assert e.details["greedy_bound"] > best + 0.5  # (the greedy's bounds do not hide it)
    assert e.details["highs_dual_bound"] >= best + 0.5 - 1e-6
    assert e.bound == best and e.gap == 0.0


def test_rounding_noise_in_the_objective_is_not_a_handed_back_warm_start(monkeypatch):
    log = _spy(monkeypatch, fault="noisy")
    a, w = overlap()
    e = exact_cover(a, w, k=2)
    assert len(log) == 1 and e.objective == 6.5


def test_highs_may_stop_once_optimal_to_one_step_of_the_weights(monkeypatch):
    log = _spy(monkeypatch)
    a, w = overlap()
    exact_cover(a, w.round(), k=2)  # counts: steps of 1
    assert 1 - 1e-5 < log[0].getOptionValue("mip_abs_gap")[1] < 1
    exact_cover(a, w, k=2)  # p4 weighs 1.5: steps of 1/8
    assert 0.125 - 1e-5 < log[1].getOptionValue("mip_abs_gap")[1] < 0.125


def test_no_feasible_solution_is_an_error(monkeypatch):
    _spy(monkeypatch, fault="infeasible")
    a, w = overlap()
    with pytest.raises(SolverError, match="no feasible"):
        exact_cover(a, w, k=2)


def test_options_highs_rejects_are_errors():
    h = new_highs()
    solvers._set_options(h, time_limit=1.0, mip_rel_gap=0.0)
    with pytest.raises(SolverError, match="time_limit"):
        solvers._set_options(h, time_limit=-1.0)
    with pytest.raises(SolverError):
        solvers._set_options(h, no_such_option=1.0)


def test_gap_definition():
    assert solvers._gap(5.0, 6.0) == pytest.approx(0.2)
    assert solvers._gap(0.5, 0.75) == pytest.approx(0.5)
    assert solvers._gap(5.0, 5.0) == 0.0
    assert solvers._gap(5.0, 4.0) == 0.0  # a bound below the objective proves optimality
    assert solvers._gap(0.0, 0.0) == 0.0
    assert solvers._gap(0.0, 2.0) == math.inf
    assert math.isnan(solvers._gap(5.0, math.nan))


@pytest.mark.parametrize(("weights", "step"), [
    ([0.0, 3.0, 12.0], 1.0),
    ([0.5, 0.125, 2.0], 0.125),
    ([0.3, 1.0], 1e-6),
    ([1.0 + 1e-12, 2.0], 1.0),
    ([1.0 + 1e-6, 2.0], 1e-6),
])
def test_granularity_is_the_step_of_possible_objectives(weights, step):
    assert solvers._granularity(np.array(weights)) == step
