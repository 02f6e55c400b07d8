"""`[score] travel_types`: which facility types feed the score and the strategy."""

from __future__ import annotations

import pandas as pd
import pytest

from kantong.engine.config import Config, ScoreConfig
from kantong.engine.errors import ConfigError
from kantong.engine.pockets.score import counted_travel, mean_travel_minutes
from kantong.engine.pockets.strategy import recommend_strategy


def pockets() -> pd.DataFrame:
    """Two pockets near a puskesmas (20 min) but far from a hospital (600 min)."""
    return pd.DataFrame({"households": [100, 100], "extreme_households": [30, 30],
                         "travel_min_puskesmas": [20.0, 25.0],
                         "travel_min_hospital": [600.0, 580.0],
                         "n_no_improved_water": [10, 10], "n_no_improved_sanitation": [10, 10],
                         "n_no_electricity": [10, 10], "n_inadequate_housing": [10, 10],
                         "assistance_gap": [1, 1]})


def test_default_leaves_hospitals_out_of_strategy_and_score():
    frame = pockets()
    counted = counted_travel(frame, ScoreConfig())
    assert "travel_min_hospital" not in counted and "travel_min_hospital" in frame
    assert mean_travel_minutes(counted).tolist() == [20.0, 25.0]
    # with every type the mean is (20 + 600) / 2 = 310 min: strategy 3 for both
    assert recommend_strategy(frame).tolist() == [3, 3]
    assert 3 not in recommend_strategy(counted).tolist()


def test_explicit_travel_types_from_toml():
    config = Config.from_mapping({"score": {"travel_types": ["Hospital"]}})
    assert config.score.travel_types == ("hospital",)
    counted = counted_travel(pockets(), config.score)
    assert mean_travel_minutes(counted).tolist() == [600.0, 580.0]
    with pytest.raises(ConfigError, match="travel_types"):
        Config.from_mapping({"score": {"travel_types": "puskesmas"}})


def test_straight_line_speed_in_config():
    assert Config().build.straight_line_kmh == 4.0
    assert Config.from_mapping({"build": {"straight_line_kmh": 12}}).build.straight_line_kmh == 12
    with pytest.raises(ConfigError, match="straight_line_kmh"):
        Config.from_mapping({"build": {"straight_line_kmh": 0}})
