"""Hot spots on the inputs users hand them: other dtypes (float32, nullable pandas columns,
integer and fractional counts), unsorted cells and their own index, isolated and single
cells, values far from zero. Expected values from the Ord & Getis formula written as a loop,
Marshall's estimator written out, a pandas groupby with h3-py parents, h3-py disks.
"""

import h3
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from kantong.engine.config import PocketConfig
from kantong.engine.errors import InputError
from kantong.engine.pockets.hotspots import (
    bh_adjust,
    coarsen,
    eb_rate,
    gi_star,
    hot_cells,
    neighbour_weights,
)

ORIGIN = h3.latlng_to_cell(0.05, 110.75, 8)
FAR = h3.latlng_to_cell(3.05, 110.75, 8)  # no neighbour of anything near ORIGIN


def _gi_loop(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Ord & Getis (1995) Gi* with general weights, one cell at a time, in float64."""
    x = np.asarray(x, dtype="float64")
    w = np.asarray(w, dtype="float64")
    n, xbar, s = len(x), x.mean(), x.std()
    z = []
    for i in range(n):
        wi, s1 = w[i].sum(), (w[i] ** 2).sum()
        z.append((w[i] @ x - xbar * wi) / (s * np.sqrt((n * s1 - wi**2) / (n - 1))))
    return np.array(z)


# --- neighbour weights -------------------------------------------------------------------

def test_default_neighbours_are_the_six_touching_cells():
    cells = sorted(h3.grid_disk(ORIGIN, 2))
    pos = {c: i for i, c in enumerate(cells)}
    w = neighbour_weights(cells)
    for i, c in enumerate(cells):
        assert w[i].indices.tolist() == sorted(pos[n] for n in h3.grid_disk(c, 1) if n in pos)


def test_an_isolated_last_cell_keeps_its_row_and_column():
    cells = [*sorted(h3.grid_disk(ORIGIN, 1)), FAR]
    w = neighbour_weights(cells, k_ring=1, include_self=False)
    assert w.shape == (8, 8)
    assert w[7].nnz == 0 and w[:, 7].nnz == 0
    assert w.sum(axis=1).A1.tolist() == [*[3.0 if c != ORIGIN else 6.0 for c in cells[:7]], 0]


def test_neighbour_weights_of_no_cell_and_of_one_cell():
    assert neighbour_weights([]).shape == (0, 0)
    assert neighbour_weights([ORIGIN]).toarray().tolist() == [[1.0]]
    assert neighbour_weights([ORIGIN], include_self=False).toarray().tolist() == [[0.0]]


# --- Gi*: precision and dtypes -----------------------------------------------------------

def test_gi_star_on_values_far_from_zero():
    # a mean of 10^6 and a spread of 10^-3: E[x^2] - xbar^2 would keep no digit of s^2
    cells = sorted(h3.grid_disk(ORIGIN, 3))
    w = neighbour_weights(cells, k_ring=1)
    x = 1e6 + np.random.default_rng(5).normal(0.0, 1e-3, len(cells))
    z, _ = gi_star(x, w)
    np.testing.assert_allclose(z, _gi_loop(x, w.toarray()), rtol=1e-6, atol=1e-6)
    assert np.abs(z).max() > 1  # real signal, not all near 0


def test_gi_star_computes_in_float64_from_float32_inputs():
    cells = sorted(h3.grid_disk(ORIGIN, 3))
    rng = np.random.default_rng(6)
    binary = neighbour_weights(cells, k_ring=2).toarray()
    w = (binary * rng.uniform(0.1, 1.0, binary.shape)).astype("float32")  # general weights
    x = rng.gamma(2.0, 0.1, len(cells)).astype("float32")
    z, p = gi_star(x, sp.csr_matrix(w))
    expected = _gi_loop(x, w)  # the same float32 numbers, computed in float64
    np.testing.assert_allclose(z, expected, rtol=1e-10)
    np.testing.assert_allclose(p, stats.norm.sf(expected), rtol=1e-9)


def test_gi_star_rejects_missing_values_of_a_nullable_column():
    w = neighbour_weights(sorted(h3.grid_disk(ORIGIN, 1)))
    values = pd.Series([0.1, 0.2, None, 0.3, 0.1, 0.2, 0.4], dtype="Float64")
    with pytest.raises(InputError, match="finite"):
        gi_star(values, w)


# --- BH q-values -------------------------------------------------------------------------

def test_bh_adjust_of_a_nullable_column_with_missing_values():
    p = pd.Series([0.01, None, 0.04, 0.03, 0.5], dtype="Float64")
    q = bh_adjust(p)
    assert q.dtype == np.float64 and np.isnan(q[1])
    np.testing.assert_allclose(np.delete(q, 1),
                               stats.false_discovery_control([0.01, 0.04, 0.03, 0.5]))


def test_bh_adjust_of_one_none_and_tied_p_values():
    assert bh_adjust(np.array([0.03])).tolist() == [0.03]  # m = 1: q = p
    assert bh_adjust(np.zeros(0)).size == 0
    assert np.isnan(bh_adjust(np.array([np.nan]))).all()
    tied = np.array([0.02, 0.04, 0.02, 0.9, 0.02])
    q = bh_adjust(tied)
    np.testing.assert_allclose(q, stats.false_discovery_control(tied))
    assert q[0] == q[2] == q[4] == pytest.approx(0.02 * 5 / 3)
    # float32 p-values are adjusted in float64: q = p * m / rank without float32 rounding
    p32 = np.array([0.011, 0.0301, 0.047, 0.52, 0.0033], dtype="float32")
    np.testing.assert_allclose(bh_adjust(p32), stats.false_discovery_control(
        p32.astype("float64")), rtol=1e-12)
    near_one = np.array([0.97, 0.99, 0.98])
    np.testing.assert_allclose(bh_adjust(near_one), [0.99, 0.99, 0.99])  # never above 1


# --- Empirical Bayes: dtypes -------------------------------------------------------------

def _marshall(events, base):
    """Marshall's (1991) global EB estimator written out (base 0: the prior mean)."""
    m = sum(events) / sum(base)
    rates = [e / b if b > 0 else m for e, b in zip(events, base, strict=True)]
    s2 = (sum(b * (r - m) ** 2 for r, b in zip(rates, base, strict=True)) / sum(base)
          - m / (sum(base) / len(base)))
    assert s2 > 0
    return [m + (r - m) * (s2 / (s2 + m / b) if b > 0 else 0.0)
            for r, b in zip(rates, base, strict=True)]


EVENTS = [0.0, 18.0, 1.0, 30.0, 0.0, 1.0, 2.5]
BASE = [20.0, 20.0, 10.0, 40.0, 0.0, 1.0, 3.5]  # a unit of 1 household, one of none


def test_eb_rate_is_marshalls_estimator_with_units_of_one_and_no_household():
    np.testing.assert_allclose(eb_rate(np.array(EVENTS), np.array(BASE)),
                               _marshall(EVENTS, BASE), rtol=1e-12)


def test_eb_rate_computes_in_float64_from_float32_counts():
    # expected (fractional) counts stored as float32: their sums must not round in float32
    events = np.array([0.3, 18.7, 1.1, 29.9, 0.0, 0.9, 2.35], dtype="float32")
    base = np.array([20.2, 20.1, 10.3, 40.7, 0.0, 1.0, 3.45], dtype="float32")
    out = eb_rate(events, base)
    assert out.dtype == np.float64
    expected = _marshall(events.astype("float64").tolist(), base.astype("float64").tolist())
    np.testing.assert_allclose(out, expected, rtol=1e-12)


# --- coarsening --------------------------------------------------------------------------

def _shuffled_cells(rng: np.random.Generator, counts) -> pd.DataFrame:
    cells = list(h3.grid_disk(ORIGIN, 6))
    rng.shuffle(cells)
    return pd.DataFrame({"h3": cells, "households": counts(len(cells)),
                         "extreme_households": counts(len(cells))})


def _naive_parents(cells: pd.DataFrame, resolution: int) -> pd.DataFrame:
    parent = [h3.cell_to_parent(c, resolution) for c in cells["h3"]]
    sums = cells[["households", "extreme_households"]].groupby(parent).sum()
    return sums.sort_index().rename_axis("h3").reset_index()


def test_coarsen_keeps_integer_counts_integer_and_sorts_parents():
    rng = np.random.default_rng(7)
    cells = _shuffled_cells(rng, lambda n: rng.poisson(20, n).astype("int64"))
    parents, parent_of = coarsen(cells, 7)
    assert parents["h3"].is_monotonic_increasing  # whatever the order of the cells
    assert parents["households"].dtype == np.int64
    assert parents["extreme_households"].dtype == np.int64
    pd.testing.assert_frame_equal(parents, _naive_parents(cells, 7))
    assert list(parent_of) == [h3.cell_to_parent(c, 7) for c in cells["h3"]]


def test_coarsen_keeps_fractional_counts():
    # expected counts of village-located households are fractions (issue 19)
    rng = np.random.default_rng(8)
    cells = _shuffled_cells(rng, lambda n: rng.uniform(0.0, 5.0, n))
    parents, _ = coarsen(cells, 6)
    assert parents["households"].dtype == np.float64
    pd.testing.assert_frame_equal(parents, _naive_parents(cells, 6), rtol=1e-12)
    assert parents["households"].sum() == pytest.approx(cells["households"].sum(), rel=1e-12)


# --- hot_cells: the frame it returns -----------------------------------------------------

def _noise(seed: int, index=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = sorted(h3.grid_disk(ORIGIN, 4))
    households = rng.poisson(30, len(cells)) + 1
    extreme = rng.binomial(households, np.clip(rng.normal(0.2, 0.08, len(cells)), 0, 1))
    return pd.DataFrame({"h3": cells, "households": households,
                         "extreme_households": extreme}, index=index)


def test_hot_cells_keep_the_index_and_give_float_statistics():
    index = pd.Index([f"row{i}" for i in range(61)][::-1], name="cell")
    cells = _noise(1, index=index)
    cells.loc[cells.index[:3], "households"] = 0  # not tested: NaN statistics
    cells.loc[cells.index[:3], "extreme_households"] = 0
    out = hot_cells(cells)
    assert out.index.equals(index)
    for col in ("extreme_rate_eb", "gi_z", "gi_p", "gi_q"):
        assert out[col].dtype == np.float64, col
    assert out["hot"].dtype == bool
    assert out["gi_p"].isna().sum() == 3 and out["gi_q"].isna().sum() == 3


def test_hot_cells_use_the_configured_ring():
    cells = _noise(2)
    for k in (1, 2):
        out = hot_cells(cells, config=PocketConfig(k_ring=k))
        pos = {c: i for i, c in enumerate(cells["h3"])}
        w = np.zeros((len(pos), len(pos)))
        for c, i in pos.items():
            for nb in h3.grid_disk(c, k):
                if nb in pos:
                    w[i, pos[nb]] = 1.0
        np.testing.assert_allclose(out["gi_z"], _gi_loop(out["extreme_rate_eb"], w),
                                   rtol=1e-9)
