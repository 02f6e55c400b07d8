"""Derived values of rollup cells from the published base cells only (docs/privacy.md).

Expected values from a plain pandas groupby over the published base cells: household-
weighted means and sums over the cells that have a value, missing when none has.
"""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

from kantong.engine.publish import privacy

K = 10


def _base() -> tuple[dict[int, pd.DataFrame], pd.DataFrame]:
    origin = h3.latlng_to_cell(0.05, 110.75, 7)
    parents = sorted(h3.grid_disk(origin, 1))[:3]
    families = [[3, 20, 25, 30], [12, 40], [15, 16, 17]]
    rows = []
    for p, fam in zip(parents, families, strict=True):
        kids = sorted(h3.cell_to_children(p, 8))[:len(fam)]
        rows += [{"h3": c, "households": n, "parent": p} for c, n in zip(kids, fam, strict=True)]
    base = pd.DataFrame(rows)
    base["regency_code"] = "6105"
    base["travel_min_x"] = [10.0, 20.0, np.nan, 40.0, 5.0, 7.0, np.nan, np.nan, np.nan]
    base["population"] = [100.0, np.nan, 30.0, 50.0, 8.0, np.nan, np.nan, np.nan, np.nan]
    top = base.groupby("parent", as_index=False)["households"].sum().rename(
        columns={"parent": "h3"})
    return {7: top, 8: base.drop(columns="parent")}, base


def test_rollup_values_from_published_cells_only():
    levels, base = _base()
    plan = privacy.plan_suppression(levels, min_households=K)
    status = plan.status[8]
    # 3 is small and 20 its complementary sibling: both withheld
    assert status.tolist() == ["small", "complementary", "published", "published",
                               "published", "published", "published", "published", "published"]
    got = privacy.published_rollup_values(levels[8], plan, 7, means=("travel_min_x",),
                                          sums=("population",))
    pub = base[status.to_numpy() == privacy.PUBLISHED]
    ok = pub["travel_min_x"].notna()
    w = pub["households"].where(ok)
    mean = (pub["travel_min_x"] * w).groupby(pub["parent"]).sum(min_count=1) / \
        w.groupby(pub["parent"]).sum(min_count=1)
    total = pub["population"].groupby(pub["parent"]).sum(min_count=1)
    assert sorted(got.index) == sorted(pub["parent"].unique())
    np.testing.assert_allclose(got.loc[mean.index, "travel_min_x"], mean, rtol=1e-12)
    np.testing.assert_allclose(got.loc[total.index, "population"], total, rtol=1e-12)
    # by hand: parent 0 keeps 25 (no travel value, population 30) and 30 (40 min, 50)
    p0, p1, p2 = sorted(base["parent"].unique())
    assert got.loc[p0, "travel_min_x"] == 40.0 and got.loc[p0, "population"] == 80.0
    assert got.loc[p1, "travel_min_x"] == pytest.approx((12 * 5 + 40 * 7) / 52)
    assert got.loc[p1, "population"] == 8.0
    # parent 2: no published child has a value: missing, not 0
    assert np.isnan(got.loc[p2, "travel_min_x"]) and np.isnan(got.loc[p2, "population"])
    assert list(got.columns) == ["travel_min_x", "population"]


def test_plan_published_ids_and_withheld_count():
    levels, base = _base()
    plan = privacy.plan_suppression(levels, min_households=K)
    assert plan.base_resolution == 8
    assert sorted(plan.published_ids(8)) == sorted(base["h3"].iloc[2:])
    assert plan.withheld_count(8) == 2 and plan.withheld_count(7) == 0
    assert sorted(plan.published_ids(7)) == sorted(levels[7]["h3"])


def test_pocket_totals_empty_results_keep_their_schema():
    levels, _ = _base()
    plan = privacy.plan_suppression(levels, min_households=K)
    cols = ("households",)
    for base in (levels[8],  # no pocket column at all
                 levels[8].assign(pocket_id=pd.array([1, 1] + [pd.NA] * 7, dtype="Int64"))):
        got = privacy.pocket_totals(base, plan, columns=cols)  # 2nd: only withheld cells
        assert got.empty
        assert list(got.columns) == ["households", "cells", "regency_code"]
        assert got.index.name == "pocket_id" and got.index.dtype == np.int64


def test_regency_of_remainders_only_counts_no_cell():
    # regency 6105: one published family; regency 6106: two small parents (7 and 5
    # households), released together as the regency's remainder (12 >= K over 4 cells)
    origin = h3.latlng_to_cell(0.05, 110.75, 7)
    parents = sorted(h3.grid_disk(origin, 1))[:3]
    families = [([20, 30], "6105"), ([3, 4], "6106"), ([2, 3], "6106")]
    rows = [{"h3": c, "households": n, "regency_code": code}
            for p, (fam, code) in zip(parents, families, strict=True)
            for c, n in zip(sorted(h3.cell_to_children(p, 8))[:len(fam)], fam, strict=True)]
    base = pd.DataFrame(rows)
    top = pd.DataFrame({"h3": parents, "households": [50, 7, 5]})
    plan = privacy.plan_suppression({7: top, 8: base}, min_households=K)
    assert plan.atoms["kind"].tolist() == ["cell", "cell"] + [privacy.ATOM_REMAINDER] * 4
    totals = privacy.released_regency_totals(base, plan, columns=("households",))
    assert totals.loc["6105", "households"] == 50 and totals.loc["6105", "cells"] == 2
    assert totals.loc["6106", "households"] == 12 and totals.loc["6106", "cells"] == 0
    assert totals["cells"].dtype == np.int64


def _family_levels(households: list[int], order: list[int]) -> dict[int, pd.DataFrame]:
    """One resolution-7 parent; its children (sorted ids) listed in the row ``order``."""
    parent = h3.latlng_to_cell(0.05, 110.75, 7)
    kids = sorted(h3.cell_to_children(parent, 8))[:len(households)]
    fine = pd.DataFrame({"h3": [kids[i] for i in order],
                         "households": [households[i] for i in order],
                         "regency_code": "6105"})
    return {7: pd.DataFrame({"h3": [parent], "households": [sum(households)]}), 8: fine}


def test_equal_siblings_tie_broken_by_the_smaller_h3_id_whatever_the_row_order():
    levels = _family_levels([3, 40, 20, 20, 60], order=[0, 1, 3, 2, 4])
    status = privacy.suppress_hierarchy(levels, min_households=K)[8]
    kids = sorted(levels[8]["h3"])
    assert status[kids[2]] == privacy.COMPLEMENTARY  # the smaller id of the two 20s
    assert status[kids[3]] == privacy.PUBLISHED
    assert status.name == "status" and status.index.name == "h3"
    assert status.index.tolist() == levels[8]["h3"].tolist()  # in the input's row order


@pytest.mark.parametrize("change", ["one household more", "extra parent", "missing parent"])
def test_rollup_that_is_not_the_exact_sum_is_refused(change):
    from kantong.engine.errors import RunError

    levels = _family_levels([12, 20, 30], order=[0, 1, 2])
    top = levels[7]
    if change == "one household more":
        top = top.assign(households=top["households"] + 1)
    elif change == "extra parent":
        other = sorted(h3.grid_ring(top["h3"].iloc[0], 1))[0]
        top = pd.concat([top, pd.DataFrame({"h3": [other], "households": [0]})])
    else:
        levels[8] = pd.concat([levels[8], pd.DataFrame({
            "h3": [sorted(h3.cell_to_children(sorted(h3.grid_ring(top["h3"].iloc[0], 1))[0],
                                              8))[0]],
            "households": [15], "regency_code": ["6105"]})], ignore_index=True)
    levels[7] = top
    with pytest.raises(RunError, match="not the exact sum"):
        privacy.suppress_hierarchy(levels, min_households=K)


def test_atoms_across_regencies_three_levels_and_pocket_regency():
    # resolution 6 parent P (published) -> r7 children A (published), B and C (small: 7
    # and 5, together 12 >= K: no complementary cell). B's and C's r8 cells lie under no
    # published r7 cell: their atom is P's residual, two levels up
    p6 = h3.latlng_to_cell(0.05, 110.75, 6)
    a7, b7, c7 = sorted(h3.cell_to_children(p6, 7))[:3]
    a8 = sorted(h3.cell_to_children(a7, 8))[:3]
    b8 = sorted(h3.cell_to_children(b7, 8))[:2]
    c8 = sorted(h3.cell_to_children(c7, 8))[:2]
    base = pd.DataFrame({"h3": a8 + b8 + c8, "households": [30, 20, 15, 4, 3, 2, 3],
                         # the residual holds 4 households in 6106 and 8 in 6105
                         "regency_code": ["6105", "6105", "6106", "6106", "6105", "6105",
                                          "6105"]})
    levels = {6: pd.DataFrame({"h3": [p6], "households": [77]}),
              7: pd.DataFrame({"h3": [a7, b7, c7], "households": [65, 7, 5]}), 8: base}
    plan = privacy.plan_suppression(levels, min_households=K)
    assert plan.status[7].tolist() == ["published", "small", "small"]
    atoms = plan.atoms
    assert atoms["kind"].tolist() == ["cell"] * 3 + [privacy.ATOM_RESIDUAL] * 4
    assert atoms["atom"].iloc[3:].nunique() == 1
    assert atoms["atom"].iloc[3] == p6  # the r6 parent's residual
    assert atoms["released"].all()  # 12 households over 4 cells
    assert atoms["atom_regency"].tolist() == ["6105", "6105", "6106"] + ["6105"] * 4
    totals = privacy.released_regency_totals(base, plan, columns=("households",))
    assert totals["households"].to_dict() == {"6105": 62, "6106": 15}
    # a pocket over 30 (6105) and 15 (6106) published households: regency 6105
    cells = base.assign(pocket_id=pd.array([1, pd.NA, 1, 1, pd.NA, pd.NA, pd.NA],
                                           dtype="Int64"))
    got = privacy.pocket_totals(cells, plan, columns=("households",))
    assert got.loc[1, "households"] == 45 and got.loc[1, "cells"] == 2
    assert got.loc[1, "regency_code"] == "6105"
    assert str(got["regency_code"].dtype) == "string"


def test_atom_regency_tie_goes_to_the_smaller_code():
    levels = _family_levels([30, 5, 5], order=[0, 1, 2])
    levels[8] = levels[8].assign(regency_code=["6105", "6107", "6106"])
    plan = privacy.plan_suppression(levels, min_households=K)
    # the residual (5 + 5) is split evenly between 6107 and 6106: counted in 6106
    assert plan.atoms["kind"].tolist()[1:] == [privacy.ATOM_RESIDUAL] * 2
    assert plan.atoms["atom_regency"].tolist() == ["6105", "6106", "6106"]
    assert plan.atoms["released"].all()


def test_rollup_values_do_not_depend_on_the_row_order():
    levels, base = _base()
    plan = privacy.plan_suppression(levels, min_households=K)
    order = np.random.default_rng(3).permutation(len(levels[8]))
    shuffled = levels[8].iloc[order].reset_index(drop=True)
    got = privacy.published_rollup_values(shuffled, plan, 7, means=("travel_min_x",),
                                          sums=("population",))
    assert got.index.name == "h3"  # joins on the rollup's h3 column
    p0, p1, p2 = sorted(base["parent"].unique())
    # by hand, as in test_rollup_values_from_published_cells_only
    assert got.loc[p0, "travel_min_x"] == 40.0 and got.loc[p0, "population"] == 80.0
    assert got.loc[p1, "travel_min_x"] == pytest.approx((12 * 5 + 40 * 7) / 52)
    assert got.loc[p1, "population"] == 8.0
    assert np.isnan(got.loc[p2, "travel_min_x"]) and np.isnan(got.loc[p2, "population"])


def test_rollup_values_of_a_column_without_any_value():
    # a derived column missing in every cell reads back from Parquet as None objects:
    # every rollup value is missing (not 0, not an error)
    levels, base = _base()
    plan = privacy.plan_suppression(levels, min_households=K)
    cells = levels[8].assign(travel_min_x=pd.Series([None] * 9, dtype=object),
                             population=pd.Series([None] * 9, dtype=object))
    got = privacy.published_rollup_values(cells, plan, 7, means=("travel_min_x",),
                                          sums=("population",))
    assert sorted(got.index) == sorted(base["parent"].unique())
    assert got.isna().all().all()


def test_unreachable_cells_are_left_out_of_the_rollup_mean():
    # the 12-household cell of parent 1 cannot reach a facility (infinite travel time): the
    # mean is over the 40-household cell alone (7 minutes), not dragged to infinity or 0
    levels, base = _base()
    plan = privacy.plan_suppression(levels, min_households=K)
    cells = levels[8].assign(travel_min_x=base["travel_min_x"].where(
        base["households"] != 12, np.inf))
    got = privacy.published_rollup_values(cells, plan, 7, means=("travel_min_x",))
    p0, p1, _ = sorted(base["parent"].unique())
    assert got.loc[p1, "travel_min_x"] == 7.0
    assert got.loc[p0, "travel_min_x"] == 40.0
