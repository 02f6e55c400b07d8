"""Suppression and validation on expected (fractional) counts of village-located households."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

from kantong.engine.errors import RunError
from kantong.engine.publish.privacy import (
    COMPLEMENTARY,
    PUBLISHED,
    SMALL,
    plan_suppression,
    suppress_hierarchy,
)
from kantong.engine.publish.validate import validate_cells

K = 10


def _levels(values: list[float]) -> dict[int, pd.DataFrame]:
    """Seven r8 children of one r7 cell (plus one far cell) and their exact r7 sums."""
    parent = h3.latlng_to_cell(0.05, 110.75, 7)
    children = sorted(h3.cell_to_children(parent, 8))
    far = h3.latlng_to_cell(0.5, 111.5, 8)
    base = pd.DataFrame({"h3": [*children, far][: len(values)],
                         "households": np.asarray(values, dtype="float64"),
                         "regency_code": "6105"})
    # the rollup sums in another order than the check (float summation order differs)
    parents = [h3.cell_to_parent(c, 7) for c in base["h3"]]
    up = base["households"].iloc[::-1].groupby(np.asarray(parents)[::-1], sort=True).sum()
    return {7: pd.DataFrame({"h3": up.index, "households": up.to_numpy()}), 8: base}


def test_expected_counts_are_compared_with_k_as_they_are():
    values = [9.6, 0.1 + 0.2, 30.7, 12.35, 11.05, 40.0, 20.3, 10.0]
    status = suppress_hierarchy(_levels(values), min_households=K)[8]
    assert status.iloc[0] == SMALL and status.iloc[1] == SMALL   # 9.6 and 0.3 < 10
    assert status.iloc[7] == PUBLISHED                             # 10.0 alone under its parent
    # the two small children (9.9 together) need a published sibling withheld with them
    assert (status.iloc[2:7] == COMPLEMENTARY).sum() == 1
    withheld = [v for v, s in zip(values[:7], status.iloc[:7], strict=True) if s != PUBLISHED]
    assert sum(withheld) >= K and len(withheld) >= 2


def test_residual_atoms_hold_k_expected_households():
    plan = plan_suppression(_levels([9.6, 0.3, 30.7, 12.35, 11.05, 40.0, 20.3, 10.0]),
                            min_households=K)
    residual = plan.atoms[plan.atoms["kind"] == "residual"]
    base = _levels([9.6, 0.3, 30.7, 12.35, 11.05, 40.0, 20.3, 10.0])[8].set_index("h3")
    assert base.loc[residual.index, "households"].sum() >= K


def test_a_rollup_that_is_not_the_sum_is_still_refused():
    levels = _levels([9.6, 0.3, 30.7, 12.35, 11.05, 40.0, 20.3, 10.0])
    levels[7].loc[0, "households"] += 0.5
    with pytest.raises(RunError, match="not the exact sum"):
        suppress_hierarchy(levels, min_households=K)


def test_validation_accepts_fractions_only_for_expected_counts():
    cells = _levels([9.6, 0.3, 30.7])[8].assign(households_village_located=[9.6, 0.3, 30.7])
    validate_cells(cells, source="cells.parquet")
    exact = cells.assign(households_village_located=[0, 0, 0])
    with pytest.raises(RunError, match="non-negative integers"):
        validate_cells(exact, source="cells.parquet")
    with pytest.raises(RunError, match="non-negative numbers"):
        validate_cells(cells.assign(households=[-0.5, 0.3, 30.7]), source="cells.parquet")
