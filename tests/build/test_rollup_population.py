"""Rollup ``population`` with missing values (docs/data-dictionary.md: null without a raster).

A parent's population is the sum over the children that have a value; when no child has
one it is missing (NaN), never 0 - a 0 would read as "nobody lives here". Expected values
come from a plain pandas groupby (``sum(min_count=1)``).
"""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
from test_grid import random_households

from kantong.engine.build import grid


def _cells_with_population() -> tuple[pd.DataFrame, pd.Series]:
    cells = grid.cells_frame(grid.households_to_cell_sums(random_households(31, 600, spread=0.1),
                                                          resolution=8),
                             resolution=8, admin=False)
    parent = cells["h3"].map(lambda c: h3.cell_to_parent(c, 6))
    sizes = parent.value_counts()
    groups = sizes[sizes >= 2].index.sort_values()
    assert len(groups) >= 3
    all_missing, partly, full = groups[:3]
    pop = pd.Series(np.arange(1.0, len(cells) + 1.0) * 10.0, index=cells.index)
    pop[parent == all_missing] = np.nan
    pop[(parent == partly).to_numpy() & (np.arange(len(cells)) % 2 == 0)] = np.nan
    cells["population"] = pop.to_numpy()
    return cells, parent


def test_rollup_population_missing_only_when_every_child_is_missing():
    cells, parent = _cells_with_population()
    up = grid.rollup_cells(cells, resolution=6, admin=False).set_index("h3")["population"]
    expected = cells["population"].groupby(parent).sum(min_count=1)
    assert sorted(up.index) == sorted(expected.index)
    got = up.loc[expected.index]
    assert got.isna().tolist() == expected.isna().tolist()
    np.testing.assert_allclose(got.dropna(), expected.dropna(), rtol=1e-12)
    kinds = cells.assign(parent=parent.to_numpy()).groupby("parent")["population"].agg(
        lambda s: "all" if s.isna().all() else "part" if s.isna().any() else "none")
    assert set(kinds) == {"all", "part", "none"}  # each case is really exercised
    assert got[kinds[kinds == "all"].index].isna().all()  # not 0
    part = kinds[kinds == "part"].index
    assert (got[part] > 0).all() and got[part].notna().all()


def test_rollup_population_all_missing_is_missing_at_every_level():
    cells, _ = _cells_with_population()
    cells["population"] = np.nan  # a run without a population raster
    for res in (7, 6, 5):
        up = grid.rollup_cells(cells, resolution=res, admin=False)
        assert up["population"].isna().all(), res


def test_rollup_to_the_same_resolution_is_the_identity_on_counts():
    cells, _ = _cells_with_population()
    same = grid.rollup_cells(cells, resolution=8, admin=False).set_index("h3")
    orig = cells.set_index("h3")
    assert sorted(same.index) == sorted(orig.index)
    for col in grid.COUNT_COLUMNS:
        assert same[col].dtype == np.int64, col  # whole households stay integers
        assert (same.loc[orig.index, col] == orig[col]).all(), col
    np.testing.assert_array_equal(same.loc[orig.index, "population"], orig["population"])
