"""Site counts (docs/privacy.md, rule 4) withheld by hand: a count below K or missing is
never published, and the cumulative columns stop at the first withheld rank of a type.
"""

from __future__ import annotations

import pandas as pd

from kantong.engine.publish import privacy

K = 10


def test_a_missing_new_count_is_withheld_like_a_small_one():
    # rank 2 of type "a" has no count: nothing tells it is >= K, so it is withheld, and the
    # cumulative values from rank 2 on would give it back by subtraction
    sites = pd.DataFrame({"type": ["a"] * 4, "rank": [1, 2, 3, 4],
                          "new_extreme_households": pd.array([30, None, 20, 15], dtype="Int64"),
                          "cumulative_extreme_households": [30, 45, 65, 80],
                          "covered_persons": [100, 120, 140, 160]})
    out = privacy.withhold_site_counts(sites, min_households=K)
    assert out["new_extreme_households"].tolist() == [30, pd.NA, 20, 15]
    assert out["cumulative_extreme_households"].tolist() == [30, pd.NA, pd.NA, pd.NA]
    assert out["covered_persons"].tolist() == [100, pd.NA, pd.NA, pd.NA]


def test_a_missing_covered_persons_stays_missing_and_hides_nothing_else():
    sites = pd.DataFrame({"type": ["a"] * 3, "rank": [1, 2, 3],
                          "new_extreme_households": [30, 20, 15],
                          "cumulative_extreme_households": [30, 50, 65],
                          "covered_persons": pd.array([100, None, 50], dtype="Int64")})
    out = privacy.withhold_site_counts(sites, min_households=K)
    assert out["new_extreme_households"].tolist() == [30, 20, 15]
    assert out["cumulative_extreme_households"].tolist() == [30, 50, 65]
    assert out["covered_persons"].tolist() == [100, pd.NA, 50]


def test_sites_come_back_in_type_and_rank_order_with_their_own_columns():
    sites = pd.DataFrame({"name": ["b2", "a2", "b1", "a1"], "type": ["b", "a", "b", "a"],
                          "rank": [2, 2, 1, 1], "new_extreme_households": [8, 12, 40, 30]})
    out = privacy.withhold_site_counts(sites, min_households=K)
    assert list(out.columns) == list(sites.columns)  # nothing added, nothing lost
    assert out.index.tolist() == [0, 1, 2, 3]
    assert out["name"].tolist() == ["a1", "a2", "b1", "b2"]
    assert out["new_extreme_households"].tolist() == [30, 12, 40, pd.NA]
