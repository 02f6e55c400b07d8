"""The suppression rules of docs/privacy.md (rules 1-3) applied by hand to small hierarchies.

Every expected status, atom and total below is worked out from the rules, not from the
code: rollups that are not exact sums are refused (also for expected, fractional counts),
a withheld cell's residual is kept at >= K households over >= 2 cells at every level, each
base cell lies in one atom (its own published cell, the residual of its lowest published
ancestor, or its regency's remainder), and totals are sums of released atoms. None of it
may depend on the order of the rows.
"""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

from kantong.engine.errors import RunError
from kantong.engine.publish import privacy

K = 10
ORIGIN = (0.05, 110.75)


def _kids(parent: str, n: int) -> list[str]:
    """The first ``n`` children of ``parent`` one resolution finer, in H3 id order."""
    return sorted(h3.cell_to_children(parent, h3.get_resolution(parent) + 1))[:n]


def _parents(n: int, res: int = 7) -> list[str]:
    """``n`` neighbouring cells at ``res`` (H3 id order)."""
    return sorted(h3.grid_disk(h3.latlng_to_cell(*ORIGIN, res), 2))[:n]


# ---- rollups must be exact sums ----------------------------------------------------------
def test_coarser_rows_in_any_order_are_matched_by_id():
    # three parents with different totals, listed in descending id order
    p = _parents(3)
    fams = {p[0]: [3, 30], p[1]: [12, 20], p[2]: [40, 50, 60]}
    fine = pd.DataFrame({"h3": [c for q in p for c in _kids(q, len(fams[q]))],
                         "households": [n for q in p for n in fams[q]]})
    top = pd.DataFrame({"h3": p[::-1], "households": [sum(fams[q]) for q in p[::-1]]})
    status = privacy.suppress_hierarchy({7: top, 8: fine}, min_households=K)
    assert status[7].tolist() == ["published"] * 3
    assert status[8].tolist() == ["small", "complementary", "published", "published",
                                  "published", "published", "published"]


def _one_parent(parent_hh: float, kids_hh: list[float]) -> dict[int, pd.DataFrame]:
    p = _parents(1)[0]
    return {7: pd.DataFrame({"h3": [p], "households": [parent_hh]}),
            8: pd.DataFrame({"h3": _kids(p, len(kids_hh)), "households": kids_hh})}


def test_expected_counts_may_differ_by_float_rounding_only():
    # expected counts of 0.1, 0.2 and 14.7 under a parent of 15.0: in floating point the
    # children may add up to 14.999999999999998 (the order of summation): accepted
    assert 14.7 + 0.2 + 0.1 != 15.0
    status = privacy.suppress_hierarchy(_one_parent(15.0, [0.1, 0.2, 14.7]), min_households=K)
    assert status[8].tolist() == ["small", "small", "complementary"]
    # 5e-9 of a household on a parent of 0.5 expected households is more than rounding
    # (docs/privacy.md: the nesting checks allow 1e-9)
    with pytest.raises(RunError, match="not the exact sum"):
        privacy.suppress_hierarchy(_one_parent(0.5, [0.25, 0.25 + 5e-9]), min_households=K)


def test_one_household_off_in_a_large_rollup_is_refused():
    # 200,000 households in a resolution-5 cell (a city): one household less in the
    # children is a broken rollup, whatever the relative size of the difference
    with pytest.raises(RunError, match="not the exact sum"):
        privacy.suppress_hierarchy(_one_parent(200_000, [99_999, 100_000]), min_households=K)
    status = privacy.suppress_hierarchy(_one_parent(200_000, [100_000, 100_000]),
                                        min_households=K)
    assert status[8].tolist() == ["published", "published"]


def test_the_broken_rollup_is_named_by_its_finer_resolution():
    p6 = h3.latlng_to_cell(*ORIGIN, 6)
    a7 = _kids(p6, 1)[0]
    levels = {6: pd.DataFrame({"h3": [p6], "households": [30]}),
              7: pd.DataFrame({"h3": [a7], "households": [30]}),
              8: pd.DataFrame({"h3": _kids(a7, 2), "households": [10, 21]})}
    with pytest.raises(RunError, match=r"rollup above r8: .* r8 cells"):
        privacy.suppress_hierarchy(levels, min_households=K)


# ---- rules 2 and 3 over three levels -------------------------------------------------------
def _three_levels() -> tuple[dict[int, pd.DataFrame], dict[str, str]]:
    """r6 parent P of r7 cells A (3, 30, 40), B (5, 6) and C (2, 2); names of every cell.

    By hand at K = 10: r6 P = 88 is published. r7: C (4) is small; the smallest sibling
    B (11) is complementary (4 + 11 >= K over 2 cells); A (73) is published. r8: under A,
    3 is small and 30 complementary (3 + 30 >= K), 40 published; B's and C's children are
    withheld as descendants of withheld cells (ancestor).
    """
    p6 = h3.latlng_to_cell(*ORIGIN, 6)
    a7, b7, c7 = _kids(p6, 3)
    a8, b8, c8 = _kids(a7, 3), _kids(b7, 2), _kids(c7, 2)
    base = pd.DataFrame({"h3": a8 + b8 + c8, "households": [3, 30, 40, 5, 6, 2, 2],
                         "regency_code": "6105"})
    levels = {6: pd.DataFrame({"h3": [p6], "households": [88]}),
              7: pd.DataFrame({"h3": [a7, b7, c7], "households": [73, 11, 4]}), 8: base}
    return levels, {"P": p6, "A": a7, "B": b7, "C": c7}


def test_three_levels_statuses_by_hand():
    levels, _ = _three_levels()
    status = privacy.suppress_hierarchy(levels, min_households=K)
    assert status[6].tolist() == ["published"]
    assert status[7].tolist() == ["published", "complementary", "small"]
    assert status[8].tolist() == ["small", "complementary", "published"] + ["ancestor"] * 4


def test_atoms_belong_to_the_lowest_published_ancestor():
    levels, name = _three_levels()
    plan = privacy.plan_suppression(levels, min_households=K)
    atoms = plan.atoms
    base = levels[8]["h3"].tolist()
    # 3 and 30 are A's residual (33 over 2 cells); B's and C's cells lie under no published
    # r7 cell: they are P's residual (5 + 6 + 2 + 2 = 15 over 4 cells)
    assert atoms["atom"].tolist() == [name["A"], name["A"], base[2]] + [name["P"]] * 4
    assert atoms["kind"].tolist() == ["residual", "residual", "cell"] + ["residual"] * 4
    assert atoms["released"].all()
    assert list(atoms.columns) == ["atom", "kind", "released", "atom_regency"]
    assert atoms.index.name == "h3" and atoms.index.tolist() == base


def test_every_cell_published_gives_one_atom_per_cell():
    p = _parents(2)
    base = pd.DataFrame({"h3": _kids(p[0], 2) + _kids(p[1], 1), "households": [20, 30, 15],
                         "regency_code": ["6105", "6105", "6106"]})
    levels = {7: pd.DataFrame({"h3": p, "households": [50, 15]}), 8: base}
    plan = privacy.plan_suppression(levels, min_households=K)
    assert plan.atoms["atom"].tolist() == base["h3"].tolist()
    assert plan.atoms["kind"].tolist() == ["cell"] * 3
    assert plan.atoms["released"].tolist() == [True] * 3
    assert plan.atoms["atom_regency"].tolist() == ["6105", "6105", "6106"]
    totals = privacy.released_regency_totals(base, plan, columns=("households",))
    assert totals["households"].to_dict() == {"6105": 50, "6106": 15}
    assert totals["cells"].to_dict() == {"6105": 2, "6106": 1}


def test_cells_without_a_regency_enter_no_regency_total():
    # P (20 without a regency, 30 in 6105) is published; Q1 (4, 4) and Q2 (3, 3) without a
    # regency, R1 (3, 3) and R2 (2, 3) in 6105 are small parents: remainders
    p, q1, q2, r1, r2 = _parents(5)
    base = pd.DataFrame({
        "h3": _kids(p, 2) + _kids(q1, 2) + _kids(q2, 2) + _kids(r1, 2) + _kids(r2, 2),
        "households": [20, 30, 4, 4, 3, 3, 3, 3, 2, 3],
        "regency_code": pd.array([None, "6105", None, None, None, None,
                                  "6105", "6105", "6105", "6105"], dtype="string")})
    top = pd.DataFrame({"h3": [p, q1, q2, r1, r2], "households": [50, 8, 6, 6, 5]})
    plan = privacy.plan_suppression({7: top, 8: base}, min_households=K)
    atoms = plan.atoms
    assert atoms["kind"].tolist() == ["cell", "cell"] + ["remainder"] * 8
    # the remainder without a regency (14 households over 4 cells) and the published cell
    # without a regency are counted in no regency: not released
    assert atoms["released"].tolist() == [False, True] + [False] * 4 + [True] * 4
    assert atoms["atom_regency"].tolist() == ["", "6105", "", "", "", ""] + ["6105"] * 4
    totals = privacy.released_regency_totals(base, plan, columns=("households",))
    assert totals.index.tolist() == ["6105"]
    assert totals.loc["6105", "households"] == 30 + 11 and totals.loc["6105", "cells"] == 1


# ---- the order of the rows does not matter ---------------------------------------------
def _reversed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[::-1].reset_index(drop=True)


def test_atoms_and_regency_totals_do_not_depend_on_the_row_order():
    # regency 6106 holds A's cells (its residual is counted there), 6105 the rest
    levels, name = _three_levels()
    levels[8] = levels[8].assign(regency_code=["6106"] * 3 + ["6105"] * 4,
                                 extreme_households=[1, 2, 3, 4, 5, 6, 7])
    plan = privacy.plan_suppression(levels, min_households=K)
    base = _reversed(levels[8])  # the published cell moves from row 2 to row 4
    atoms = privacy.assign_atoms(base, plan.status, min_households=K)
    expected = dict(zip(levels[8]["h3"], [name["A"], name["A"], levels[8]["h3"][2]]
                        + [name["P"]] * 4, strict=True))
    assert atoms.index.tolist() == base["h3"].tolist()
    assert atoms["atom"].tolist() == [expected[c] for c in base["h3"]]
    assert atoms["kind"].to_dict() == plan.atoms["kind"].to_dict()
    totals = privacy.released_regency_totals(base, plan,
                                             columns=("households", "extreme_households"))
    assert totals["households"].to_dict() == {"6105": 15, "6106": 73}
    assert totals["extreme_households"].to_dict() == {"6105": 22, "6106": 6}
    assert totals["cells"].to_dict() == {"6105": 0, "6106": 1}


def test_pocket_totals_do_not_depend_on_the_row_order():
    # pocket 4: A's published 40 (6106) and C's withheld cells; pocket 9: 3 and 30 (withheld)
    levels, _ = _three_levels()
    levels[8] = levels[8].assign(regency_code=["6105", "6105", "6106", "6105", "6105",
                                               "6105", "6105"],
                                 pocket_id=pd.array([9, 9, 4, pd.NA, pd.NA, 4, 4],
                                                    dtype="Int64"))
    plan = privacy.plan_suppression(levels, min_households=K)
    got = privacy.pocket_totals(_reversed(levels[8]), plan, columns=("households",))
    assert got.index.tolist() == [4]
    assert got.index.dtype == np.int64 and got.index.name == "pocket_id"
    assert got.loc[4, "households"] == 40 and got.loc[4, "cells"] == 1
    assert got.loc[4, "regency_code"] == "6106"


def test_pocket_regency_tie_goes_to_the_smaller_code():
    # two published cells of 20 households each, in 6107 and 6106: counted in 6106
    p = _parents(1)[0]
    base = pd.DataFrame({"h3": _kids(p, 2), "households": [20, 20],
                         "regency_code": ["6107", "6106"],
                         "pocket_id": pd.array([3, 3], dtype="Int64")})
    plan = privacy.plan_suppression({7: pd.DataFrame({"h3": [p], "households": [40]}),
                                     8: base}, min_households=K)
    got = privacy.pocket_totals(base, plan, columns=("households",))
    assert got.loc[3, "regency_code"] == "6106" and got.loc[3, "households"] == 40
