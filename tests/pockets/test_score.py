import numpy as np
import pandas as pd
import pytest
from factories import aggregate_naive

from kantong.engine.config import Config, ScoreConfig
from kantong.engine.errors import ConfigError
from kantong.engine.pockets.score import (
    INDICATORS,
    effective_weights,
    normalised_indicators,
    rank_frame,
    rank_within,
    score_cells,
)

CONTRIBS = [f"contrib_{i}" for i in INDICATORS]


def _cells(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hh = rng.integers(1, 80, n)
    frame = pd.DataFrame({
        "h3": [f"88{i:013x}" for i in range(n)],
        "households": hh,
        "extreme_households": rng.binomial(hh, 0.1),
        "n_no_improved_water": rng.binomial(hh, 0.3),
        "n_no_improved_sanitation": rng.binomial(hh, 0.2),
        "n_no_electricity": rng.binomial(hh, 0.1),
        "n_inadequate_housing": rng.binomial(hh, 0.4),
        "travel_min_puskesmas": rng.gamma(2.0, 40.0, n),
        "travel_min_school": rng.gamma(2.0, 20.0, n),
        "province_code": np.where(np.arange(n) < 200, "61", "62"),
        "regency_code": rng.choice(["6101", "6102", "6201"], n),
    })
    frame["assistance_gap"] = rng.binomial(frame["extreme_households"], 0.5)
    frame.loc[5, "travel_min_school"] = np.inf  # unreachable
    frame.loc[6, "travel_min_school"] = np.nan
    return frame


def test_contributions_sum_to_priority_in_unit_interval():
    cells = _cells()
    s = score_cells(cells, weights={"extreme_households": 3, "extreme_rate": 2, "deprivation": 2,
                                    "travel": 2, "assistance_gap": 1})
    assert list(s.columns) == ["priority", *CONTRIBS]
    np.testing.assert_allclose(s[CONTRIBS].sum(axis=1), s["priority"], rtol=0, atol=1e-12)
    assert s["priority"].between(0, 1 + 1e-12).all()
    assert s[CONTRIBS].ge(0).all().all()
    assert sum(s.attrs["weights"].values()) == pytest.approx(1.0)
    assert s.attrs["weights"]["extreme_households"] == pytest.approx(0.3)


def test_normalisation_rules():
    cells = _cells()
    v = normalised_indicators(cells, travel_cap_min=180)
    assert v.ge(0).all().all() and v.le(1).all().all()
    for prov in ("61", "62"):  # the top cell of each province scores 1
        sub = cells["province_code"] == prov
        top = cells.loc[sub, "extreme_households"].idxmax()
        assert v.loc[top, "extreme_households"] == 1.0
        ratio = cells.loc[sub, "extreme_households"] / cells.loc[sub, "extreme_households"].max()
        np.testing.assert_allclose(v.loc[sub, "extreme_households"], ratio)
    t = cells[["travel_min_puskesmas", "travel_min_school"]].fillna(np.inf).clip(upper=180)
    np.testing.assert_allclose(v["travel"], (t / 180).mean(axis=1))
    assert v.loc[5, "travel"] >= 0.5 and v.loc[6, "travel"] >= 0.5
    infra = cells[["n_no_improved_water", "n_no_improved_sanitation", "n_no_electricity",
                   "n_inadequate_housing"]].div(cells["households"], axis=0).mean(axis=1)
    np.testing.assert_allclose(v["deprivation"], infra)
    gap = cells["assistance_gap"] / cells["extreme_households"].replace(0, np.nan)
    np.testing.assert_allclose(v["assistance_gap"], gap.fillna(0.0))
    with pytest.raises(ConfigError):
        normalised_indicators(cells, travel_cap_min=0)


def test_priority_rises_with_extreme_households():
    cells = _cells()
    base = score_cells(cells)["priority"]
    more = cells.copy()
    more.loc[10, "extreme_households"] += 30
    more.loc[10, "households"] += 30
    assert score_cells(more)["priority"][10] > base[10]


def test_missing_indicator_gets_weight_zero(caplog):
    cells = _cells().drop(columns=["travel_min_puskesmas", "travel_min_school"])
    s = score_cells(cells)
    assert s.attrs["weights"]["travel"] == 0.0
    assert (s["contrib_travel"] == 0).all()
    assert sum(s.attrs["weights"].values()) == pytest.approx(1.0)
    assert s.attrs["weights"]["extreme_households"] == pytest.approx(0.3 / 0.8)
    assert "no data for indicator" in caplog.text
    with pytest.raises(ConfigError, match="no indicator"):
        score_cells(cells, weights={"travel": 1.0})


def test_unknown_weight_is_an_error():
    with pytest.raises(ConfigError, match="unknown indicator"):
        effective_weights({"poverty": 1.0}, list(INDICATORS))
    with pytest.raises(ConfigError, match="unknown indicator"):
        ScoreConfig(weights={"poverty": 1.0})
    with pytest.raises(ConfigError):
        Config.from_mapping({"score": {"travel_cap_min": -5}})


def test_rank_within_groups_and_ties():
    prio = np.array([0.5, 0.9, 0.5, 0.1, 0.9, 0.3])
    groups = np.array(["a", "a", "a", "b", "b", "b"])
    tiebreak = np.array(["c3", "c9", "c1", "x", "y", "z"])
    assert rank_within(prio, groups, tiebreak).tolist() == [3, 1, 2, 3, 1, 2]
    assert rank_within(prio, np.array([""] * 6), tiebreak).tolist() == [4, 1, 3, 6, 2, 5]


def test_rank_frame_is_a_permutation_per_group(planted):
    cells = aggregate_naive(planted.households, 8)
    cells["province_code"] = "61"
    cells["regency_code"] = np.where(cells["lon"] < cells["lon"].median(), "6105", "6109")
    s = score_cells(cells)
    ranks = rank_frame(cells, s["priority"], tiebreak="h3")
    assert sorted(ranks["rank_province"]) == list(range(1, len(cells) + 1))
    for _, grp in ranks.groupby(cells["regency_code"]):
        assert sorted(grp["rank_regency"]) == list(range(1, len(grp) + 1))
    top = s["priority"].idxmax()
    assert ranks.loc[top, "rank_province"] == 1
    order = s["priority"].to_numpy()[np.argsort(ranks["rank_province"].to_numpy())]
    assert np.all(np.diff(order) <= 0)
    # deterministic
    again = rank_frame(cells, score_cells(cells)["priority"], tiebreak="h3")
    pd.testing.assert_frame_equal(ranks, again)
