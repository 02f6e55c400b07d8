"""The minimum household count K at its boundary, from the definition (docs/privacy.md).

A cell with *exactly* K households is published; one with K - 1 is withheld. The same
boundary holds for residual and remainder atoms, pocket totals and site counts, and
through the ``PublishedRun`` gate. Published ranks are renumbered 1..n without gaps among
the published cells of each province and regency (a gap would tell where a withheld cell
ranks).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
from factories import make_households, make_run, seal_run

from kantong.engine.publish import privacy
from kantong.engine.publish.published import PublishedRun

K = 10


def _family(parent: str, households: list[int]) -> pd.DataFrame:
    kids = sorted(h3.cell_to_children(parent, h3.get_resolution(parent) + 1))[:len(households)]
    return pd.DataFrame({"h3": kids, "households": households, "regency_code": "6105"})


def _levels(families: list[list[int]], res: int = 7) -> dict[int, pd.DataFrame]:
    """One parent at ``res`` per family of children at ``res + 1`` (all in regency 6105)."""
    origin = h3.latlng_to_cell(0.05, 110.75, res)
    parents = sorted(h3.grid_disk(origin, 2))[:len(families)]
    kids = pd.concat([_family(p, f) for p, f in zip(parents, families, strict=True)],
                     ignore_index=True)
    top = pd.DataFrame({"h3": parents, "households": [sum(f) for f in families]})
    return {res: top, res + 1: kids}


# ---- primary suppression ------------------------------------------------------------------
@pytest.mark.parametrize("k", [3, K, 25])
def test_exactly_k_is_published_and_k_minus_1_withheld_at_the_top(k):
    origin = h3.latlng_to_cell(0.05, 110.75, 6)
    ids = sorted(h3.grid_disk(origin, 1))[:3]
    level = pd.DataFrame({"h3": ids, "households": [k, k - 1, k + 1]})
    status = privacy.suppress_hierarchy({6: level}, min_households=k)
    assert status[6].tolist() == [privacy.PUBLISHED, privacy.SMALL, privacy.PUBLISHED]


@pytest.mark.parametrize("k", [3, K, 25])
def test_exactly_k_is_published_and_k_minus_1_withheld_below_a_parent(k):
    # two families: [k, big] needs nothing; [k - 1, big] withholds the small child and,
    # to protect it from subtraction, its only sibling
    big = 4 * k
    status = privacy.suppress_hierarchy(_levels([[k, big], [k - 1, big]]), min_households=k)
    assert status[7].tolist() == [privacy.PUBLISHED, privacy.PUBLISHED]
    assert status[8].tolist() == [privacy.PUBLISHED, privacy.PUBLISHED,
                                  privacy.SMALL, privacy.COMPLEMENTARY]


def test_residual_of_exactly_k_needs_no_complementary_cell():
    # 4 + 6 = K withheld households over two cells: safe as they are
    status = privacy.suppress_hierarchy(_levels([[4, 6, 40]]), min_households=K)
    assert status[8].tolist() == [privacy.SMALL, privacy.SMALL, privacy.PUBLISHED]
    # 4 + 5 = K - 1: the smallest published sibling is withheld too
    status = privacy.suppress_hierarchy(_levels([[4, 5, 40, 41]]), min_households=K)
    assert status[8].tolist() == [privacy.SMALL, privacy.SMALL, privacy.COMPLEMENTARY,
                                  privacy.PUBLISHED]


def test_parent_with_exactly_k_is_published_and_keeps_its_residual():
    levels = _levels([[30], [5, 5], [4, 5]])
    status = privacy.suppress_hierarchy(levels, min_households=K)
    assert status[7].tolist() == [privacy.PUBLISHED, privacy.PUBLISHED, privacy.SMALL]
    atoms = privacy.assign_atoms(levels[8], status, min_households=K)
    assert atoms["kind"].tolist() == [privacy.ATOM_CELL, privacy.ATOM_RESIDUAL,
                                      privacy.ATOM_RESIDUAL, privacy.ATOM_REMAINDER,
                                      privacy.ATOM_REMAINDER]
    # the residual (5 + 5 = K) is released; the remainder (4 + 5 = K - 1) is not
    assert atoms["released"].tolist() == [True, True, True, False, False]


@pytest.mark.parametrize(("remainder", "released"), [([3, 2, 2, 3], True),
                                                     ([3, 2, 2, 2], False)])
def test_regency_remainder_released_from_exactly_k(remainder, released):
    levels = _levels([[30], remainder[:2], remainder[2:]])
    status = privacy.suppress_hierarchy(levels, min_households=K)
    atoms = privacy.assign_atoms(levels[8], status, min_households=K)
    assert atoms["kind"].tolist()[1:] == [privacy.ATOM_REMAINDER] * 4
    assert atoms["released"].tolist() == [True] + [released] * 4
    totals = privacy.released_regency_totals(levels[8], privacy.SuppressionPlan(K, status, atoms),
                                    columns=("households",))
    assert totals.loc["6105", "households"] == 30 + (sum(remainder) if released else 0)
    assert totals.loc["6105", "cells"] == 1


# ---- pockets and sites --------------------------------------------------------------------
def test_pocket_of_exactly_k_published_households_is_published():
    # pocket 1 is one published cell of exactly K households; pocket 2 only a withheld cell
    levels = _levels([[K, 40], [K - 1, 40]])
    plan = privacy.plan_suppression(levels, min_households=K)
    base = levels[8].assign(pocket_id=pd.array([1, pd.NA, 2, pd.NA], dtype="Int64"))
    got = privacy.pocket_totals(base, plan, columns=("households",))
    assert got.index.tolist() == [1]
    assert got.loc[1, "households"] == K and got.loc[1, "cells"] == 1


def test_pocket_of_exactly_k_published_households():
    levels = _levels([[6, 4, 40, 41]])  # 6 and 4 withheld as small (residual 10)
    plan = privacy.plan_suppression(levels, min_households=K)
    assert plan.status[8].tolist() == [privacy.SMALL, privacy.SMALL, privacy.PUBLISHED,
                                       privacy.PUBLISHED]
    base = levels[8].assign(pocket_id=pd.array([7, 7, 7, pd.NA], dtype="Int64"))
    got = privacy.pocket_totals(base, plan, columns=("households",))
    # only the published cell counts: 40 households in 1 cell
    assert got.loc[7, "households"] == 40 and got.loc[7, "cells"] == 1


def test_site_counts_exactly_k_published_k_minus_1_withheld():
    sites = pd.DataFrame({"type": ["a"] * 3 + ["b"] * 3, "rank": [1, 2, 3, 1, 2, 3],
                          "new_extreme_households": [30, K, K, 30, K - 1, 20],
                          "cumulative_extreme_households": [30, 40, 50, 30, 39, 59],
                          "covered_persons": [90, K, K - 1, 90, 60, 70]})
    out = privacy.withhold_site_counts(sites, min_households=K)
    a, b = out[out["type"] == "a"], out[out["type"] == "b"]
    assert a["new_extreme_households"].tolist() == [30, K, K]
    assert a["cumulative_extreme_households"].tolist() == [30, 40, 50]
    assert a["covered_persons"].isna().tolist() == [False, False, True]  # K - 1 persons
    assert a["covered_persons"].tolist()[:2] == [90, K]
    assert b["new_extreme_households"].isna().tolist() == [False, True, False]
    # from the first withheld rank on, cumulative values and covered persons are withheld
    assert b["cumulative_extreme_households"].isna().tolist() == [False, True, True]
    assert b["covered_persons"].isna().tolist() == [False, True, True]
    assert str(out["new_extreme_households"].dtype) == "Int64"


# ---- through the PublishedRun gate --------------------------------------------------------
def _trimmed_run(tmp_path: Path, counts: dict[str, int]) -> tuple[Path, pd.DataFrame]:
    """A make_run directory whose cells ``counts`` keep exactly that many households."""
    planted = make_households(seed=3, radius=8)
    hh = planted.households
    cell_of = pd.Series([h3.latlng_to_cell(a, b, 8)
                         for a, b in zip(hh["lat"], hh["lon"], strict=True)], index=hh.index)
    keep = pd.Series(True, index=hh.index)
    for cell, n in counts.items():
        rows = cell_of.index[cell_of == cell]
        assert len(rows) > n
        keep[rows[n:]] = False
    planted.households = hh[keep].reset_index(drop=True)
    run = tmp_path / "run"
    make_run(run, seed=3, planted=planted, with_friction=False)
    return run, gpd.read_parquet(run / "cells.parquet")


@pytest.fixture(scope="module")
def boundary_run(tmp_path_factory):
    """A run with one cell of exactly K households and one of K - 1, under different
    resolution-7 parents (so neither is the other's complementary cell)."""
    origin = h3.latlng_to_cell(0.05, 110.75, 8)
    ring = sorted(h3.grid_ring(origin, 4))
    at_k = ring[0]
    below = next(c for c in ring if h3.cell_to_parent(c, 7) != h3.cell_to_parent(at_k, 7)
                 and h3.grid_distance(c, at_k) > 3)
    run, raw = _trimmed_run(tmp_path_factory.mktemp("kb"), {at_k: K, below: K - 1})
    return run, raw, at_k, below


def test_published_run_publishes_exactly_k_and_withholds_k_minus_1(boundary_run):
    run, raw, at_k, below = boundary_run
    counts = raw.set_index("h3")["households"]
    assert counts[at_k] == K and counts[below] == K - 1
    assert counts.drop([at_k, below]).min() > K  # the only cells at the boundary
    pub = PublishedRun(run, min_households=K)
    cells = pub.cells(8).set_index("h3")
    assert at_k in cells.index and cells.loc[at_k, "households"] == K
    assert below not in cells.index
    assert pub.cell(at_k)["households"] == K
    assert pub.cell(below) is None
    status = pub.plan.status[8]
    assert status[at_k] == privacy.PUBLISHED and status[below] == privacy.SMALL
    # exactly one complementary cell protects the K - 1 cell: its smallest sibling
    siblings = [c for c in counts.index
                if h3.cell_to_parent(c, 7) == h3.cell_to_parent(below, 7) and c != below]
    smallest = min(siblings, key=lambda c: (counts[c], h3.str_to_int(c)))
    assert status[status == privacy.COMPLEMENTARY].index.tolist() == [smallest]
    assert len(cells) == len(raw) - 2
    assert pub.withheld(8) == 2


def test_published_run_threshold_moves_with_k(boundary_run):
    run, raw, at_k, below = boundary_run
    pub = PublishedRun(run, min_households=K + 1)
    published = set(pub.cells(8)["h3"])
    assert at_k not in published and below not in published
    assert pub.plan.status[8][at_k] == privacy.SMALL


# ---- ranks without gaps -------------------------------------------------------------------
@pytest.fixture(scope="module")
def ranked_run(tmp_path_factory):
    """A sparse run (many cells below K) whose cells carry province and regency ranks."""
    run = tmp_path_factory.mktemp("ranks") / "run"
    make_run(run, seed=21, planted=make_households(seed=21, mean_households=10.0),
             with_friction=False)
    cells = gpd.read_parquet(run / "cells.parquet")
    score = np.random.default_rng(21).uniform(size=len(cells))
    cells["priority"] = score
    cells["rank_province"] = pd.Series(score).rank(ascending=False, method="first").astype(int)
    cells["rank_regency"] = (pd.Series(score).groupby(cells["regency_code"].to_numpy())
                             .rank(ascending=False, method="first").astype(int).to_numpy())
    cells.to_parquet(run / "cells.parquet")
    seal_run(run)  # the files changed on purpose: record their hashes
    return run, cells


@pytest.mark.parametrize(("column", "group"), [("rank_province", "province_code"),
                                               ("rank_regency", "regency_code")])
def test_published_ranks_are_1_to_n_without_gaps(ranked_run, column, group):
    run, raw = ranked_run
    pub = PublishedRun(run, min_households=K)
    got = pd.DataFrame(pub.cells(8).drop(columns="geometry")).set_index("h3")
    assert len(got) < len(raw) - 20  # many cells withheld: the raw ranks have gaps
    assert raw[group].nunique() >= (1 if group == "province_code" else 2)
    # oracle: order the published cells of each group by their raw rank, number them 1..n
    mine = raw.set_index("h3").loc[got.index]
    expected = mine.groupby(group)[column].rank(method="first").astype(int)
    assert (got[column].astype(int) == expected.loc[got.index]).all()
    for _, ranks in got.groupby(group)[column]:
        assert sorted(ranks.astype(int)) == list(range(1, len(ranks) + 1))


def test_published_cells_keep_the_pocket_ids_of_published_pockets(web_run):
    # the web fixture: pocket 1 is published although one of its cells is withheld
    raw = gpd.read_parquet(web_run / "cells.parquet").set_index("h3")
    pub = PublishedRun(web_run, min_households=K)
    cells = pd.DataFrame(pub.cells(8).drop(columns="geometry")).set_index("h3")
    assert sorted(pub.pockets()["pocket_id"]) == [1, 2]
    expected = raw.loc[cells.index, "pocket_id"].astype("Int64")
    assert cells["pocket_id"].astype("Int64").equals(expected)
    members = set(raw.index[raw["pocket_id"] == 1])
    shown = set(cells.index[cells["pocket_id"] == 1])
    assert shown < members and len(members - shown) >= 1  # the withheld cell is absent
