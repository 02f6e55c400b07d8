"""Hot spots at the edges of their rules: each threshold on the side it includes and the one
it excludes, with the expected values taken from the documented rule or worked by hand.

- a cell is tested from ``min_households`` households on (and never without households);
- two tested cells are enough for Gi*, one is not;
- a cell is hot when ``gi_q <= fdr`` (inclusive) and ``gi_z > 0`` (strict);
- Gi* calls a variable constant when its spread is rounding noise,
  ``s <= 1e-12 * max(|mean|, 1)``;
- the automatic analysis resolution is the finest whose median cell holds at least the
  target (inclusive), never coarser than 5; a set resolution may equal the run's own.
"""

import warnings

import h3
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from kantong.engine.config import PocketConfig
from kantong.engine.errors import InputError
from kantong.engine.pockets.hotspots import choose_resolution, eb_rate, gi_star, hot_cells

ORIGIN = h3.latlng_to_cell(0.05, 110.75, 8)


def _far_cells(n: int) -> list[str]:
    """``n`` resolution-8 cells about 1 degree apart: no two are neighbours, even at res 5."""
    return [h3.latlng_to_cell(0.05 + i, 110.75, 8) for i in range(n)]


def _cells(h3_ids, households, extreme) -> pd.DataFrame:
    return pd.DataFrame({"h3": list(h3_ids), "households": households,
                         "extreme_households": extreme})


# --- which cells are tested -------------------------------------------------------------

def test_a_cell_with_exactly_min_households_is_tested():
    cells = _cells(_far_cells(4), [5, 4, 5, 9], [1, 3, 4, 2])
    out = hot_cells(cells, config=PocketConfig(min_households=5))
    assert out["gi_z"].notna().tolist() == [True, False, True, True]
    assert out["gi_p"].notna().tolist() == [True, False, True, True]


def test_cells_of_one_household_are_tested_and_empty_cells_never():
    cells = _cells(_far_cells(4), [1, 0, 1, 7], [1, 0, 0, 2])
    for min_households in (0, 1):
        out = hot_cells(cells, config=PocketConfig(min_households=min_households))
        assert out["gi_z"].notna().tolist() == [True, False, True, True]
        assert not out["hot"].iloc[1]


def test_two_tested_cells_are_enough_and_one_is_not():
    # two cells, neither in the other's ring: Gi* of cell i is (x_i - xbar) / s = -1 and +1
    two = hot_cells(_cells(_far_cells(2), [20, 20], [2, 8]))
    rate = two["extreme_rate_eb"].to_numpy()
    assert rate[0] < rate[1]
    np.testing.assert_allclose(two["gi_z"], [-1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(two["gi_p"], stats.norm.sf([-1.0, 1.0]), rtol=1e-12)
    # one tested cell (the other is below min_households): nothing to compare it with
    one = hot_cells(_cells(_far_cells(2), [20, 2], [2, 1]),
                    config=PocketConfig(min_households=5))
    assert one["gi_z"].isna().all() and one["gi_q"].isna().all() and not one["hot"].any()


def test_gi_star_of_two_cells_that_are_not_neighbours():
    # n = 2, W_i = S1_i = 1: z_i = (x_i - xbar) / (s * sqrt((2 - 1) / 1)) = -1, +1
    z, p = gi_star(np.array([1.0, 3.0]), sp.identity(2, format="csr"))
    np.testing.assert_allclose(z, [-1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(p, stats.norm.sf([-1.0, 1.0]), rtol=1e-12)


# --- the hot rule: gi_q <= fdr and gi_z > 0 ----------------------------------------------

def _pocket_cells() -> pd.DataFrame:
    """A disk of 91 cells whose central 19 hold a high extreme-poor rate (seeded)."""
    rng = np.random.default_rng(11)
    cells = sorted(h3.grid_disk(ORIGIN, 5))
    core = set(h3.grid_disk(ORIGIN, 2))
    households = rng.poisson(40, len(cells)) + 1
    rate = np.where([c in core for c in cells], 0.45, 0.1)
    return _cells(cells, households, rng.binomial(households, rate))


def test_hot_is_q_at_most_fdr_and_z_positive():
    cells = _pocket_cells()
    for fdr in (0.05, 0.5, 0.9):
        out = hot_cells(cells, config=PocketConfig(fdr=fdr))
        expected = (out["gi_q"] <= fdr) & (out["gi_z"] > 0)
        assert out["hot"].tolist() == expected.tolist()
    # at fdr 0.9 the rule reaches cells of weak evidence (0 < z <= 1): they are hot too
    weak = (out["gi_z"] > 0) & (out["gi_z"] <= 1) & (out["gi_q"] <= 0.9)
    assert weak.any() and out.loc[weak, "hot"].all()


def test_a_cell_whose_q_equals_fdr_is_hot():
    cells = _pocket_cells()
    first = hot_cells(cells, config=PocketConfig(fdr=0.05))
    edge = first.loc[first["hot"], "gi_q"].max()  # the weakest discovery
    assert 0 < edge <= 0.05
    again = hot_cells(cells, config=PocketConfig(fdr=float(edge)))
    assert again["hot"].tolist() == first["hot"].tolist()  # the boundary is included


def test_cells_without_positive_z_are_never_hot():
    # every cell has the same rate: z = 0, p = 0.5, q = 0.5 <= fdr 0.9, but no hot spot
    cells = _cells(sorted(h3.grid_disk(ORIGIN, 2)), 20, 4)
    out = hot_cells(cells, config=PocketConfig(fdr=0.9))
    assert (out["gi_z"] == 0).all() and (out["gi_q"] == 0.5).all()
    assert not out["hot"].any()


# --- Gi*: when is a variable constant ----------------------------------------------------

@pytest.mark.parametrize(("centre", "half_spread", "constant"), [
    (0.0, 1e-12, True),    # s == 1e-12 exactly: still rounding noise
    (0.0, 1.5e-12, False),
    (1e6, 5e-7, True),     # relative: 1e-12 * 1e6 = 1e-6
    (1e6, 2e-6, False),
])
def test_gi_star_constant_tolerance(centre, half_spread, constant):
    x = np.array([centre - half_spread, centre + half_spread])
    assert (x.std() <= 1e-12 * max(abs(x.mean()), 1.0)) == constant  # the documented rule
    z, p = gi_star(x, sp.identity(2, format="csr"))
    if constant:
        assert z.tolist() == [0.0, 0.0] and p.tolist() == [0.5, 0.5]
    else:
        np.testing.assert_allclose(z, [-1.0, 1.0], rtol=1e-6)


# --- Empirical Bayes at the edges -------------------------------------------------------

def test_eb_rate_of_one_household_in_total():
    # m = 1 / 1: the prior mean is the only evidence there is
    np.testing.assert_allclose(eb_rate(np.array([1.0]), np.array([1.0])), [1.0])
    np.testing.assert_allclose(eb_rate(np.array([3.0]), np.array([10.0])), [0.3])
    # expected (fractional) counts whose total is under one household: m = 0.25 / 0.75
    np.testing.assert_allclose(eb_rate(np.array([0.25, 0.0]), np.array([0.5, 0.25])),
                               [1 / 3, 1 / 3])


def test_eb_rate_without_any_extreme_household_is_zero_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 warnings from empty cells
        out = eb_rate(np.zeros(4), np.array([0.0, 10.0, 3.0, 0.0]))
    assert out.tolist() == [0.0, 0.0, 0.0, 0.0]


# --- the analysis resolution -------------------------------------------------------------

def _uniform_cells(households: int, radius: int = 3) -> pd.DataFrame:
    cells = sorted(h3.grid_disk(ORIGIN, radius))
    return _cells(cells, households, 0)


def test_median_exactly_at_the_target_keeps_the_run_resolution():
    assert choose_resolution(_uniform_cells(10)) == 8  # median 10 >= 10
    assert choose_resolution(_uniform_cells(9), config=PocketConfig(
        auto_median_households=9)) == 8


def test_target_never_reached_stops_at_resolution_5():
    cells = _cells(_far_cells(3), 1, 0)  # one household per cell, one cell per res-5 parent
    assert len({h3.cell_to_parent(c, 5) for c in cells["h3"]}) == 3
    assert choose_resolution(cells) == 5


def test_analysis_resolution_may_equal_the_runs():
    cells = _uniform_cells(2)
    assert choose_resolution(cells, config=PocketConfig(analysis_resolution=8)) == 8
    with pytest.raises(InputError, match="finer"):
        choose_resolution(cells, config=PocketConfig(analysis_resolution=9))


def test_choose_resolution_of_no_cells_is_an_input_error():
    with pytest.raises(InputError):
        choose_resolution(_cells([], [], []))
