"""Exact rollups of a cell table to coarser resolutions (``grid.rollup_cells``).

Expected values: a plain pandas groupby over the h3-py parent (``h3.cell_to_parent``) of
each cell: counts summed, rates and shares divided out of the sums, ``travel_min_*`` and
``*_mean`` household-weighted over the children that have a value, ``population`` summed
with ``min_count=1``. A hand-made table of 14 cells under 4 parents, built so that every
case occurs: a parent whose children all have values, some, exactly one, or none.
"""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

from kantong.engine.build import grid
from kantong.engine.constants import DEPRIVATIONS
from kantong.engine.errors import InputError

COUNTS = list(grid.COUNT_COLUMNS)
FINE, COARSE = 8, 6


def _table(*, fractional: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """14 resolution-8 cells under 4 resolution-6 parents (in parent-id order: all values,
    some values, one value, no value), rows shuffled."""
    origin = h3.latlng_to_cell(0.05, 110.75, COARSE)
    parents = sorted(h3.grid_disk(origin, 1))[:4]
    sizes = [5, 4, 3, 2]
    children = [c for p, k in zip(parents, sizes, strict=True)
                for c in sorted(h3.cell_to_children(p, FINE))[:k]]
    rng = np.random.default_rng(3)
    n = len(children)
    cells = pd.DataFrame({"h3": pd.array(children, dtype="string"),
                          "resolution": np.full(n, FINE, dtype=np.int8)})
    for col in COUNTS:
        cells[col] = rng.integers(0, 6, n)
    cells["households"] = rng.integers(1, 9, n)
    cells["persons"] = cells["households"] * 3
    cells.loc[6, "households"] = 1  # the only valued child of parent 2 has one household
    if fractional:
        for col in COUNTS:
            cells[col] = cells[col] * 0.25
    which = np.repeat(np.arange(4), sizes)
    within = np.concatenate([np.arange(k) for k in sizes])
    has_value = (which == 0) | ((which == 1) & (within % 2 == 0)) | ((which == 2) & (within == 1))
    cells["travel_min_school"] = np.where(has_value, rng.uniform(0, 90, n), np.nan)
    cells["elev_mean"] = np.where(has_value, rng.uniform(0, 300, n), np.nan)
    cells["population"] = np.where(has_value, rng.uniform(0, 500, n), np.nan)
    cells.loc[3, "travel_min_school"] = np.inf  # not finite: no value
    cells["other"] = "x"  # a column without a rollup rule is not carried up
    return cells.sample(frac=1.0, random_state=4).reset_index(drop=True), parents


def _expected(cells: pd.DataFrame, resolution: int) -> pd.DataFrame:
    parent = cells["h3"].map(lambda c: h3.cell_to_parent(c, resolution)).astype(str)
    out = cells.groupby(parent)[COUNTS].sum()
    w = cells["households"]
    for col in ("travel_min_school", "elev_mean"):
        x = cells[col].where(np.isfinite(cells[col]))
        out[col] = (x * w).groupby(parent).sum(min_count=1) / w.where(x.notna()).groupby(
            parent).sum()
    out["population"] = cells["population"].groupby(parent).sum(min_count=1)
    out["extreme_rate"] = out["extreme_persons"] / out["persons"]
    for _, count, share in DEPRIVATIONS.values():
        out[share] = out[count] / out["households"]
    return out.sort_index()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("fractional", [False, True])
def test_rollup_is_a_groupby_over_the_h3_parents(fractional):
    cells, parents = _table(fractional=fractional)
    up = grid.rollup_cells(cells, resolution=COARSE, admin=False)
    expected = _expected(cells, COARSE)
    assert up["h3"].tolist() == parents == expected.index.tolist()  # sorted by cell id
    assert (up["resolution"] == COARSE).all() and up["resolution"].dtype == np.int8
    up = up.set_index("h3")
    for col in COUNTS:
        assert up[col].dtype == (np.float64 if fractional else np.int64), col
        np.testing.assert_array_equal(up[col], expected[col], err_msg=col)
    for col in ("extreme_rate", *[s for _, _, s in DEPRIVATIONS.values()]):
        np.testing.assert_allclose(up[col], expected[col], rtol=1e-14, err_msg=col)
    for col in ("travel_min_school", "elev_mean", "population"):
        np.testing.assert_allclose(up[col], expected[col], rtol=1e-12, err_msg=col)
    # each case occurs: all, some, one, no child with a value (NaN, never 0)
    assert up["population"].isna().tolist() == [False, False, False, True]
    assert up["travel_min_school"].isna().tolist() == [False, False, False, True]
    assert "other" not in up.columns
    assert not set(grid.ADMIN_COLUMNS) & set(up.columns)  # admin=False: no attribution
    ref = np.array([h3.cell_to_latlng(p) for p in parents])
    np.testing.assert_allclose(up["lat"], ref[:, 0], atol=1e-11)
    np.testing.assert_allclose(up["lon"], ref[:, 1], atol=1e-11)


@pytest.mark.filterwarnings("error")
def test_counts_and_population_rolled_up_in_steps_equal_rolled_up_at_once():
    # (means are not: a partly valued cell weighs with all its households one step up,
    # which is why the build rolls every resolution up from the base cells)
    cells, _ = _table()
    direct = grid.rollup_cells(cells, resolution=5, admin=False)
    stepped = grid.rollup_cells(grid.rollup_cells(cells, resolution=7, admin=False),
                                resolution=5, admin=False)
    cols = ["h3", *COUNTS, "extreme_rate", "population"]
    pd.testing.assert_frame_equal(direct[cols], stepped[cols], rtol=1e-12)
    expected = _expected(cells, 5)
    assert direct["h3"].tolist() == expected.index.tolist()
    assert direct["households"].tolist() == expected["households"].tolist()


def test_one_cell_rolls_up_to_its_parent():
    cells, _ = _table()
    one = cells.iloc[[0]]
    up = grid.rollup_cells(one, resolution=5, admin=False)
    assert up["h3"].tolist() == [h3.cell_to_parent(one["h3"].iloc[0], 5)]
    for col in COUNTS:
        assert up[col].tolist() == one[col].tolist(), col


def test_rollup_to_a_finer_resolution_is_refused():
    cells, _ = _table()
    with pytest.raises(InputError, match="finer"):
        grid.rollup_cells(cells, resolution=FINE + 1, admin=False)
    with pytest.raises(InputError, match="finer"):
        grid.rollup_cells(cells.iloc[[0]], resolution=FINE + 1, admin=False)


def test_an_empty_table_rolls_up_to_an_empty_table():
    cells, _ = _table()
    up = grid.rollup_cells(cells.iloc[:0], resolution=COARSE, admin=False)
    assert len(up) == 0
    full = grid.rollup_cells(cells, resolution=COARSE, admin=False)
    assert list(up.columns) == list(full.columns)
