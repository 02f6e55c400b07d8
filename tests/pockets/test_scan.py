"""The scan statistic: window sums, LLR, Gumbel p-values, spikes, calibration on null data."""

import json

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kantong.engine.config import Config, PocketConfig
from kantong.engine.errors import ConfigError
from kantong.engine.h3ids import cells_to_uint64
from kantong.engine.pockets.detect import confidence_label, detect_pockets
from kantong.engine.pockets.hotspots import hot_cells
from kantong.engine.pockets.scan import (
    cap_counts,
    disk_distances,
    gumbel_sf,
    poisson_llr,
    scan_p_value,
    scan_windows,
)

CENTRE = h3.latlng_to_cell(0.3, 111.6, 8)


def _grid(rings: int, seed: int, *, households: float = 12.0, rate: float = 0.05
          ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = sorted(h3.grid_disk(CENTRE, rings))
    hh = rng.poisson(households, len(cells)) + 1
    return pd.DataFrame({"h3": cells, "households": hh,
                         "extreme_households": rng.binomial(hh, rate)})


def test_disk_distances_equal_h3_grid_distance():
    cells = sorted(h3.grid_disk(CENTRE, 4))[::2]  # holes: absent cells are no neighbours
    d = disk_distances(cells_to_uint64(cells), 3).toarray()
    for i, a in enumerate(cells):
        for j, b in enumerate(cells):
            dist = h3.grid_distance(a, b)
            assert d[i, j] == (dist + 1 if dist <= 3 else 0)


def test_poisson_llr_is_the_likelihood_ratio():
    c = np.array([30.0, 12.0, 5.0, 3.0])
    e = np.array([10.0, 11.0, 5.0, 6.0])
    total = 200.0
    # alternative: separate Poisson rates inside and outside; null: the expected counts
    alt = stats.poisson.logpmf(c, c) + stats.poisson.logpmf(total - c, total - c)
    null = stats.poisson.logpmf(c, e) + stats.poisson.logpmf(total - c, total - e)
    expected = np.where(c > e, alt - null, 0.0)
    np.testing.assert_allclose(poisson_llr(c, e, total), expected, rtol=1e-9, atol=1e-12)


def test_gumbel_sf_matches_scipy_with_moment_fit():
    maxima = np.random.default_rng(1).gumbel(10.0, 2.0, 500)
    beta = maxima.std(ddof=1) * np.sqrt(6) / np.pi
    mu = maxima.mean() - np.euler_gamma * beta
    x = np.array([5.0, 10.0, 20.0, 40.0])
    np.testing.assert_allclose(gumbel_sf(x, maxima), stats.gumbel_r.sf(x, mu, beta), rtol=1e-9)


def test_cap_counts_is_the_binomial_quantile():
    hh = np.array([10, 10, 100, 0])
    ex = np.array([10, 0, 5, 0])
    rate = ex.sum() / hh.sum()
    capped = cap_counts(hh, ex, 0.99)
    assert capped[0] == stats.binom.ppf(0.99, 10, rate) < 10
    assert capped[1] == 0 and capped[2] == 5 and capped[3] == 0
    np.testing.assert_array_equal(cap_counts(hh, ex, 0.0), ex)


def test_cap_of_fractional_households_rounds_the_trials_up():
    hh = np.array([0.4, 4.2, 20.0])  # households spread over cells by village (expected counts)
    ex = np.array([0.4, 3.0, 1.0])
    rate = ex.sum() / hh.sum()
    capped = cap_counts(hh, ex, 0.99)
    assert capped[0] == 0.4  # one trial: the cap is >= 1, nothing removed
    assert capped[1] == min(3.0, stats.binom.ppf(0.99, 5, rate))


def test_scan_p_value_is_gumbel_but_never_below_the_permutations():
    null = np.random.default_rng(2).gumbel(10.0, 2.0, 99)
    x = np.array([5.0, 12.0, 30.0])
    p = scan_p_value(x, null)
    reached = np.array([(null >= v).sum() for v in x]) / 100
    np.testing.assert_allclose(p, np.maximum(gumbel_sf(x, null), reached))
    assert p[2] < 0.01 and p[0] >= reached[0]
    # a degenerate null (every permutation has the same maximum) never makes tiny p-values
    flat = np.full(19, 3.0)
    assert scan_p_value(np.array([3.0]), flat)[0] >= 0.95


def test_chosen_windows_are_disks_with_exact_sums_and_no_overlap():
    cells = _grid(14, 3)
    hot = set(h3.grid_disk(cells["h3"].iloc[200], 3)) | set(h3.grid_disk(cells["h3"].iloc[500], 2))
    inside = cells["h3"].isin(hot).to_numpy()
    cells.loc[inside, "extreme_households"] = (cells.loc[inside, "households"] * 0.4).round()
    ids = cells_to_uint64(cells["h3"].to_numpy())
    result = scan_windows(cells, ids, permutations=49)
    assert len(result.windows) >= 2
    members = []
    for w, row in result.windows.iterrows():
        disk = set(h3.grid_disk(cells["h3"].iloc[int(row["centre"])], int(row["k"])))
        mine = set(cells["h3"].to_numpy()[result.window_of_cell == w])
        assert mine == disk & set(cells["h3"])  # the window is the whole disk
        sel = cells["h3"].isin(disk).to_numpy()
        assert row["households"] == cells.loc[sel, "households"].sum()
        assert row["extreme"] == result.capped[sel].sum()
        members.append(mine)
    assert all(not (a & b) for i, a in enumerate(members) for b in members[i + 1:])
    assert (result.windows["llr"].diff().dropna() <= 0).all()  # best first
    assert hot <= set(cells["h3"].to_numpy()[result.hot])


def test_one_extreme_cell_is_not_a_pocket():
    cells = _grid(12, 4)
    cells.loc[100, "extreme_households"] = cells.loc[100, "households"]  # a spike
    found = detect_pockets(cells, config=PocketConfig(min_extreme_households=1))
    assert found.pocket_id.isna().all()
    ids = cells_to_uint64(cells["h3"].to_numpy())
    raw = scan_windows(cells, ids, cap_quantile=0.0, permutations=19)
    capped = scan_windows(cells, ids, permutations=19)
    assert capped.capped[100] < raw.capped[100]


def test_same_seed_same_result_and_seed_is_used():
    cells = _grid(10, 5)
    ids = cells_to_uint64(cells["h3"].to_numpy())
    a = scan_windows(cells, ids, permutations=19, seed=1)
    b = scan_windows(cells, ids, permutations=19, seed=1)
    c = scan_windows(cells, ids, permutations=19, seed=2)
    np.testing.assert_array_equal(a.null_max, b.null_max)
    assert not np.array_equal(a.null_max, c.null_max)


def test_gistar_method_keeps_exact_gi_star_hot_cells():
    cells = _grid(10, 6)
    hot = set(h3.grid_disk(cells["h3"].iloc[150], 2))
    inside = cells["h3"].isin(hot).to_numpy()
    cells.loc[inside, "extreme_households"] = cells.loc[inside, "households"] // 2
    config = PocketConfig(method="gistar")
    found = detect_pockets(cells, config=config)
    reference = hot_cells(cells, config=config)
    np.testing.assert_array_equal(found.cells["hot"], reference["hot"])
    np.testing.assert_allclose(found.cells["gi_z"], reference["gi_z"])
    assert found.pocket_id.notna().any()
    assert set(found.significance.index) == set(found.pocket_id.dropna())


def test_pocket_p_of_a_single_window_pocket_is_the_window_p():
    cells = _grid(12, 7)
    hot = set(h3.grid_disk(cells["h3"].iloc[300], 3))
    inside = cells["h3"].isin(hot).to_numpy()
    cells.loc[inside, "extreme_households"] = (cells.loc[inside, "households"] * 0.3).round()
    found = detect_pockets(cells)
    assert len(found.significance) == 1 and len(found.scan.windows) == 1
    sig = found.significance.iloc[0]
    assert sig["pocket_p"] == pytest.approx(found.scan.windows["p"].iloc[0])
    assert sig["confidence"] == "high" and sig["pocket_p"] <= 0.001


def test_confidence_labels_follow_the_thresholds():
    p = np.array([0.0, 0.001, 0.0011, 0.01, 0.0101, 0.5])
    assert confidence_label(p).tolist() == ["high", "high", "medium", "medium", "low", "low"]


@pytest.mark.parametrize("bad", [{"method": "kulldorff"}, {"scan_max_k": 0},
                                 {"scan_permutations": 5}, {"scan_alpha": 1.5},
                                 {"scan_cap_quantile": 1.0}, {"scan_seed": -1}])
def test_bad_scan_config_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="pockets"):
        Config.from_mapping({"pockets": bad})


def test_method_from_toml_mapping():
    assert Config.from_mapping({"pockets": {"method": "gistar"}}).pockets.method == "gistar"
    assert Config().pockets.method == "scan"


def test_cli_method_flag(tiny_run):
    from click.testing import CliRunner

    from kantong.engine.cli.group import cli

    run, _ = tiny_run
    res = CliRunner().invoke(cli, ["pockets", "--run", str(run), "--method", "gistar"])
    assert res.exit_code == 0, res.output
    assert "method gistar: Gi* k-ring 1" in res.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["pockets"]["parameters"]["method"] == "gistar"
    assert manifest["pockets"]["method"]["method"] == "gistar"
    res = CliRunner().invoke(cli, ["pockets", "--run", str(run)])
    assert res.exit_code == 0, res.output
    assert "method scan: scan windows of radius 1-5" in res.output
    assert "confidence" in res.output
    pockets = gpd.read_parquet(run / "pockets.parquet")
    assert pockets["confidence"].isin(["high", "medium", "low"]).all() and len(pockets) == 2
    assert (pockets["pocket_p"] <= 0.01).all()
    bad = CliRunner().invoke(cli, ["pockets", "--run", str(run), "--method", "moran"])
    assert bad.exit_code != 0 and "moran" in bad.output
