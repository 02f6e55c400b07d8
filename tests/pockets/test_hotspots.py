import warnings

import h3
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from factories import aggregate_naive, make_households
from scipy import stats

from kantong.engine.config import PocketConfig
from kantong.engine.errors import InputError
from kantong.engine.pockets.contiguity import assign_pockets
from kantong.engine.pockets.hotspots import (
    bh_adjust,
    cells_resolution,
    choose_resolution,
    coarsen,
    eb_rate,
    gi_star,
    hot_cells,
    neighbour_weights,
)

ORIGIN = h3.latlng_to_cell(0.05, 110.75, 8)


def _disk(k: int) -> list[str]:
    return sorted(h3.grid_disk(ORIGIN, k))


def test_neighbour_weights_matches_h3_grid_disk():
    cells = _disk(4)
    rng = np.random.default_rng(0)
    cells = [c for c in cells if rng.uniform() > 0.2]  # holes: empty cells are no neighbours
    for k in (1, 2):
        w = neighbour_weights(cells, k_ring=k)
        assert w.shape == (len(cells), len(cells))
        assert (w != w.T).nnz == 0
        assert np.all(w.diagonal() == 1)
        pos = {c: i for i, c in enumerate(cells)}
        for i in rng.choice(len(cells), 15, replace=False):
            expected = sorted(pos[n] for n in h3.grid_disk(cells[i], k) if n in pos)
            assert w[i].indices.tolist() == expected
    no_self = neighbour_weights(cells, k_ring=1, include_self=False)
    assert no_self.diagonal().sum() == 0
    assert no_self.nnz == neighbour_weights(cells, k_ring=1).nnz - len(cells)


def test_interior_cells_have_full_rings():
    w = neighbour_weights(_disk(5), k_ring=2)
    assert w.sum(axis=1).A1.max() == 19  # 1 + 6 + 12


def test_neighbour_weights_rejects_bad_ids():
    with pytest.raises(InputError, match="invalid H3"):
        neighbour_weights(["not-a-cell", ORIGIN])
    with pytest.raises(InputError, match="unique"):
        neighbour_weights([ORIGIN, ORIGIN])


def _esda_z(y: np.ndarray, w: sp.csr_matrix) -> np.ndarray:
    import esda  # the peer implementation (bench extra: esda, libpysal)
    import libpysal
    off = w.copy().tolil()
    off.setdiag(0)
    off = sp.csr_matrix(off)
    off.eliminate_zeros()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libpysal/esda deprecations, islands
        pw = libpysal.weights.WSP(off).to_W(silence_warnings=True)
        g = esda.G_Local(y, pw, transform="B", star=True, permutations=0)
    return np.asarray(g.Zs)


@pytest.mark.parametrize("k", [1, 2])
def test_gi_star_agrees_with_esda(k):
    cells = _disk(7)
    w = neighbour_weights(cells, k_ring=k)
    y = np.random.default_rng(k).gamma(2.0, 1.0, len(cells))
    z, p = gi_star(y, w)
    np.testing.assert_allclose(z, _esda_z(y, w), atol=1e-6)
    np.testing.assert_allclose(p, stats.norm.sf(z))


def test_gi_star_naive_formula():
    cells = _disk(3)
    w = neighbour_weights(cells, k_ring=1)
    x = np.random.default_rng(5).normal(size=len(cells))
    z, _ = gi_star(x, w)
    n, xbar, s = len(x), x.mean(), x.std()
    for i in range(n):
        nb = w[i].indices
        wi = len(nb)
        expected = (x[nb].sum() - xbar * wi) / (s * np.sqrt((n * wi - wi**2) / (n - 1)))
        assert z[i] == pytest.approx(expected, rel=1e-10)


def test_gi_star_constant_and_validation():
    w = neighbour_weights(_disk(2), k_ring=1)
    z, p = gi_star(np.full(w.shape[0], 0.3), w)
    assert np.all(z == 0) and np.all(p == 0.5)
    with pytest.raises(InputError):
        gi_star(np.ones(3), w)
    with pytest.raises(InputError):
        gi_star(np.r_[np.nan, np.ones(w.shape[0] - 1)], w)


def test_bh_adjust_matches_scipy_and_definition():
    rng = np.random.default_rng(2)
    p = np.r_[rng.uniform(size=200), rng.uniform(0, 1e-3, 20)]
    q = bh_adjust(p)
    np.testing.assert_allclose(q, stats.false_discovery_control(p))
    m = len(p)
    rank = stats.rankdata(p, method="ordinal")
    naive = np.array([min(min(p[j] * m / rank[j] for j in range(m) if p[j] >= p[i]), 1.0)
                      for i in range(m)])
    np.testing.assert_allclose(q, naive)
    assert np.all(q >= p)
    with_nan = bh_adjust(np.array([0.01, np.nan, 0.02]))
    assert np.isnan(with_nan[1]) and with_nan[0] == pytest.approx(0.02)


def test_eb_rate_shrinks_small_cells_more():
    rng = np.random.default_rng(3)
    base = np.r_[np.full(200, 100.0), np.full(200, 2.0)]
    true = np.r_[rng.uniform(0.0, 0.4, 200), rng.uniform(0.0, 0.4, 200)]
    events = rng.binomial(base.astype(int), true).astype(float)
    eb = eb_rate(events, base)
    raw = events / base
    m = events.sum() / base.sum()
    big, small = slice(0, 200), slice(200, 400)
    assert np.abs(eb[big] - raw[big]).mean() < np.abs(eb[small] - raw[small]).mean()
    assert np.abs(eb[small] - m).max() < np.abs(raw[small] - m).max()
    assert np.all((eb >= 0) & (eb <= 1))
    # no variation beyond chance: everything shrinks to the mean
    flat = eb_rate(np.full(50, 5.0), np.full(50, 100.0))
    np.testing.assert_allclose(flat, 0.05)


def test_hot_cells_find_planted_and_skip_small_cells(planted):
    cells = aggregate_naive(planted.households, 8)
    cells.loc[cells.index[:5], "households"] = 2
    cells.loc[cells.index[:5], "extreme_households"] = 1
    out = hot_cells(cells, config=PocketConfig(min_households=5))
    assert out.loc[cells.index[:5], "gi_z"].isna().all()
    assert not out.loc[cells.index[:5], "hot"].any()
    truth = cells["h3"].isin(set().union(*planted.pocket_cells))
    hot = out["hot"]
    assert (hot & truth).sum() >= 0.9 * truth.sum()
    assert (hot & ~truth).sum() <= 5  # spill-over at pocket edges only
    assert (out.loc[hot, "gi_q"] <= 0.05).all()


def _noise_cells(seed: int, radius: int = 12) -> pd.DataFrame:
    """Cells whose extreme-poor rates vary a lot but independently of place (no pocket).

    Each cell draws its own rate from a normal distribution (mean 0.2, sd 0.08), far more
    spread than binomial noise, so Empirical Bayes keeps it and Gi* sees it; there is no
    spatial structure, so any pocket would be a false discovery. (Strongly skewed rates,
    e.g. Beta(2, 8), make the analytical Gi* p-values anti-conservative: ~20 % of such
    runs had a false hot cell in a 100-run check, against ~7 % here.)
    """
    rng = np.random.default_rng(seed)
    cells = sorted(h3.grid_disk(ORIGIN, radius))
    households = rng.poisson(30, len(cells)) + 1
    rate = np.clip(rng.normal(0.2, 0.08, len(cells)), 0.0, 1.0)
    extreme = rng.binomial(households, rate)
    return pd.DataFrame({"h3": cells, "households": households, "extreme_households": extreme})


#: Seeds of _noise_cells without a false discovery; seeds 2 and 16 are the two in 0..19
#: (BH at 5 % FDR under the global null calls something in about 5-10 % of runs: checked
#: below).
NOISE_SEEDS = (0, 1, 3, 4, 5)


@pytest.mark.parametrize("seed", NOISE_SEEDS)
def test_pure_noise_gives_no_pocket(seed):
    cells = _noise_cells(seed)
    out = hot_cells(cells, config=PocketConfig())
    # the noise is real: EB keeps the spread and Gi* finds "significant" cells before BH
    assert out["extreme_rate_eb"].std() > 0.03  # pure binomial noise would give 0
    raw_hits = int(((out["gi_p"] <= 0.05) & (out["gi_z"] > 0)).sum())
    assert raw_hits >= 15  # about 5 % of 469 cells
    # BH removes every one of them: no hot cell, no pocket
    assert int(out["hot"].sum()) == 0
    assert (out["gi_q"] > 0.05).all()
    pockets = assign_pockets(cells, out["hot"], min_extreme_households=20)
    assert pockets.notna().sum() == 0
    # without BH the same cells would have made pockets
    naive = assign_pockets(cells, pd.Series((out["gi_p"] <= 0.05) & (out["gi_z"] > 0),
                                            index=cells.index), min_extreme_households=20)
    assert naive.notna().sum() > 0


def test_pure_noise_false_discoveries_are_rare():
    runs = [hot_cells(_noise_cells(seed), config=PocketConfig())["hot"] for seed in range(20)]
    with_discovery = [seed for seed, hot in enumerate(runs) if hot.any()]
    assert with_discovery == [2, 16]  # the seeds left out above, and only those
    for seed in with_discovery:  # and even then a cell or two, never a pocket
        assert runs[seed].sum() <= 2


def test_noise_on_raw_values_respects_fdr():
    # without EB smoothing (which removes pure noise), BH keeps false hot cells rare
    cells = _disk(12)
    w = neighbour_weights(cells, k_ring=1)
    false = 0
    for seed in range(10):
        y = np.random.default_rng(seed).poisson(3.0, len(cells)).astype(float)
        z, p = gi_star(y, w)
        false += int(((bh_adjust(p) <= 0.05) & (z > 0)).any())
    assert false <= 3  # P(any discovery | global null) <= 0.05 per seed under BH


def test_hot_cells_missing_column():
    with pytest.raises(InputError, match="missing"):
        hot_cells(pd.DataFrame({"h3": [ORIGIN], "households": [3]}))


def test_coarsen_sums_exactly():
    cells = aggregate_naive(make_households(seed=4, radius=8).households, 8)
    parents, parent_of = coarsen(cells, 6)
    assert parents["households"].sum() == cells["households"].sum()
    assert parents["extreme_households"].sum() == cells["extreme_households"].sum()
    assert list(parent_of) == [h3.cell_to_parent(c, 6) for c in cells["h3"]]
    assert parents["h3"].is_unique and parents["h3"].is_monotonic_increasing
    assert cells_resolution(parents["h3"]) == 6
    with pytest.raises(InputError, match="one H3 resolution"):
        cells_resolution([ORIGIN, h3.cell_to_parent(ORIGIN, 7)])


def test_choose_resolution():
    dense = aggregate_naive(make_households(seed=5, radius=6, mean_households=30).households, 8)
    sparse = aggregate_naive(make_households(seed=5, radius=14, mean_households=2).households, 8)
    assert choose_resolution(dense) == 8
    auto = choose_resolution(sparse)
    assert 5 <= auto < 8
    median = coarsen(sparse, auto)[0]["households"].median()
    assert median >= 10
    finer = sparse if auto + 1 == 8 else coarsen(sparse, auto + 1)[0]
    assert finer["households"].median() < 10  # the finest resolution that reaches the target
    assert choose_resolution(sparse, config=PocketConfig(auto_median_households=1)) == 8
    assert choose_resolution(dense, config=PocketConfig(analysis_resolution=6)) == 6
    with pytest.raises(InputError, match="finer"):
        choose_resolution(dense, config=PocketConfig(analysis_resolution=9))


def test_eb_rate_is_marshalls_estimator_by_hand():
    events = [0.0, 18.0, 1.0, 30.0, 3.0]
    base = [20.0, 20.0, 10.0, 40.0, 0.0]  # the last unit has no households: it gets m
    m = sum(events) / sum(base)
    rates = [e / b if b > 0 else m for e, b in zip(events, base, strict=True)]
    s2 = (sum(b * (r - m) ** 2 for r, b in zip(rates, base, strict=True)) / sum(base)
          - m / (sum(base) / len(base)))
    assert s2 > 0  # real extra variation: EB keeps part of it
    expected = [m + (r - m) * (s2 / (s2 + m / b) if b > 0 else 0.0)
                for r, b in zip(rates, base, strict=True)]
    np.testing.assert_allclose(eb_rate(np.array(events), np.array(base)), expected,
                               rtol=1e-12)
    # no variation beyond binomial noise (s2 <= 0): every unit gets m
    flat = eb_rate(np.array([1.0, 2.0]), np.array([10.0, 20.0]))
    np.testing.assert_allclose(flat, [0.1, 0.1])
    assert eb_rate(np.zeros(0), np.zeros(0)).size == 0
    np.testing.assert_array_equal(eb_rate(np.array([0.0, 0.0]), np.array([0.0, 0.0])), [0, 0])


def test_gi_star_tiny_and_constant_inputs():
    w1 = sp.csr_matrix(np.ones((1, 1)))
    z, p = gi_star(np.array([3.0]), w1)
    assert z.tolist() == [0.0] and p.tolist() == [0.5]
    w2 = sp.csr_matrix(np.ones((2, 2)))
    z, p = gi_star(np.array([1.0, 3.0]), w2)  # each cell's ring is everything: no signal
    assert z.tolist() == [0.0, 0.0] and p.tolist() == [0.5, 0.5]
    # a nearly constant large value is still "constant" (relative tolerance)
    z, p = gi_star(np.full(3, 1e6) + np.array([0.0, 1e-7, 0.0]),
                   sp.csr_matrix(np.eye(3)))
    assert z.tolist() == [0.0] * 3 and p.tolist() == [0.5] * 3
