import numpy as np
import pandas as pd
import pytest

from kantong.engine.config import PocketConfig
from kantong.engine.pockets.strategy import STRATEGY_LABELS, explain_strategy, recommend_strategy


def _pockets() -> pd.DataFrame:
    # rows: far; deprived infrastructure; assistance gap; covered and reachable; all unknown
    return pd.DataFrame({
        "households": [100, 100, 100, 100, 100],
        "extreme_households": [40, 40, 40, 40, 0],
        "travel_min_puskesmas": [150.0, 20.0, 20.0, 30.0, np.nan],
        "travel_min_school": [50.0, 10.0, 10.0, 20.0, np.nan],
        "n_no_improved_water": [10, 90, 10, 10, 0],
        "n_no_improved_sanitation": [10, 70, 10, 10, 0],
        "n_no_electricity": [10, 60, 10, 10, 0],
        "n_inadequate_housing": [10, 40, 10, 10, 0],
        "assistance_gap": [30, 30, 30, 2, 0],
    })


def test_decision_table():
    p = _pockets()
    assert recommend_strategy(p).tolist() == [3, 3, 1, 2, 2]
    assert recommend_strategy(p).dtype == np.int8


def test_thresholds_come_from_config():
    p = _pockets()
    strict = PocketConfig(strategy_travel_min=120.0, strategy_infrastructure_share=0.7,
                          strategy_assistance_gap_share=0.9)
    # row 0: mean travel 100 min < 120; row 1: infrastructure 65% < 70%; gaps 75% < 90%
    assert recommend_strategy(p, config=strict).tolist() == [2, 2, 2, 2, 2]
    loose = PocketConfig(strategy_assistance_gap_share=0.06)
    assert recommend_strategy(p, config=loose).tolist() == [3, 3, 1, 2, 2]
    assert recommend_strategy(p, config=PocketConfig(strategy_assistance_gap_share=0.0)
                              ).tolist()[3] == 1


def test_missing_indicators_never_trigger():
    p = _pockets()[["households", "extreme_households"]]
    assert recommend_strategy(p).tolist() == [2] * 5
    out = explain_strategy(p)
    assert out["strategy_reason"].str.contains("unknown").all()


def test_labels_and_reasons_are_explainable():
    out = explain_strategy(_pockets())
    assert list(out.columns) == ["strategy", "strategy_label", "strategy_reason"]
    assert out["strategy_label"].iloc[0] == "Eliminate the pocket: basic infrastructure / " \
        "Menghapus kantong kemiskinan"
    for s, (en, idn) in STRATEGY_LABELS.items():
        labels = out.loc[out["strategy"] == s, "strategy_label"]
        assert labels.eq(f"{en} / {idn}").all()
    reasons = out["strategy_reason"].tolist()
    assert reasons[0].startswith("Strategy 3:") and "100 min" in reasons[0]
    assert "puskesmas 150 min" in reasons[0]
    assert reasons[1].startswith("Strategy 3:") and "65% lack basic infrastructure" in reasons[1]
    assert "no improved water 90%" in reasons[1]
    assert reasons[2].startswith("Strategy 1:") and "75% of the 40 extreme-poor" in reasons[2]
    assert reasons[3].startswith("Strategy 2:") and "only 5%" in reasons[3]
    assert all(r.endswith(".") and "\n" not in r for r in reasons)


@pytest.mark.parametrize("bad", [{"strategy_travel_min": 0}, {"strategy_assistance_gap_share": 2},
                                 {"strategy_infrastructure_share": -0.1}, {"max_pocket_cells": -1}])
def test_config_validation(bad):
    from kantong.engine.errors import ConfigError

    with pytest.raises(ConfigError):
        PocketConfig(**bad)
