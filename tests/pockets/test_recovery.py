"""Planted-pocket recovery of the default method (issue 15 acceptance, on fresh seeds)."""

import h3
import numpy as np
import pandas as pd
import pytest

from kantong.engine.config import PocketConfig
from kantong.engine.pockets.detect import detect_pockets
from kantong.engine.pockets.recovery import NOISE_LEVELS, planted_cells, recovery_scores

#: Seeds not used by benchmarks/bench_pocket_recovery.py (which starts at 1000).
SEEDS = (71, 72, 73)


def _pooled(level: str) -> dict[str, float]:
    rows = []
    for seed in SEEDS:
        cells = planted_cells(seed, level)
        found = detect_pockets(cells, config=PocketConfig())
        rows.append(recovery_scores(cells["truth"], found.pocket_id))
    frame = pd.DataFrame(rows)
    return {"found": int(frame["found"].sum()), "planted": int(frame["planted"].sum()),
            "precision": frame["true_cells"].sum() / frame["reported_cells"].sum()}


def test_generator_follows_the_issue_parameters():
    cells = planted_cells(5, "mid")
    assert 3_900 <= len(cells) <= 3_997
    assert sorted(cells["truth"].unique()) == list(range(7))
    sizes = cells.loc[cells["truth"] > 0, "truth"].value_counts()
    assert set(sizes) <= {37, 61, 91}  # disks of radius 3, 4, 5
    assert cells["households"].mean() == pytest.approx(NOISE_LEVELS["mid"].households, rel=0.1)
    for a in range(1, 7):  # planted pockets do not touch
        for b in range(a + 1, 7):
            ca = cells.loc[cells["truth"] == a, "h3"].iloc[0]
            cb = cells.loc[cells["truth"] == b, "h3"].iloc[0]
            assert h3.grid_distance(ca, cb) > 3
    rate = (cells.loc[cells["truth"] > 0, "extreme_households"].sum()
            / cells.loc[cells["truth"] > 0, "households"].sum())
    assert rate == pytest.approx(0.15, abs=0.02)
    null = planted_cells(5, "mid", pockets=0)
    assert (null["truth"] == 0).all()


def test_recovery_scores_by_hand():
    truth = np.array([1, 1, 1, 1, 2, 2, 0, 0, 0])
    found = np.array([7, 7, 0, 0, 8, 0, 8, 0, 0])  # 1: half (found), 2: half (found)
    s = recovery_scores(truth, found)
    assert s["found"] == 2 and s["pockets"] == 2
    assert s["precision"] == pytest.approx(3 / 4) and s["recall"] == pytest.approx(3 / 6)
    s = recovery_scores(truth, np.array([7, 0, 0, 0, 0, 0, 0, 0, 0]))
    assert s["found"] == 0


def test_low_noise_recovers_every_planted_pocket():
    s = _pooled("low")
    assert s["found"] == s["planted"] == 18
    assert s["precision"] >= 0.85


def test_mid_noise_recovers_at_least_15_of_18():
    s = _pooled("mid")
    assert s["planted"] == 18 and s["found"] >= 15
    assert s["precision"] >= 0.85


def test_null_data_rarely_has_a_pocket():
    """At most 1 of 20 null runs (no planted pocket, 6 % spikes) reports any pocket."""
    runs = 0
    for seed in range(300, 320):
        cells = planted_cells(seed, "high", pockets=0, rings=24)
        runs += bool(detect_pockets(cells, config=PocketConfig()).pocket_id.notna().any())
    assert runs <= 1
